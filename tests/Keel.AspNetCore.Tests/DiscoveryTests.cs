using Keel.AspNetCore.Discovery;
using Keel.Client;
using Keel.Client.Configuration;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Keel.AspNetCore.Tests;

/// <summary>Service registration and discovery, and configuration with live reload, in app instances.</summary>
[Collection(SerialCollection.Name)]
public sealed class DiscoveryTests(ClusterFixture fixture)
{
    private Task<WebApplication> StartRegisteredAsync(Apps apps, string service, string address) =>
        fixture.StartAppAsync(builder =>
        {
            builder.Services.AddKeelServiceDiscovery(o => o.KeyPrefix = "disc/");
            builder.Services.AddKeelServiceRegistration(new KeelServiceRegistrationOptions
            {
                ServiceName = service, Address = _ => address, LeaseTtl = TimeSpan.FromSeconds(2),
                Metadata = new Dictionary<string, string> { ["zone"] = "z1" },
            });
        }, _ => { }).ContinueWith(t => apps.Add(t.Result), TaskScheduler.Default);

    [Fact(Timeout = 60_000)]
    public async Task Registered_instances_are_found_and_followed_and_gone_after_stop()
    {
        await using var apps = new Apps();
        var discovery = new KeelServiceDiscovery(fixture.Client, new KeelServiceDiscoveryOptions { KeyPrefix = "disc/" });
        using var cancel = new CancellationTokenSource(Poll.Bound);
        var sets = new List<string[]>();
        var seen = new SemaphoreSlim(0);
        var watcher = Task.Run(async () =>
        {
            try
            {
                await foreach (var set in discovery.WatchAsync("billing", cancel.Token))
                {
                    lock (sets) sets.Add(set.Select(i => i.Address).ToArray());
                    seen.Release();
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
        await seen.WaitAsync(Poll.Bound);

        var a = await StartRegisteredAsync(apps, "billing", "http://10.0.0.1:8080");
        var b = await StartRegisteredAsync(apps, "billing", "http://10.0.0.2:8080");
        var found = await discovery.ResolveAsync("billing");
        Assert.Equal(["http://10.0.0.1:8080", "http://10.0.0.2:8080"], found.Select(i => i.Address).Order());
        Assert.All(found, i => Assert.Equal("z1", i.Metadata["zone"]));
        // The app's own container resolves too.
        Assert.Equal(2, (await a.Services.GetRequiredService<IKeelServiceDiscovery>().ResolveAsync("billing")).Count);

        await Apps.StopAsync(a);
        Assert.Equal(["http://10.0.0.2:8080"], (await discovery.ResolveAsync("billing")).Select(i => i.Address));
        await Poll.UntilAsync(() => { lock (sets) return sets.Count >= 4; }, "the watch saw two registrations and one removal");
        cancel.Cancel();
        await watcher;
        lock (sets)
        {
            Assert.Empty(sets[0]);
            Assert.Single(sets[1]);
            Assert.Equal(2, sets[2].Length);
            Assert.Equal(["http://10.0.0.2:8080"], sets[3]);
        }
        _ = b;
    }

    [Fact(Timeout = 60_000)]
    public async Task A_crashed_instance_disappears_after_its_lease_ttl()
    {
        var discovery = new KeelServiceDiscovery(fixture.Client, new KeelServiceDiscoveryOptions { KeyPrefix = "disc/" });
        // A "process" of its own: its client dies without deregistering, as in a crash.
        var crashing = fixture.NewClient();
        var registration = new KeelServiceRegistration(crashing,
            new KeelServiceRegistrationOptions { ServiceName = "crashy", Address = _ => "http://10.0.0.9:80", LeaseTtl = TimeSpan.FromSeconds(2) },
            new KeelServiceDiscoveryOptions { KeyPrefix = "disc/" }, new ServiceCollection().BuildServiceProvider(), NullLogger<KeelServiceRegistration>.Instance);
        await registration.StartedAsync(CancellationToken.None);
        Assert.True(registration.IsRegistered);
        Assert.Single(await discovery.ResolveAsync("crashy"));
        await crashing.DisposeAsync();
        await Poll.UntilAsync(async () => (await discovery.ResolveAsync("crashy")).Count == 0, "the crashed instance expired");
        await registration.StoppingAsync(CancellationToken.None);
    }

    public sealed class Settings
    {
        public string Mode { get; set; } = "";
    }

    [Fact(Timeout = 60_000)]
    public async Task Options_follow_keys_under_a_prefix_through_the_watch()
    {
        await fixture.Client.PutAsync("appcfg/Feature/Mode", "slow");
        await using var apps = new Apps();
        var configClient = fixture.NewClient();
        try
        {
            var app = apps.Add(await fixture.StartAppAsync(builder =>
            {
                builder.Configuration.AddKeel(configClient, "appcfg/");
                builder.Services.Configure<Settings>(builder.Configuration.GetSection("Feature"));
            }, _ => { }));
            var monitor = app.Services.GetRequiredService<IOptionsMonitor<Settings>>();
            Assert.Equal("slow", monitor.CurrentValue.Mode);
            var changes = 0;
            using var subscription = monitor.OnChange(_ => Interlocked.Increment(ref changes));
            await fixture.Client.PutAsync("appcfg/Feature/Mode", "fast");
            await Poll.UntilAsync(() => monitor.CurrentValue.Mode == "fast", "the options saw the new value");
            Assert.True(Volatile.Read(ref changes) >= 1);
        }
        finally
        {
            await apps.DisposeAsync();
            await configClient.DisposeAsync();
        }
    }
}
