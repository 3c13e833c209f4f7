using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Keel.Client.Tests;

/// <summary>Options validation, DI registration and the client's pure helpers (no server needed).</summary>
public sealed class OptionsTests
{
    private static ServiceProvider Provider(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        return new ServiceCollection().AddKeelClient(configuration.GetSection("Keel")).BuildServiceProvider();
    }

    [Fact]
    public async Task AddKeelClient_binds_the_section_and_registers_one_shared_client()
    {
        await using var provider = Provider(new()
        {
            ["Keel:Endpoints:0"] = "http://127.0.0.1:2379",
            ["Keel:Endpoints:1"] = "http://127.0.0.1:22379",
            ["Keel:CommandTimeout"] = "00:00:03",
            ["Keel:RetryLimit"] = "5",
        });
        provider.GetRequiredService<IStartupValidator>().Validate();
        var client = provider.GetRequiredService<KeelClient>();
        Assert.Same(client, provider.GetRequiredService<KeelClient>());
        Assert.Equal(["http://127.0.0.1:2379", "http://127.0.0.1:22379"], client.Options.Endpoints);
        Assert.Equal(TimeSpan.FromSeconds(3), client.Options.CommandTimeout);
        Assert.Equal(5, client.Options.RetryLimit);
        Assert.True(client.Options.IdempotentWrites);
    }

    [Fact]
    public async Task Invalid_settings_fail_at_start_up_naming_every_problem()
    {
        await using var provider = Provider(new()
        {
            ["Keel:Endpoints:0"] = "127.0.0.1:2379",
            ["Keel:DialTimeout"] = "00:00:00",
            ["Keel:RetryLimit"] = "-1",
        });
        var failure = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains(failure.Failures, f => f.Contains("'127.0.0.1:2379' is not an absolute http", StringComparison.Ordinal));
        Assert.Contains(failure.Failures, f => f.Contains("Keel:DialTimeout", StringComparison.Ordinal));
        Assert.Contains(failure.Failures, f => f.Contains("Keel:RetryLimit", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Missing_endpoints_fail_at_start_up()
    {
        await using var provider = Provider(new());
        var failure = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains(failure.Failures, f => f.Contains("at least one endpoint", StringComparison.Ordinal));
    }

    [Fact]
    public void A_client_built_by_hand_refuses_invalid_options()
    {
        var failure = Assert.Throws<ArgumentException>(() => new KeelClient(new KeelClientOptions { Endpoints = ["ftp://x"], CommandTimeout = TimeSpan.FromHours(1) }));
        Assert.Contains("ftp://x", failure.Message, StringComparison.Ordinal);
        Assert.Contains("CommandTimeout", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Backoff_grows_from_25_to_at_most_1000_ms()
    {
        for (var attempt = 1; attempt <= 30; attempt++)
        {
            var pause = KeelClient.Backoff(attempt).TotalMilliseconds;
            var ceiling = Math.Min(1000, 50 * Math.Pow(2, attempt - 1));
            Assert.InRange(pause, ceiling / 2, ceiling);
        }
    }

    [Theory]
    [InlineData("a/", "a0")]
    [InlineData("ab~", "ab\u007f")]
    public void Prefix_end_is_the_prefix_with_its_last_byte_incremented(string prefix, string end) =>
        Assert.Equal(end, Keys.PrefixEnd(prefix).ToStringUtf8());

    [Fact]
    public void Round_robin_passes_over_a_failed_member()
    {
        using var endpoints = new Endpoints(new KeelClientOptions { Endpoints = ["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"] });
        Assert.Equal([0, 1, 2, 0], Enumerable.Range(0, 4).Select(_ => endpoints.Pick()).ToArray());
        endpoints.Failed(1);
        Assert.DoesNotContain(1, Enumerable.Range(0, 6).Select(_ => endpoints.Pick()));
        endpoints.Succeeded(1);
        Assert.Contains(1, Enumerable.Range(0, 3).Select(_ => endpoints.Pick()));
    }
}
