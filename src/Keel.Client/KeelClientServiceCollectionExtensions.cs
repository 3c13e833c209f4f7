using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Keel.Client;

/// <summary>Registers a shared <see cref="KeelClient"/> with Microsoft.Extensions.DependencyInjection.</summary>
public static class KeelClientServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="KeelClientOptions"/> from <paramref name="configuration"/> (pass the section, e.g.
    /// <c>builder.Configuration.GetSection("Keel")</c>), validates them when the host starts, and registers one
    /// <see cref="KeelClient"/> singleton that the container disposes.
    /// </summary>
    public static IServiceCollection AddKeelClient(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<KeelClientOptions>().Bind(configuration).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KeelClientOptions>, KeelClientOptionsValidator>());
        services.TryAddSingleton(provider => new KeelClient(provider.GetRequiredService<IOptions<KeelClientOptions>>().Value));
        return services;
    }
}
