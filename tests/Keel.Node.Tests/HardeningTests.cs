using FsCheck.Xunit;
using Keel.Core;
using Keel.Mvcc;
using Keel.Raft;
using static Keel.Node.Tests.TestCluster;

namespace Keel.Node.Tests;

/// <summary>
/// What outside input can do to a node group: requests with out-of-range fields are refused before the log, committed
/// entries holding any bytes at all are applied identically by every replica without an exception, the space quota and a
/// full disk raise NOSPACE instead of stopping anything.
/// </summary>
public sealed class HardeningTests
{
    private static KvCommand Put(string key, string value) => KvCommand.Of(new PutRequest { Key = B(key), Value = B(value) });

    /// <summary>The probe that stopped every member: a Txn compare with result 7 (or target 9).</summary>
    private static KvCommand CompareProbe(int target, int result) => KvCommand.Of(new TxnRequest
    {
        Compares = [new Compare { Key = B("probe"), Target = (CompareTarget)target, Result = (CompareResult)result, NumberOperand = 1 }],
        Success = [RequestOp.Of(new PutRequest { Key = B("probe"), Value = B("x") })],
        Failure = [],
    });

    private static KvCommand SortProbe(int sortTarget, int sortOrder) => KvCommand.Of(new TxnRequest
    {
        Compares = [],
        Success = [RequestOp.Of(new RangeRequest { Key = B("a"), RangeEnd = [0], SortTarget = (SortTarget)sortTarget, SortOrder = (SortOrder)sortOrder })],
        Failure = [],
    });

    private static void AssertReplicasAgree(TestCluster cluster)
    {
        cluster.Step(300);
        var applied = cluster.Nodes.Values.Select(n => n.AppliedIndex).Distinct().ToArray();
        Assert.Single(applied);
        var hashes = cluster.Nodes.Values.Select(n => n.Store.HashKv(0).Hash).Distinct().ToArray();
        Assert.Single(hashes);
        cluster.AssertInvariants();
    }

    [Theory]
    [InlineData(0, 7)]
    [InlineData(9, 0)]
    [InlineData(255, 255)]
    public void A_compare_with_an_unknown_result_or_target_is_refused_before_the_log(int target, int result)
    {
        var cluster = new TestCluster([1, 2, 3]);
        var leader = cluster.ElectLeader();
        var lastIndex = leader.Raft.Log.LastIndex;
        var answer = cluster.Submit(leader, 1, CompareProbe(target, result));
        Assert.True(answer.IsError);
        Assert.Equal("InvalidArgument", answer.Error!.GrpcStatusCode);
        Assert.Contains("invalid compare", answer.Error.Message);
        Assert.Equal(lastIndex, leader.Raft.Log.LastIndex);
        Assert.False(cluster.Submit(leader, 2, Put("k", "v")).IsError);
    }

    [Fact]
    public void A_range_with_an_unknown_sort_target_is_refused_on_every_read_path()
    {
        var cluster = new TestCluster([1, 2, 3]);
        var leader = cluster.ElectLeader();
        foreach (var linearizable in new[] { true, false })
        {
            leader.Read(10, new RangeRequest { Key = B("a"), SortTarget = (SortTarget)9 }, linearizable);
            var answer = cluster.Await(10);
            Assert.Equal("InvalidArgument", answer.Error!.GrpcStatusCode);
            Assert.Contains("sort target", answer.Error.Message);
        }
        Assert.Equal("InvalidArgument", cluster.Submit(leader, 11, SortProbe(9, 0)).Error!.GrpcStatusCode);
        Assert.Equal("InvalidArgument", cluster.Submit(leader, 12, SortProbe(0, 3)).Error!.GrpcStatusCode);
    }

