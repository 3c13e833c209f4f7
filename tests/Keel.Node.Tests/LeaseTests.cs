using System.Buffers.Binary;
using Keel.Mvcc;
using static Keel.Node.Tests.TestCluster;

namespace Keel.Node.Tests;

public sealed class LeaseTests
{
    private static KvResult Put(TestCluster cluster, KeelNode node, ulong requestId, string key, long lease) =>
        cluster.Submit(node, requestId, KvCommand.Of(new PutRequest { Key = B(key), Value = B("v"), Lease = lease }));

    private static long Grant(TestCluster cluster, KeelNode node, ulong requestId, long ttlSeconds)
    {
        var granted = cluster.Submit(node, requestId, KvCommand.LeaseGrant(0, ttlSeconds));
        Assert.False(granted.IsError, granted.Error?.Message);
        return granted.LeaseGrant!.LeaseId;
    }

    private static bool Exists(KeelNode node, string key) => node.Store.Range(new RangeRequest { Key = B(key) }).Count == 1;

    [Fact]
    public void Grant_one_second_gives_two_with_a_one_second_election_timeout_and_too_large_is_out_of_range()
    {
        var cluster = new TestCluster([1], tickMs: 100);
        var leader = cluster.ElectLeader();
        var granted = cluster.Submit(leader, 1, KvCommand.LeaseGrant(0, 1));
        Assert.Equal(2, granted.LeaseGrant!.TtlSeconds);
        Assert.True(granted.LeaseGrant.LeaseId > 0);

        var tooLarge = cluster.Submit(leader, 2, KvCommand.LeaseGrant(0, 9_000_000_001));
        Assert.Equal("etcdserver: too large lease TTL", tooLarge.Error!.Message);
        Assert.Equal("OutOfRange", tooLarge.Error.GrpcStatusCode);

        var duplicate = cluster.Submit(leader, 3, KvCommand.LeaseGrant(granted.LeaseGrant.LeaseId, 10));
        Assert.Equal("etcdserver: lease already exists", duplicate.Error!.Message);
        cluster.AssertInvariants();
    }

    [Fact]
    public void A_put_with_an_unknown_lease_is_refused_and_changes_nothing()
    {
        var cluster = new TestCluster([1]);
        var leader = cluster.ElectLeader();
        var before = leader.Store.CurrentRevision;
        var refused = Put(cluster, leader, 1, "k", 12345);
        Assert.Equal("etcdserver: requested lease not found", refused.Error!.Message);
        Assert.Equal("NotFound", refused.Error.GrpcStatusCode);
        var txn = cluster.Submit(leader, 2, KvCommand.Of(new TxnRequest { Success = [RequestOp.Of(new PutRequest { Key = B("t"), Lease = 999 })] }));
        Assert.Equal("etcdserver: requested lease not found", txn.Error!.Message);
        Assert.Equal(before, leader.Store.CurrentRevision);
        Assert.False(Exists(leader, "k"));
    }

    [Fact]
    public void Revoking_deletes_every_attached_key_in_one_revision()
    {
        var cluster = new TestCluster([1]);
        var leader = cluster.ElectLeader();
        var lease = Grant(cluster, leader, 1, 60);
        const int keys = 300; // more than one Txn level of 128 operations
        for (var i = 0; i < keys; i++) Assert.False(Put(cluster, leader, 100UL + (ulong)i, $"eph/{i:D3}", lease).IsError);
        Put(cluster, leader, 2, "plain", 0);
        // A key put again without the lease leaves the lease.
        Put(cluster, leader, 3, "eph/000", 0);

        var ttl = leader.LeaseTimeToLive(lease, includeKeys: true);
        Assert.Equal(keys - 1, ttl.Keys.Count);
        Assert.Equal(60, ttl.GrantedTtlSeconds);
        Assert.Equal([lease], leader.Leases());

        var before = leader.Store.CurrentRevision;
        var revoked = cluster.Submit(leader, 4, KvCommand.LeaseRevoke(lease));
        Assert.Equal(keys - 1, revoked.LeaseRevoke!.DeletedKeys);
        Assert.Equal(before + 1, leader.Store.CurrentRevision);
        Assert.Equal(before + 1, revoked.LeaseRevoke.Revision);
        Assert.Equal(1, leader.Store.Range(new RangeRequest { Key = B("eph/"), RangeEnd = B("eph0") }).Count);
        Assert.True(Exists(leader, "plain"));
        Assert.Equal(-1, leader.LeaseTimeToLive(lease, false).TtlSeconds);
        Assert.Empty(leader.Leases());
        Assert.Equal("etcdserver: requested lease not found", cluster.Submit(leader, 5, KvCommand.LeaseRevoke(lease)).Error!.Message);
        Assert.Equal(0, cluster.Submit(leader, 6, KvCommand.LeaseKeepAlive(lease)).LeaseKeepAlive!.TtlSeconds);
        cluster.AssertInvariants();
    }

