using Grpc.Net.Client;
using Keel.AspNetCore.Discovery;
using Keel.Protocol.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Keel.AspNetCore.Tests;

/// <summary>
/// Discovery with a gossip agent in each app instance (<c>AddKeelGossipAgent</c>): the instances join the real
/// servers' SWIM pool with the cluster's key, discovery reports them healthy, and an instance whose agent stops answering
/// gossip (a crash of the agent, no leave) is left out as soon as the servers declare it dead, while its registration's
/// lease is still alive and a lease-only registry would still hand it out.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class GossipDiscoveryTests(ClusterFixture fixture) : IDisposable
{
    private readonly string _keyFile = Path.Combine(Path.GetTempPath(), $"keel-gossip-keys-{Environment.ProcessId}-{Guid.NewGuid():N}");

    public void Dispose() => File.Delete(_keyFile);

    /// <summary>The cluster's replicated gossip keyring as a key file (what <c>keel keyring list &gt; FILE</c> writes).</summary>
    private async Task WriteKeyFileAsync()
    {
        using var channel = GrpcChannel.ForAddress(fixture.Cluster.ClientUrls[0]);
        var keyring = await new KeelService.KeelServiceClient(channel).KeyringAsync(new KeyringRequest { Action = KeyringRequest.Types.Action.List },
            deadline: DateTime.UtcNow.AddSeconds(20));
        Assert.NotEmpty(keyring.Keys);
        await File.WriteAllLinesAsync(_keyFile, keyring.Keys.OrderByDescending(k => k.Primary).Select(k => k.Key));
    }

    private async Task<WebApplication> StartGossipingAsync(Apps apps, string address) => apps.Add(await fixture.StartAppAsync(builder =>
    {
        builder.Services.AddKeelGossipAgent(o =>
        {
            foreach (var member in fixture.Cluster.Members) o.Join.Add(new Uri(member.PeerUrl).Authority);
            o.KeyFile = _keyFile;
            o.Zone = "z-gossip";
        });
        builder.Services.AddKeelServiceDiscovery(o => o.KeyPrefix = "gdisc/");
        // The default 10 s lease: long enough that only gossip can tell the dead agent apart.
        builder.Services.AddKeelServiceRegistration(new KeelServiceRegistrationOptions { ServiceName = "inventory", Address = _ => address });
    }, _ => { }));

    [Fact(Timeout = 120_000)]
    public async Task An_instance_whose_agent_the_cluster_finds_dead_is_left_out_while_its_lease_lives()
    {
        await WriteKeyFileAsync();
        await using var apps = new Apps();
        await StartGossipingAsync(apps, "http://10.0.1.1:80");
        var b = await StartGossipingAsync(apps, "http://10.0.1.2:80");
        var discovery = new KeelServiceDiscovery(fixture.Client, new KeelServiceDiscoveryOptions { KeyPrefix = "gdisc/" });
        await Poll.UntilAsync(async () => await discovery.ResolveAsync("inventory") is { Count: 2 } both && both.All(i => i.Health == ServiceHealth.Healthy),
            "both instances registered and healthy by gossip");
        Assert.All(await discovery.ResolveAsync("inventory"), i => Assert.NotNull(i.GossipMemberId));
        var agentB = b.Services.GetRequiredService<KeelGossipAgent>().Agent!;
        var servers = await fixture.Client.MembersAsync();
        Assert.Contains(servers, m => m.Id == agentB.Id && m.Role == "agent" && m.Zone == "z-gossip" && !m.IsRaftMember);

        // b's agent stops the way a crash does (no leave); its app, client and kept-alive lease go on.
        await agentB.DisposeAsync();
        var registrationB = b.Services.GetServices<IHostedService>().OfType<KeelServiceRegistration>().Single();
        await Poll.UntilAsync(async () => (await discovery.ResolveAsync("inventory")).Select(i => i.Address).SequenceEqual(["http://10.0.1.1:80"]),
            "b is left out once the servers declare its agent dead");
        Assert.True(registrationB.IsRegistered, "b's registration lease is still alive: only gossip left it out");
        var registry = await fixture.Client.GetPrefixAsync("gdisc/inventory/");
        Assert.Equal(2, registry.Kvs.Count);

        // b stays Down for good; a live member may be suspected for a moment on a loaded machine (SWIM refutes it), so a's
        // health is awaited rather than sampled once.
        var withDownDiscovery = new KeelServiceDiscovery(fixture.Client, new KeelServiceDiscoveryOptions { KeyPrefix = "gdisc/", IncludeDown = true });
        var withDown = await withDownDiscovery.ResolveAsync("inventory");
        Assert.Equal(2, withDown.Count);
        Assert.Equal(ServiceHealth.Down, withDown.Single(i => i.GossipMemberId == agentB.Id).Health);
        await Poll.UntilAsync(async () => (await withDownDiscovery.ResolveAsync("inventory")) is var all
                && all.Single(i => i.GossipMemberId == agentB.Id).Health == ServiceHealth.Down
                && all.Single(i => i.GossipMemberId != agentB.Id).Health == ServiceHealth.Healthy,
            "a healthy and b down, both listed with IncludeDown");
    }
}
