using Keel.AspNetCore.Discovery;
using Keel.AspNetCore.Idempotency;
using Keel.AspNetCore.LeaderElection;
using Keel.AspNetCore.Locks;
using Keel.Client;
using Medallion.Threading;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Keel.AspNetCore;

/// <summary>
/// Registers the Keel building blocks with dependency injection. Each needs a <see cref="KeelClient"/> in the container
/// (<c>services.AddKeelClient(configuration.GetSection("Keel"))</c>).
/// </summary>
public static class KeelAspNetCoreServiceCollectionExtensions
{
    /// <summary>Configures <see cref="KeelIdempotencyMiddleware"/>; add it to the pipeline with <c>app.UseKeelIdempotency()</c>.</summary>
    public static IServiceCollection AddKeelIdempotency(this IServiceCollection services, Action<KeelIdempotencyOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<KeelIdempotencyOptions>();
        if (configure is not null) options.Configure(configure);
        options.Validate(o => !o.Problems().Any(), "KeelIdempotencyOptions are invalid (see KeelIdempotencyOptions for the bounds)").ValidateOnStart();
        return services;
    }

    /// <summary>Registers <see cref="IDistributedLockProvider"/> (and <see cref="KeelDistributedLockProvider"/>) over Keel locks.</summary>
    public static IServiceCollection AddKeelDistributedLocks(this IServiceCollection services, Action<KeelDistributedLockOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = new KeelDistributedLockOptions();
        configure?.Invoke(options);
        services.TryAddSingleton(provider => new KeelDistributedLockProvider(provider.GetRequiredService<KeelClient>(), options));
        services.TryAddSingleton<IDistributedLockProvider>(provider => provider.GetRequiredService<KeelDistributedLockProvider>());
        return services;
    }

    /// <summary>
    /// Runs <paramref name="work"/> only while this instance leads the election <paramref name="name"/>; its token is
    /// cancelled when leadership is lost or the host stops (see <see cref="KeelLeaderElectionService"/>).
    /// </summary>
    public static IServiceCollection AddKeelLeaderElection(this IServiceCollection services, string name, Func<CancellationToken, Task> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        return services.AddKeelLeaderElection(new KeelLeaderElectionOptions { Name = name }, context => work(context.CancellationToken));
    }

    /// <summary>
    /// Runs <paramref name="work"/> only while this instance leads the election of <paramref name="options"/>; the
    /// context carries the leadership's fencing token and a token cancelled when leadership ends.
    /// </summary>
    public static IServiceCollection AddKeelLeaderElection(this IServiceCollection services, KeelLeaderElectionOptions options, Func<LeaderContext, Task> work)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(work);
        // Each election is its own hosted service (find them with GetServices<IHostedService>().OfType<KeelLeaderElectionService>()).
        services.Add(ServiceDescriptor.Singleton<IHostedService>(provider => new KeelLeaderElectionService(provider.GetRequiredService<KeelClient>(),
            options, work, provider, provider.GetRequiredService<ILogger<KeelLeaderElectionService>>())));
        return services;
    }

    /// <summary>
    /// Runs a gossip agent in this application (<see cref="KeelGossipAgent"/>): it joins the Keel servers' SWIM pool so
    /// the cluster follows this instance's health, and a service registration added beside it records the agent's id,
    /// so discovery leaves the instance out as soon as the servers find it dead (the agent starts with the host, before
    /// registrations are written, whatever the order of the calls).
    /// </summary>
    public static IServiceCollection AddKeelGossipAgent(this IServiceCollection services, Action<KeelGossipAgentOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var options = new KeelGossipAgentOptions();
        configure(options);
        if (options.Problems().FirstOrDefault() is { } problem) throw new ArgumentException(problem, nameof(configure));
        services.TryAddSingleton(provider => new KeelGossipAgent(options, provider.GetRequiredService<ILogger<KeelGossipAgent>>()));
        services.Add(ServiceDescriptor.Singleton<IHostedService>(provider => provider.GetRequiredService<KeelGossipAgent>()));
        return services;
    }

    /// <summary>Registers <see cref="IKeelServiceDiscovery"/>.</summary>
    public static IServiceCollection AddKeelServiceDiscovery(this IServiceCollection services, Action<KeelServiceDiscoveryOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<KeelServiceDiscoveryOptions>();
        if (configure is not null) options.Configure(configure);
        services.TryAddSingleton<IKeelServiceDiscovery>(provider =>
            new KeelServiceDiscovery(provider.GetRequiredService<KeelClient>(), provider.GetRequiredService<IOptions<KeelServiceDiscoveryOptions>>().Value));
        return services;
    }

    /// <summary>
    /// Registers this instance as <paramref name="address"/> of <paramref name="serviceName"/> once the host has
    /// started, under a kept-alive lease, and removes it when the host stops (see <see cref="KeelServiceRegistration"/>).
    /// Also registers <see cref="IKeelServiceDiscovery"/>.
    /// </summary>
    public static IServiceCollection AddKeelServiceRegistration(this IServiceCollection services, string serviceName, string address) =>
        services.AddKeelServiceRegistration(new KeelServiceRegistrationOptions { ServiceName = serviceName, Address = _ => address });

    /// <summary>
    /// Registers this instance under the first address the server listens on (read once it has started), e.g. when
    /// Kestrel binds port 0.
    /// </summary>
    public static IServiceCollection AddKeelServiceRegistration(this IServiceCollection services, string serviceName) =>
        services.AddKeelServiceRegistration(new KeelServiceRegistrationOptions
        {
            ServiceName = serviceName,
            Address = provider => provider.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
                ?? throw new InvalidOperationException("keel: the server reports no address to register; pass one to AddKeelServiceRegistration"),
        });

    /// <summary>Registers this instance as described by <paramref name="registration"/>.</summary>
    public static IServiceCollection AddKeelServiceRegistration(this IServiceCollection services, KeelServiceRegistrationOptions registration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(registration);
        _ = KeelServiceDiscovery.ServicePrefix(new KeelServiceDiscoveryOptions(), registration.ServiceName);
        services.AddKeelServiceDiscovery();
        services.Add(ServiceDescriptor.Singleton<IHostedService>(provider => new KeelServiceRegistration(provider.GetRequiredService<KeelClient>(), registration,
            provider.GetRequiredService<IOptions<KeelServiceDiscoveryOptions>>().Value, provider, provider.GetRequiredService<ILogger<KeelServiceRegistration>>())));
        return services;
    }
}

/// <summary>Adds Keel middleware to the request pipeline and Keel metadata to endpoints.</summary>
public static class KeelAspNetCoreApplicationBuilderExtensions
{
    /// <summary>
    /// Adds <see cref="KeelIdempotencyMiddleware"/> (configure it with <c>services.AddKeelIdempotency(...)</c>). Place it
    /// after routing (minimal-API apps route first by default) so endpoint metadata such as
    /// <see cref="RequireIdempotencyKey{TBuilder}"/> is seen, and before the endpoints it protects.
    /// </summary>
    public static IApplicationBuilder UseKeelIdempotency(this IApplicationBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        return app.UseMiddleware<KeelIdempotencyMiddleware>();
    }

    /// <summary>The endpoint requires an <c>Idempotency-Key</c> (400 without one), whatever its method.</summary>
    public static TBuilder RequireIdempotencyKey<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new IdempotencyMetadata(Required: true, Disabled: false));

    /// <summary>The idempotency middleware leaves the endpoint alone.</summary>
    public static TBuilder DisableIdempotency<TBuilder>(this TBuilder builder) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new IdempotencyMetadata(Required: false, Disabled: true));
}