    [Fact]
    public void Txn_limits_are_checked_across_nesting_before_the_log()
    {
        var cluster = new TestCluster([1]);
        var leader = cluster.ElectLeader();
        var lastIndex = leader.Raft.Log.LastIndex;
        var tooMany = new TxnRequest
        {
            Compares = [],
            Success = [RequestOp.Of(new TxnRequest { Compares = [], Success = Enumerable.Range(0, 129).Select(i => RequestOp.Of(new PutRequest { Key = B($"k{i}") })).ToArray(), Failure = [] })],
            Failure = [],
        };
        Assert.Equal("etcdserver: too many operations in txn request", cluster.Submit(leader, 1, KvCommand.Of(tooMany)).Error!.Message);
        var duplicate = new TxnRequest
        {
            Compares = [],
            Success = [RequestOp.Of(new PutRequest { Key = B("d") }), RequestOp.Of(new TxnRequest { Compares = [], Success = [RequestOp.Of(new PutRequest { Key = B("d") })], Failure = [] })],
            Failure = [],
        };
        Assert.Equal("etcdserver: duplicate key given in txn request", cluster.Submit(leader, 2, KvCommand.Of(duplicate)).Error!.Message);
        var deep = new TxnRequest { Compares = [], Success = [], Failure = [] };
        for (var i = 0; i < MvccStore.MaxTxnNestingDepth + 2; i++) deep = new TxnRequest { Compares = [], Success = [RequestOp.Of(deep)], Failure = [] };
        Assert.Contains("nest deeper", cluster.Submit(leader, 3, KvCommand.Of(deep)).Error!.Message);
        Assert.Equal(lastIndex, leader.Raft.Log.LastIndex);
    }

    [Fact]
    public void Probes_committed_anyway_are_refused_by_every_replica_and_survive_a_restart()
    {
        // A buggy or hostile proposer bypasses validation: the entries are committed, and each replica answers them
        // with the same error, changes nothing, and serves on, also after every member restarts from its WAL.
        var cluster = new TestCluster([1, 2, 3]);
        var leader = cluster.ElectLeader();
        cluster.Submit(leader, 1, Put("k", "v"));
        var probes = new[] { CompareProbe(0, 7), CompareProbe(9, 0), SortProbe(9, 0), SortProbe(0, 9) };
        var proposalId = 1_000UL;
        foreach (var probe in probes)
            Assert.Equal(ProposeStatus.Appended, leader.Raft.Propose(CommandCodec.Encode(new CommandHeader(proposalId++, 99, 1), probe)).Status);
        Assert.Equal(ProposeStatus.Appended, leader.Raft.Propose(new byte[] { 0xFF, 1, 2, 3 }).Status);
        AssertReplicasAgree(cluster);
        Assert.All(cluster.Nodes.Values, n => Assert.Equal(1, n.InvalidEntriesSkipped));
        var revision = leader.Store.CurrentRevision;
        Assert.Equal(2, revision);

        foreach (var id in cluster.Nodes.Keys.ToArray()) cluster.Start(id);
        leader = cluster.ElectLeader();
        Assert.False(cluster.Submit(leader, 2, Put("k", "v2")).IsError);
        AssertReplicasAgree(cluster);
    }