    [Fact]
    public void The_leader_expires_a_lease_nobody_keeps_alive_and_keep_alives_hold_it()
    {
        var cluster = new TestCluster([1, 2, 3], tickMs: 100);
        var leader = cluster.ElectLeader();
        var kept = Grant(cluster, leader, 1, 3);
        var dropped = Grant(cluster, leader, 2, 3);
        Put(cluster, leader, 3, "kept", kept);
        Put(cluster, leader, 4, "dropped", dropped);
        var follower = cluster.Nodes.Values.First(n => !n.IsLeader);
        ulong request = 10;
        for (var second = 0; second < 8; second++)
        {
            // Keep-alives may go through a follower: they are replicated entries like any write.
            var renewed = cluster.Submit(follower, request++, KvCommand.LeaseKeepAlive(kept));
            Assert.Equal(3, renewed.LeaseKeepAlive!.TtlSeconds);
            cluster.Step(1_000);
        }
        foreach (var node in cluster.Nodes.Values)
        {
            Assert.True(Exists(node, "kept"));
            Assert.False(Exists(node, "dropped"));
            Assert.Equal([kept], node.Leases());
            Assert.Equal(node.IsLeader, node.LeaseTable.IsPrimary);
        }
        cluster.AssertInvariants();
    }

    [Fact]
    public void A_leader_change_does_not_shorten_a_lease_and_a_deposed_leader_never_revokes()
    {
        var cluster = new TestCluster([1, 2, 3], tickMs: 100);
        var oldLeader = cluster.ElectLeader();
        var lease = Grant(cluster, oldLeader, 1, 5);
        Put(cluster, oldLeader, 2, "lock", lease);
        var grantedAtMs = cluster.NowMs;

        // The leader is cut off: it may still believe it leads for a while, but its revocations cannot commit.
        cluster.Isolated.Add(oldLeader.Id);
        cluster.StepUntil(() => cluster.HasLeader && cluster.Leader.Id != oldLeader.Id);
        var newLeader = cluster.Leader;
        // Nobody keeps the lease alive: it must survive its full TTL measured from the grant...
        cluster.StepUntil(() => cluster.NowMs >= grantedAtMs + 4_800);
        Assert.True(Exists(newLeader, "lock"));
        Assert.Contains(lease, newLeader.Leases());
        // ...and expire afterwards (TTL plus at most the promotion extension and an expiry period, etcd's bound).
        cluster.StepUntil(() => !Exists(newLeader, "lock"), maxMs: 5_000);
        Assert.True(cluster.NowMs - grantedAtMs <= 5_000 + 1_000 + 5_000 + 600, $"expired {cluster.NowMs - grantedAtMs} ms after the grant");
        // The deposed leader never applied a revocation of its own: it only learns the new leader's after healing.
        Assert.True(Exists(oldLeader, "lock"));
        cluster.Isolated.Clear();
        cluster.StepUntil(() => !Exists(oldLeader, "lock"));
        Assert.False(oldLeader.LeaseTable.IsPrimary);
        cluster.AssertInvariants();
    }

    [Fact]
    public void A_leader_that_was_paused_does_not_revoke_leases_that_fell_due_during_its_pause()
    {
        var directory = NewDirectory(9);
        var node = KeelNode.Open(new KeelNodeOptions { NodeId = 1, Voters = [1], Random = new Keel.Core.DeterministicRandom(9), TickMs = 100 }, directory);
        long now = 0;
        void Tick(long ms) { now += ms; node.Tick(now, StartWallMs + now); }
        while (!node.IsLeader) Tick(100);
        node.Submit(1, KvCommand.LeaseGrant(0, 3));
        Tick(100);
        var lease = node.Leases().Single();
        node.Submit(2, KvCommand.Of(new PutRequest { Key = B("k"), Lease = lease }));
        Tick(100);
        // The process is frozen for 10 s (GC, VM suspended): its first tick afterwards must not revoke the lease.
        Tick(10_000);
        Tick(100);
        Assert.Contains(lease, node.Leases());
        Assert.Equal(1, node.LeaseTable.StallsDetected);
        // Without keep-alives it expires a TTL later.
        for (var i = 0; i < 60 && node.Leases().Length > 0; i++) Tick(100);
        Assert.Empty(node.Leases());
        Assert.Equal(0, node.Store.Range(new RangeRequest { Key = B("k") }).Count);
    }

