using System.Text;
using Keel.Mvcc;

namespace Keel.Node.Tests;

/// <summary>
/// Requests that find no leader wait for one (<see cref="KeelNodeOptions.LeaderWaitMs"/>, etcd 3.4's parking) instead of
/// failing at once: they go on when a leader is known, fail with "no leader" after the bound, and the waiting queue has
/// a bound of its own.
/// </summary>
public sealed class LeaderWaitTests
{
    private static TestCluster Cluster(long leaderWaitMs, int maxAwaiting = 10_000, ulong seed = 1) =>
        new([1, 2, 3], configure: o => o with { LeaderWaitMs = leaderWaitMs, MaxRequestsAwaitingLeader = maxAwaiting }, seed: seed);

    private static KvCommand Put(string key, string value) =>
        KvCommand.Of(new PutRequest { Key = TestCluster.B(key), Value = TestCluster.B(value) });

    [Fact]
    public void A_write_and_a_read_during_an_election_wait_and_complete_once_a_leader_is_known()
    {
        var cluster = Cluster(leaderWaitMs: 5_000);
        var node = cluster.Nodes[1];
        // A fresh cluster: nobody has been elected yet.
        Assert.Equal(0UL, node.Raft.Leader);
        node.Submit(1, Put("k", "v"));
        node.Read(2, new RangeRequest { Key = TestCluster.B("k") }, linearizable: true);
        cluster.Deliver();
        Assert.Empty(cluster.Responses);
        Assert.Equal(2, node.RequestsAwaitingLeader);

        var put = cluster.Await(1);
        Assert.Null(put.Error);
        var read = cluster.Await(2);
        Assert.Null(read.Error);
        Assert.True(cluster.HasLeader);
        Assert.Equal(0, node.RequestsAwaitingLeader);
        Assert.Equal(2, node.RequestsResumedAfterLeaderWait);
        // Proposed once: one revision on every replica.
        cluster.StepUntil(() => cluster.Nodes.Values.All(n => n.Store.CurrentRevision == put.Put!.Revision));
        var kv = Assert.Single(cluster.Leader.Store.Range(new RangeRequest { Key = TestCluster.B("k") }).Kvs);
        Assert.Equal(1, kv.Version);
        cluster.AssertInvariants();
    }

    [Fact]
    public void A_follower_that_lost_its_leader_holds_writes_and_reads_until_the_new_leader_is_known()
    {
        var cluster = Cluster(leaderWaitMs: 5_000, seed: 3);
        var old = cluster.ElectLeader();
        var follower = cluster.Nodes.Values.First(n => n.Id != old.Id);
        Assert.Null(cluster.Submit(follower, 1, Put("k", "before")).Error);
        // Cut off from both, the follower loses its leader and can elect nobody: the requests wait.
        var other = cluster.Nodes.Values.First(n => n.Id != old.Id && n.Id != follower.Id);
        cluster.Isolated.Add(old.Id);
        cluster.Isolated.Add(other.Id);
        cluster.StepUntil(() => follower.Raft.Leader == 0);
        var revision = follower.Store.CurrentRevision;
        follower.Submit(2, Put("k", "after"));
        follower.Read(3, new RangeRequest { Key = TestCluster.B("k") }, linearizable: true);
        cluster.Step(500);
        Assert.DoesNotContain(cluster.Responses, r => r.RequestId is 2 or 3);
        Assert.Equal(2, follower.RequestsAwaitingLeader);
        // The other follower comes back: the two elect a new leader and the waiting requests go on.
        cluster.Isolated.Remove(other.Id);

        Assert.Null(cluster.Await(2).Error);
        var read = cluster.Await(3);
        Assert.Null(read.Error);
        // Read and write were concurrent: either value is linearizable, a missing key is not.
        Assert.Contains(Encoding.UTF8.GetString(Assert.Single(read.Range!.Kvs).Value), new[] { "before", "after" });
        Assert.NotEqual(old.Id, follower.Raft.Leader);
        Assert.Equal(revision + 1, follower.Store.CurrentRevision);
        cluster.AssertInvariants();
    }

    [Fact]
    public void Without_a_leader_in_time_the_request_fails_with_no_leader_after_the_bound()
    {
        var cluster = Cluster(leaderWaitMs: 600);
        foreach (var id in cluster.Nodes.Keys) cluster.Isolated.Add(id);
        var node = cluster.Nodes[1];
        var started = cluster.NowMs;
        node.Submit(1, Put("k", "v"));
        // The caller's own deadline is shorter than the node's bound: it wins.
        node.Read(2, new RangeRequest { Key = TestCluster.B("k") }, linearizable: true, leaderWaitUntilMs: started + 200);

        var read = cluster.Await(2);
        Assert.Equal("etcdserver: no leader", read.Error!.Message);
        Assert.InRange(cluster.NowMs - started, 200, 300);
        Assert.Equal(1, node.RequestsAwaitingLeader);
        var write = cluster.Await(1);
        Assert.Equal("etcdserver: no leader", write.Error!.Message);
        Assert.True(write.Error.IsDefinite);
        Assert.InRange(cluster.NowMs - started, 600, 700);
        Assert.Equal(0, node.RequestsAwaitingLeader);
        Assert.Equal(2, node.RequestsExpiredAwaitingLeader);
        Assert.Empty(node.Store.Range(new RangeRequest { Key = TestCluster.B("k") }).Kvs);
        cluster.AssertInvariants();
    }

    [Fact]
    public void A_full_waiting_queue_refuses_at_once_with_too_many_requests()
    {
        var cluster = Cluster(leaderWaitMs: 5_000, maxAwaiting: 2);
        foreach (var id in cluster.Nodes.Keys) cluster.Isolated.Add(id);
        var node = cluster.Nodes[1];
        node.Submit(1, Put("a", "1"));
        node.Submit(2, Put("b", "2"));
        node.Submit(3, Put("c", "3"));
        cluster.Deliver();
        var refused = Assert.Single(cluster.Responses);
        Assert.Equal(3UL, refused.RequestId);
        Assert.Equal("etcdserver: too many requests", refused.Error!.Message);
        Assert.Equal(2, node.RequestsAwaitingLeader);
        cluster.Responses.Clear();

        // The two that waited go on once the partition heals and a leader is elected.
        cluster.Isolated.Clear();
        Assert.Null(cluster.Await(1).Error);
        Assert.Null(cluster.Await(2).Error);
        cluster.AssertInvariants();
    }

    [Fact]
    public void With_waiting_off_the_request_fails_at_once()
    {
        var cluster = Cluster(leaderWaitMs: 0);
        var node = cluster.Nodes[1];
        node.Submit(1, Put("k", "v"));
        cluster.Deliver();
        Assert.Equal("etcdserver: no leader", Assert.Single(cluster.Responses).Error!.Message);
        Assert.Equal(0, node.RequestsAwaitingLeader);
    }
}
