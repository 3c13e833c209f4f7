using System.Net;
using System.Net.Sockets;
using Keel.Gossip;
using Keel.Gossip.Hosting;

namespace Keel.Gossip.Hosting.Tests;

/// <summary>Real agents on 127.0.0.1: UDP sockets, real time, the secure channel on every packet.</summary>
public sealed class GossipAgentTests
{
    private static readonly byte[] Key = "keel-agent-integration-test-key!"u8.ToArray();
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    // Fast timers so the test is short; the protocol is the same as with the defaults.
    private static readonly GossipOptions Fast = new()
    {
        ProbeIntervalMs = 200,
        ProbeTimeoutMs = 100,
        GossipIntervalMs = 100,
        PushPullIntervalMs = 2_000,
    };

    private static GossipAgentOptions Options(IPEndPoint? seed, string zone, ulong randomSeed) => new()
    {
        Keys = [Key],
        Seeds = seed is null ? [] : [seed],
        Tags = new MemberTags(zone, "agent", "1.0.0", 0),
        Gossip = Fast,
        RandomSeed = randomSeed,
    };

    private static async Task<List<GossipAgent>> StartCluster(int n)
    {
        var agents = new List<GossipAgent>();
        try
        {
            agents.Add(await GossipAgent.StartAsync(Options(null, "zone-0", 1)));
            for (var i = 1; i < n; i++) agents.Add(await GossipAgent.StartAsync(Options(agents[0].LocalEndpoint, $"zone-{i % 3}", (ulong)i + 1)));
            foreach (var a in agents)
                await a.WaitForMembersAsync(ms => ms.Count(m => m.Status == MemberStatus.Alive) == n).WaitAsync(Bound);
            return agents;
        }
        catch
        {
            await DisposeAll(agents);
            throw;
        }
    }

    private static async Task DisposeAll(IEnumerable<GossipAgent> agents)
    {
        foreach (var a in agents) await a.DisposeAsync();
    }

    [Fact]
    public async Task Agents_join_through_a_seed_and_a_killed_agent_is_marked_dead_everywhere()
    {
        var agents = await StartCluster(5);
        try
        {
            foreach (var a in agents)
            {
                var view = a.Members;
                Assert.Equal(5, view.Count);
                Assert.Contains(view, m => m.Id == agents[4].Id && m.Zone == "zone-1" && m.Endpoint.Equals(agents[4].LocalEndpoint));
            }
            var victim = agents[4];
            await victim.DisposeAsync(); // no leave: a crash as far as the others can tell
            foreach (var a in agents.Take(4))
            {
                // Awaited together: on a slow machine a live agent may be briefly Suspect (a late ack) until it refutes.
                var view = await a.WaitForMembersAsync(ms => ms.Any(m => m.Id == victim.Id && m.Status == MemberStatus.Dead) &&
                    ms.Count(m => m.Status == MemberStatus.Alive) == 4).WaitAsync(Bound);
                Assert.Equal(4, view.Count(m => m.Status == MemberStatus.Alive));
                Assert.Equal(Keel.Heartbeat.HealthState.Failed, view.Single(m => m.Id == victim.Id).Health);
            }
        }
        finally
        {
            await DisposeAll(agents);
        }
    }

    [Fact]
    public async Task A_leaving_agent_is_marked_left_not_dead()
    {
        var agents = await StartCluster(3);
        try
        {
            await agents[2].LeaveAsync().WaitAsync(Bound);
            foreach (var a in agents.Take(2))
                await a.WaitForMembersAsync(ms => ms.Any(m => m.Id == agents[2].Id && m.Status == MemberStatus.Left)).WaitAsync(Bound);
        }
        finally
        {
            await DisposeAll(agents);
        }
    }

    [Fact]
    public async Task Forged_and_replayed_datagrams_are_rejected_counted_and_never_spread()
    {
        var agents = await StartCluster(3);
        using var attacker = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        attacker.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var attackerId = GossipAddress.IdOf((IPEndPoint)attacker.LocalEndPoint!);
        try
        {
            var target = agents[0];
            var accused = agents[1];
            // Forged: a death claim about a live member, signed with a key the cluster does not have.
            var forger = new GossipSecureChannel(attackerId, new GossipKeyring("not-the-cluster-key-0123456789ab"u8), 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(attackerId) << 40 ^ (ulong)(1))));
            var lie = new GossipMessage(GossipMessageKind.Gossip);
            lie.Updates.Add(new MemberUpdate(accused.Id, MemberStatus.Dead, 1_000, attackerId));
            attacker.SendTo(forger.Seal(lie), target.LocalEndpoint);
            // Replayed: an authentic packet sent twice; the second copy must be dropped.
            var insider = new GossipSecureChannel(attackerId, new GossipKeyring(Key), 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(attackerId) << 40 ^ (ulong)(1))));
            var packet = insider.Seal(new GossipMessage(GossipMessageKind.Gossip));
            attacker.SendTo(packet, target.LocalEndpoint);
            attacker.SendTo(packet, target.LocalEndpoint);

            await target.WaitForCountersAsync(c => c.DroppedForged >= 1 && c.DroppedReplayed >= 1).WaitAsync(Bound);
            Assert.Equal(1, target.Counters.DroppedForged);
            Assert.Equal(1, target.Counters.DroppedReplayed);
            // Let every agent exchange a few dozen more packets (several gossip rounds), then look: nobody believes the
            // lie, and the accused never had to refute it (a refutation would raise its incarnation).
            foreach (var a in agents)
            {
                var before = a.Counters.PacketsReceived;
                await a.WaitForCountersAsync(c => c.PacketsReceived >= before + 30).WaitAsync(Bound);
            }
            foreach (var a in agents)
            {
                // The lie was "dead at incarnation 1000": believed, it would show as Dead, or as a refutation past 1000. A
                // real, passing suspicion (a late ack on a slow machine) is neither.
                var seen = a.Members.Single(m => m.Id == accused.Id);
                Assert.NotEqual(MemberStatus.Dead, seen.Status);
                Assert.True(seen.Incarnation < 1_000, $"incarnation {seen.Incarnation}");
            }
        }
        finally
        {
            await DisposeAll(agents);
        }
    }

    [Fact]
    public async Task Joining_through_a_silent_seed_fails_with_a_typed_error()
    {
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var options = Options((IPEndPoint)silent.LocalEndPoint!, "zone-0", 9) with { JoinTimeoutMs = 600, JoinRetryMs = 200 };
        await Assert.ThrowsAsync<GossipJoinException>(() => GossipAgent.StartAsync(options));
    }

    [Fact]
    public void Member_ids_round_trip_through_addresses()
    {
        var endpoint = new IPEndPoint(IPAddress.Parse("10.1.2.3"), 7946);
        var id = GossipAddress.IdOf(endpoint);
        Assert.True(GossipAddress.IsAddressId(id));
        Assert.Equal(endpoint, GossipAddress.EndpointOf(id));
        Assert.Throws<ArgumentException>(() => GossipAddress.EndpointOf(42));
        Assert.Throws<ArgumentException>(() => GossipAddress.IdOf(new IPEndPoint(IPAddress.IPv6Loopback, 1)));
    }
}