    [Property(MaxTest = 25)]
    public void Any_bytes_as_committed_entries_leave_replicas_equal_and_serving(int seed)
    {
        var random = new DeterministicRandom((ulong)(uint)seed + 1);
        var cluster = new TestCluster([1, 2, 3], seed: (ulong)(uint)seed % 7 + 1);
        var leader = cluster.ElectLeader();
        cluster.Submit(leader, 1, Put("a", "1"));
        var valid = new[]
        {
            CommandCodec.Encode(new CommandHeader(7, 1, 5), Put("b", "2")),
            CommandCodec.Encode(new CommandHeader(8, 1, 5), CompareProbe(1, 2)),
            CommandCodec.Encode(new CommandHeader(9, 1, 5), KvCommand.LeaseGrant(5, 10)),
            CommandCodec.Encode(new CommandHeader(10, 1, 5), KvCommand.Compact(2)),
            CommandCodec.Encode(new CommandHeader(11, 1, 5), KvCommand.OfAlarm(new AlarmChange(AlarmAction.Activate, 3, AlarmType.Corrupt))),
            CommandCodec.Encode(new CommandHeader(12, 1, 5), KvCommand.LeaseCheckpoint([new Keel.Leases.LeaseCheckpoint(5, 1, 0, 100)])),
        };
        for (var i = 0; i < 40; i++)
        {
            byte[] entry;
            switch (random.NextUInt64() % 3)
            {
                case 0:
                    entry = new byte[(int)(random.NextUInt64() % 64)];
                    for (var b = 0; b < entry.Length; b++) entry[b] = (byte)random.NextUInt64();
                    break;
                case 1:
                    // A valid command with a few bytes changed: counts, enums and kinds out of range.
                    entry = (byte[])valid[random.NextUInt64() % (ulong)valid.Length].Clone();
                    for (var flips = 1 + (int)(random.NextUInt64() % 3); flips > 0; flips--)
                        entry[(int)(random.NextUInt64() % (ulong)entry.Length)] = (byte)random.NextUInt64();
                    break;
                default:
                    entry = valid[random.NextUInt64() % (ulong)valid.Length];
                    break;
            }
            leader.Raft.Propose(entry);
            if (i % 8 == 0) cluster.Step(20);
        }
        AssertReplicasAgree(cluster);
        var answer = cluster.Submit(cluster.Leader, 2, Put("after", "ok"));
        Assert.True(!answer.IsError || answer.Error!.Code == KeelErrorCode.NoSpace, answer.Error?.Message);
        AssertReplicasAgree(cluster);
    }

    [Fact]
    public void The_space_quota_raises_nospace_through_the_log_and_etcds_procedure_clears_it()
    {
        var cluster = new TestCluster([1, 2, 3], configure: o => o with { QuotaBackendBytes = 64 * 1024 });
        var leader = cluster.ElectLeader();
        var value = new string('v', 1024);
        KvResult? refused = null;
        for (var i = 0; i < 200 && refused is null; i++)
        {
            var answer = cluster.Submit(leader, (ulong)(10 + i), Put($"key{i}", value));
            if (answer.IsError) refused = answer;
        }
        Assert.NotNull(refused);
        Assert.Equal("etcdserver: mvcc: database space exceeded", refused!.Error!.Message);
        Assert.Equal("ResourceExhausted", refused.Error.GrpcStatusCode);
        cluster.Step(200);
        // Every replica has the alarm and refuses puts; reads and deletes work.
        Assert.All(cluster.Nodes.Values, n => Assert.Equal([new AlarmMember(leader.Id, AlarmType.NoSpace)], n.Alarms));
        var follower = cluster.Nodes.Values.First(n => !n.IsLeader);
        Assert.Equal(KeelErrorCode.NoSpace, cluster.Submit(follower, 500, Put("more", "x")).Error!.Code);
        follower.Read(501, new RangeRequest { Key = B("key0") }, linearizable: true);
        Assert.Single(cluster.Await(501).Range!.Kvs);
        Assert.False(cluster.Submit(leader, 502, KvCommand.Of(new DeleteRangeRequest { Key = B("key"), RangeEnd = B("kez") })).IsError);
        Assert.False(cluster.Submit(leader, 503, KvCommand.Compact(leader.Store.CurrentRevision)).IsError);
        // Still refused until the alarm is disarmed (etcdctl alarm disarm).
        Assert.Equal(KeelErrorCode.NoSpace, cluster.Submit(leader, 504, Put("more", "x")).Error!.Code);
        leader.SubmitAlarm(505, new AlarmChange(AlarmAction.Deactivate, leader.Id, AlarmType.NoSpace));
        Assert.Single(cluster.Await(505).Alarms!);
        cluster.Step(200);
        Assert.All(cluster.Nodes.Values, n => Assert.Empty(n.Alarms));
        Assert.False(cluster.Submit(leader, 506, Put("more", "x")).IsError);
        AssertReplicasAgree(cluster);

        // The alarm survives snapshots and restarts: raise it by hand, restart everyone, it is still there.
        leader.SubmitAlarm(507, new AlarmChange(AlarmAction.Activate, 2, AlarmType.NoSpace));
        cluster.Await(507);
        foreach (var id in cluster.Nodes.Keys.ToArray()) cluster.Start(id);
        cluster.ElectLeader();
        cluster.Step(300);
        Assert.All(cluster.Nodes.Values, n => Assert.Contains(new AlarmMember(2, AlarmType.NoSpace), n.Alarms));
    }

