using System.Net;
using Keel.Gossip;
using Keel.Gossip.Hosting;
using Keel.Protocol.V1;
using Keel.Server.Hosting;

namespace Keel.Server.Tests;

/// <summary>Three Keel servers and gossip agents on loopback: servers gossip beside Raft; agents join through them.</summary>
public class GossipMembershipTests
{
    private static async Task<MembersResponse> WaitForMembers(LoopbackCluster cluster, int member, Func<MembersResponse, bool> condition, string what)
    {
        var client = new KeelService.KeelServiceClient(cluster.Channel(member));
        var deadline = DateTime.UtcNow.AddSeconds(40);
        MembersResponse response;
        do
        {
            response = await client.MembersAsync(new MembersRequest());
            if (condition(response)) return response;
            await Task.Delay(100);
        }
        while (DateTime.UtcNow < deadline);
        throw new TimeoutException($"member {member}: {what} within 40 s; last view:\n{response}");
    }

    private static GossipAgentOptions AgentOptions(LoopbackCluster cluster, byte[] key, string zone) => new()
    {
        Key = key,
        Seeds = [GossipHost.EndpointOf(cluster.Options[0].ListenPeerUrls[0])],
        Tags = new MemberTags(zone, "agent", "test", 0),
        RandomSeed = (ulong)zone.GetHashCode(),
        JoinTimeoutMs = 5_000,
    };

    [Fact(Timeout = 120_000)]
    public async Task Agents_join_through_a_server_and_a_killed_agent_is_marked_dead_on_every_server()
    {
        await using var cluster = await LoopbackCluster.StartAsync(3);
        var key = GossipHost.DefaultKey(cluster.Options[0].InitialClusterToken);
        await using var stays = await GossipAgent.StartAsync(AgentOptions(cluster, key, "zone-a"));
        var dies = await GossipAgent.StartAsync(AgentOptions(cluster, key, "zone-b"));
        var diesAddress = dies.LocalEndpoint.ToString();
        var staysAddress = stays.LocalEndpoint.ToString();
        for (var member = 0; member < 3; member++)
        {
            var view = await WaitForMembers(cluster, member,
                r => r.Members.Count(m => m.IsRaftMember && m.GossipState == "alive") == 3
                    && r.Members.Any(m => m.GossipAddress == diesAddress && m.GossipState == "alive")
                    && r.Members.Any(m => m.GossipAddress == staysAddress && m.GossipState == "alive"),
                "three servers and two agents alive");
            var agent = view.Members.Single(m => m.GossipAddress == staysAddress);
            Assert.Equal(("agent", "zone-a", false), (agent.Role, agent.Zone, agent.IsRaftMember));
            Assert.Single(view.Members, m => m.IsLeader);
        }

        await dies.DisposeAsync(); // no leave: to its peers this is a crash
        for (var member = 0; member < 3; member++)
            await WaitForMembers(cluster, member, r => r.Members.Any(m => m.GossipAddress == diesAddress && m.GossipState == "dead"), "the killed agent dead");
        var final = await WaitForMembers(cluster, 2, r => true, "a view");
        Assert.Equal("alive", final.Members.Single(m => m.GossipAddress == staysAddress).GossipState);
    }

    [Fact(Timeout = 120_000)]
    public async Task An_agent_with_the_wrong_key_is_refused_counted_and_never_listed()
    {
        await using var cluster = await LoopbackCluster.StartAsync(3);
        for (var member = 0; member < 3; member++)
            await WaitForMembers(cluster, member, r => r.Members.Count(m => m.IsRaftMember && m.GossipState == "alive") == 3, "three servers alive");
        var forger = AgentOptions(cluster, "not-the-cluster-key-at-all-32byt"u8.ToArray(), "evil");
        await Assert.ThrowsAsync<GossipJoinException>(() => GossipAgent.StartAsync(forger));

        var health = await new KeelService.KeelServiceClient(cluster.Channel(0)).HealthAsync(new HealthRequest());
        Assert.True(health.GossipForgedDropped > 0, health.ToString());
        for (var member = 0; member < 3; member++)
        {
            var view = await new KeelService.KeelServiceClient(cluster.Channel(member)).MembersAsync(new MembersRequest());
            Assert.DoesNotContain(view.Members, m => m.Zone == "evil");
            Assert.Equal(3, view.Members.Count);
        }
    }
}