    [Fact]
    public void A_former_holder_is_fenced_off_after_a_new_grant()
    {
        var cluster = new TestCluster([1]);
        var leader = cluster.ElectLeader();
        var first = cluster.Submit(leader, 1, KvCommand.LeaseGrant(0, 60)).LeaseGrant!;
        static byte[] Token(ulong token) { var bytes = new byte[8]; BinaryPrimitives.WriteUInt64BigEndian(bytes, token); return bytes; }
        // The documented fenced write: compare the fence key's value (the big-endian token) <= mine, then write.
        TxnRequest Fenced(ulong token, string value) => new()
        {
            Compares = [new Compare { Key = B("fence"), Target = CompareTarget.Value, Result = CompareResult.Less, ValueOperand = Token(token + 1) }],
            Success = [RequestOp.Of(new PutRequest { Key = B("fence"), Value = Token(token) }), RequestOp.Of(new PutRequest { Key = B("data"), Value = B(value) })],
        };
        cluster.Submit(leader, 2, KvCommand.Of(new PutRequest { Key = B("fence"), Value = Token(0) }));
        Assert.True(cluster.Submit(leader, 3, KvCommand.Of(Fenced(first.FencingToken, "old"))).Txn!.Succeeded);

        // The first holder pauses; its lease goes; a new holder is granted a larger token and writes.
        cluster.Submit(leader, 4, KvCommand.LeaseRevoke(first.LeaseId));
        var second = cluster.Submit(leader, 5, KvCommand.LeaseGrant(0, 60)).LeaseGrant!;
        Assert.True(second.FencingToken > first.FencingToken);
        Assert.True(second.LeaseId > first.LeaseId);
        Assert.True(cluster.Submit(leader, 6, KvCommand.Of(Fenced(second.FencingToken, "new"))).Txn!.Succeeded);

        // The former holder wakes up and writes with its old token: refused, data unchanged.
        Assert.False(cluster.Submit(leader, 7, KvCommand.Of(Fenced(first.FencingToken, "stale"))).Txn!.Succeeded);
        Assert.Equal("new", System.Text.Encoding.UTF8.GetString(leader.Store.Range(new RangeRequest { Key = B("data") }).Kvs[0].Value));
    }

    [Fact]
    public void Leases_and_their_keys_survive_a_restart()
    {
        var cluster = new TestCluster([1]);
        var leader = cluster.ElectLeader();
        var lease = Grant(cluster, leader, 1, 600);
        Put(cluster, leader, 2, "k", lease);
        var restarted = cluster.Start(1);
        cluster.StepUntil(() => restarted.IsLeader && restarted.AppliedIndex >= leader.AppliedIndex);
        Assert.Equal([lease], restarted.Leases());
        Assert.Equal([B("k")], restarted.LeaseTimeToLive(lease, true).Keys);
        restarted.AssertInvariants();
    }
}

public sealed class LeaseCheckpointTests
{
    // Leadership moves every 2.5 s; a new leader extends each lease by one election timeout (1 s) past what it knows is
    // left. Without checkpoints it knows only the full TTL (3 s), so the lease is renewed forever by leader changes
    // alone (etcd #9395); with checkpoints every 500 ms it knows what is really left, and the lease expires.
    private static bool SurvivesLeaderChanges(long checkpointIntervalMs)
    {
        var cluster = new TestCluster([1, 2, 3], tickMs: 100, configure: o => o with { LeaseCheckpointIntervalMs = checkpointIntervalMs });
        var leader = cluster.ElectLeader();
        var lease = cluster.Submit(leader, 1, KvCommand.LeaseGrant(0, 3)).LeaseGrant!.LeaseId;
        for (var round = 0; round < 12; round++)
        {
            cluster.Step(2_500);
            if (!cluster.HasLeader) continue;
            var current = cluster.Leader;
            current.TransferLeadership(cluster.Nodes.Keys.First(id => id != current.Id));
            cluster.Deliver();
        }
        cluster.AssertInvariants();
        return cluster.Nodes.Values.Any(n => n.Leases().Contains(lease));
    }

    [Fact]
    public void Checkpoints_keep_frequent_leader_changes_from_renewing_a_lease_forever()
    {
        Assert.True(SurvivesLeaderChanges(checkpointIntervalMs: 0), "control: without checkpoints leader changes renew the lease");
        Assert.False(SurvivesLeaderChanges(checkpointIntervalMs: 500), "with checkpoints the lease expires despite leader changes");
    }
}