    [Fact]
    public void A_full_disk_stalls_one_member_with_nospace_then_it_catches_up()
    {
        var cluster = new TestCluster([1, 2, 3], configure: o => o with { WalSegmentSizeBytes = 4096 });
        var leader = cluster.ElectLeader();
        cluster.Submit(leader, 1, Put("k0", "v"));
        var follower = cluster.Nodes.Values.First(n => !n.IsLeader);
        var disk = cluster.Directories[follower.Id];
        disk.CapacityBytes = disk.UsedBytes + 512;
        var value = new string('x', 600);
        for (var i = 0; i < 30; i++) Assert.False(cluster.Submit(cluster.Leader, (ulong)(10 + i), Put($"k{i}", value)).IsError);
        Assert.True(follower.IsDiskFull);
        Assert.Contains(new AlarmMember(follower.Id, AlarmType.NoSpace), follower.Alarms);
        // The member refuses writes with etcd's words and still serves what it has.
        follower.Submit(100, Put("refused", "x"));
        Assert.Equal(KeelErrorCode.NoSpace, cluster.Await(100).Error!.Code);
        follower.Read(101, new RangeRequest { Key = B("k0") }, linearizable: false);
        Assert.Single(cluster.Await(101).Range!.Kvs);
        Assert.True(follower.AppliedIndex < cluster.Leader.AppliedIndex);

        disk.CapacityBytes = null;
        cluster.StepUntil(() => !follower.IsDiskFull && follower.AppliedIndex == cluster.Leader.AppliedIndex);
        Assert.DoesNotContain(follower.Alarms, a => a.MemberId == follower.Id);
        AssertReplicasAgree(cluster);
    }

    [Fact]
    public void A_forwarded_write_fails_at_once_when_another_leader_takes_over()
    {
        var cluster = new TestCluster([1, 2, 3]);
        var leader = cluster.ElectLeader();
        var follower = cluster.Nodes.Values.First(n => n.Id != leader.Id);
        // The proposal reaches nobody: the follower forwards it into a partition that then elects a new leader.
        cluster.Isolated.Add(leader.Id);
        follower.Submit(8, Put("lost", "v"));
        cluster.StepUntil(() => cluster.Nodes.Values.Any(n => n.IsLeader && n.Id != leader.Id));
        var answer = cluster.Responses.Single(r => r.RequestId == 8);
        Assert.True(answer.IsError);
        Assert.Equal("etcdserver: leader changed", answer.Error!.Message);
    }

    [Fact]
    public void A_leader_hands_out_its_appends_before_its_own_write_is_durable()
    {
        // Pipelining (Raft thesis 10.2.1): the followers' disk writes overlap the leader's. The driver's hook sees the
        // append of the new entry while the leader's copy of it is not yet persisted; the commit still waits for a
        // quorum of durable copies, and the answer comes after.
        var cluster = new TestCluster([1, 2, 3]);
        var leader = cluster.ElectLeader();
        var early = new List<Message>();
        var persistedWhenSent = new List<(ulong Persisted, ulong Last)>();
        leader.SendBeforePersist = () =>
        {
            var drained = new List<Message>();
            leader.Outbox.DrainTo(drained, cluster.Responses);
            early.AddRange(drained);
            persistedWhenSent.Add((leader.Raft.Log.PersistedIndex, leader.Raft.Log.LastIndex));
            foreach (var message in drained) cluster.Nodes[message.To].Step(message);
        };
        var answer = cluster.Submit(leader, 9, Put("pipelined", "v"));
        Assert.False(answer.IsError, answer.Error?.Message);
        var append = early.First(m => m.Type == MessageType.Append && m.Entries.Count > 0);
        var index = append.Entries[^1].Index;
        Assert.Contains(persistedWhenSent, p => p.Persisted < index && p.Last >= index);
        Assert.True(leader.Raft.Log.PersistedIndex >= index, "the entry is durable on the leader once answered");
        cluster.AssertInvariants();
    }
}
