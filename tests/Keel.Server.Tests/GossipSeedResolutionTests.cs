using System.Net;
using System.Net.Sockets;
using Keel.Server.Hosting;

namespace Keel.Server.Tests;

/// <summary>
/// Seeds given by DNS name (a Kubernetes StatefulSet's <c>keel-1.keel.ns.svc</c>) may not resolve when a server starts:
/// the gossip host retries them instead of failing the start.
/// </summary>
public sealed class GossipSeedResolutionTests
{
    private static readonly IPEndPoint Self = new(IPAddress.Parse("10.0.0.1"), 2380);

    [Fact]
    public async Task A_seed_whose_name_is_not_published_yet_is_reported_unresolved_and_resolves_on_a_later_attempt()
    {
        var published = new Dictionary<string, IPAddress> { ["keel-2.keel.ns.svc"] = IPAddress.Parse("10.0.0.3") };
        Task<IPAddress[]> Resolve(string host, CancellationToken _) =>
            published.TryGetValue(host, out var address) ? Task.FromResult(new[] { address }) : throw new SocketException((int)SocketError.HostNotFound);
        Uri[] seeds = [new("http://keel-1.keel.ns.svc:2380"), new("http://keel-2.keel.ns.svc:2380")];

        var first = await GossipHost.ResolveSeedsAsync(seeds, Self, Resolve, CancellationToken.None);
        Assert.Equal([new IPEndPoint(IPAddress.Parse("10.0.0.3"), 2380)], first.Resolved);
        Assert.Equal(["keel-1.keel.ns.svc"], first.Unresolved);

        published["keel-1.keel.ns.svc"] = IPAddress.Parse("10.0.0.2");
        var second = await GossipHost.ResolveSeedsAsync(seeds, Self, Resolve, CancellationToken.None);
        Assert.Equal([new IPEndPoint(IPAddress.Parse("10.0.0.2"), 2380), new IPEndPoint(IPAddress.Parse("10.0.0.3"), 2380)], second.Resolved);
        Assert.Empty(second.Unresolved);
    }

    [Fact]
    public async Task Literal_addresses_need_no_lookup_and_this_member_is_never_its_own_seed()
    {
        Task<IPAddress[]> NoLookup(string host, CancellationToken _) => throw new InvalidOperationException($"looked up {host}");
        Uri[] seeds = [new("http://10.0.0.1:2380"), new("http://10.0.0.2:2380"), new("http://10.0.0.2:2380"), new("http://[::1]:2380")];

        var (resolved, unresolved) = await GossipHost.ResolveSeedsAsync(seeds, Self, NoLookup, CancellationToken.None);

        Assert.Equal([new IPEndPoint(IPAddress.Parse("10.0.0.2"), 2380), new IPEndPoint(IPAddress.IPv6Loopback, 2380)], resolved);
        Assert.Empty(unresolved);
    }

    [Fact]
    public void A_report_about_a_member_whose_name_does_not_resolve_gets_no_endpoint_instead_of_an_exception()
    {
        Assert.Null(GossipHost.TryEndpointOf(new Uri("http://keel-9.keel.invalid:2380")));
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 2380), GossipHost.TryEndpointOf(new Uri("http://127.0.0.1:2380")));
    }
}
