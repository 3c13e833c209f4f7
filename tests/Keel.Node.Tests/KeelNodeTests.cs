using System.Text;
using Keel.Core;
using Keel.Mvcc;
using Keel.Raft;
using Keel.Simulation;

namespace Keel.Node.Tests;

public sealed class KeelNodeTests
{
    private sealed class Idle : ISimProcess
    {
        public void Start(NodeContext context) { }
        public void OnMessage(NodeContext context, int from, object message) { }
        public void OnTimer(NodeContext context, long timerId, int tag) { }
    }

    private static SimStorageDirectory NewDirectory(ulong seed) =>
        new(new Keel.Simulation.Simulation(seed).AddNode(_ => new Idle()).Disk, "wal/");

    private static KeelNode Open(SimStorageDirectory directory, ulong[] voters, ulong seed = 7) => KeelNode.Open(new KeelNodeOptions
    {
        NodeId = 1, Voters = voters, Random = new DeterministicRandom(seed), TickMs = 10, RequestTimeoutMs = 1_000,
    }, directory);

    private static long _nowMs;

    private static void TickUntil(KeelNode node, Func<bool> done)
    {
        for (var i = 0; i < 1_000 && !done(); i++)
        {
            _nowMs += 10;
            node.Tick(_nowMs, 1_767_225_600_000 + _nowMs);
        }
        Assert.True(done(), "condition not reached within 1000 ticks");
    }

    private static List<KvResult> Drain(KeelNode node)
    {
        var messages = new List<Message>();
        var responses = new List<KvResult>();
        node.Outbox.DrainTo(messages, responses);
        return responses;
    }

    private static byte[] B(string text) => Encoding.UTF8.GetBytes(text);

    private static KeelNode LeaderOfOne(SimStorageDirectory directory)
    {
        var node = Open(directory, [1]);
        TickUntil(node, () => node.IsLeader);
        Drain(node);
        return node;
    }

    private static KvResult Await(KeelNode node, ulong requestId)
    {
        KvResult? found = null;
        TickUntil(node, () => (found ??= Drain(node).FirstOrDefault(r => r.RequestId == requestId)) is not null);
        return found!;
    }

    private static KvResult SubmitAndWait(KeelNode node, ulong requestId, KvCommand command)
    {
        node.Submit(requestId, command);
        var immediate = Drain(node).FirstOrDefault(r => r.RequestId == requestId);
        return immediate ?? Await(node, requestId);
    }

    [Fact]
    public void A_single_member_elects_itself_on_its_first_tick_at_start_and_at_restart()
    {
        var directory = NewDirectory(3);
        var node = Open(directory, [1]);
        _nowMs += 10;
        node.Tick(_nowMs, 1_767_225_600_000 + _nowMs);
        Assert.True(node.IsLeader, "a sole voter waited for an election timeout it has no reason to wait for");
        var put = SubmitAndWait(node, 1, KvCommand.Of(new PutRequest { Key = B("k"), Value = B("v") }));
        Assert.False(put.IsError, put.Error?.Message);

        // Restarted on the same log: leader again at once, with the write.
        var restarted = Open(directory, [1]);
        _nowMs += 10;
        restarted.Tick(_nowMs, 1_767_225_600_000 + _nowMs);
        Assert.True(restarted.IsLeader);
        restarted.Read(2, new RangeRequest { Key = B("k") }, linearizable: true);
        var read = Await(restarted, 2);
        Assert.Equal("v", Encoding.UTF8.GetString(Assert.Single(read.Range!.Kvs).Value));

        // A member of three does not campaign at start: it waits to hear a leader first.
        var ofThree = Open(NewDirectory(4), [1, 2, 3]);
        _nowMs += 10;
        ofThree.Tick(_nowMs, 1_767_225_600_000 + _nowMs);
        Assert.False(ofThree.IsLeader);
        var sent = new List<Message>();
        ofThree.Outbox.DrainTo(sent, []);
        Assert.DoesNotContain(sent, m => m.Type is MessageType.PreVote or MessageType.Vote);
    }

    [Fact]
    public void A_single_node_applies_a_put_and_serves_both_read_paths()
    {
        var node = LeaderOfOne(NewDirectory(1));
        var put = SubmitAndWait(node, 10, KvCommand.Of(new PutRequest { Key = B("k"), Value = B("v1") }));
        Assert.False(put.IsError, put.Error?.Message);
        Assert.Equal(2, put.Put!.Revision);

        node.Read(11, new RangeRequest { Key = B("k") }, linearizable: true);
        var linearizable = Drain(node).FirstOrDefault(r => r.RequestId == 11) ?? Await(node, 11);
        Assert.Equal("v1", Encoding.UTF8.GetString(linearizable.Range!.Kvs.Single().Value));

        node.Read(12, new RangeRequest { Key = B("k") }, linearizable: false);
        var serializable = Drain(node).Single();
        Assert.Equal(12UL, serializable.RequestId);
        Assert.Equal("v1", Encoding.UTF8.GetString(serializable.Range!.Kvs.Single().Value));
        node.AssertInvariants();
    }

    [Fact]
    public void A_transaction_compares_the_value()
    {
        var node = LeaderOfOne(NewDirectory(2));
        SubmitAndWait(node, 1, KvCommand.Of(new PutRequest { Key = B("k"), Value = B("a") }));
        TxnRequest Cas(string expected, string value) => new()
        {
            Compares = [new Compare { Key = B("k"), Target = CompareTarget.Value, Result = CompareResult.Equal, ValueOperand = B(expected) }],
            Success = [RequestOp.Of(new PutRequest { Key = B("k"), Value = B(value) })],
        };
        Assert.False(SubmitAndWait(node, 2, KvCommand.Of(Cas("zzz", "b"))).Txn!.Succeeded);
        Assert.True(SubmitAndWait(node, 3, KvCommand.Of(Cas("a", "b"))).Txn!.Succeeded);
        Assert.Equal("b", Encoding.UTF8.GetString(node.Store.Range(new RangeRequest { Key = B("k") }).Kvs[0].Value));
    }

    [Fact]
    public void A_restarted_node_rebuilds_its_store_from_the_wal()
    {
        var directory = NewDirectory(3);
        var node = LeaderOfOne(directory);
        for (ulong i = 1; i <= 20; i++)
            SubmitAndWait(node, i, KvCommand.Of(new PutRequest { Key = B($"k{i % 5}"), Value = B($"v{i}") }));
        SubmitAndWait(node, 21, KvCommand.Of(new DeleteRangeRequest { Key = B("k0") }));
        var before = node.Store.HashKv(0);

        var restarted = Open(directory, [1], seed: 8);
        TickUntil(restarted, () => restarted.IsLeader && restarted.AppliedIndex >= node.AppliedIndex);
        Assert.Equal(before, restarted.Store.HashKv(0));
        restarted.AssertInvariants();
    }

    [Fact]
    public void Without_a_leader_writes_and_reads_fail_with_etcds_text()
    {
        var node = Open(NewDirectory(4), [1, 2, 3]);
        node.Submit(1, KvCommand.Of(new PutRequest { Key = B("k"), Value = B("v") }));
        node.Read(2, new RangeRequest { Key = B("k") }, linearizable: true);
        var responses = Drain(node);
        Assert.Equal("etcdserver: no leader", responses.Single(r => r.RequestId == 1).Error!.Message);
        Assert.Equal("etcdserver: no leader", responses.Single(r => r.RequestId == 2).Error!.Message);
        Assert.True(responses.All(r => r.Error!.IsDefinite));
    }

    [Fact]
    public void Oversized_requests_and_store_refusals_are_typed_errors()
    {
        var node = LeaderOfOne(NewDirectory(5));
        var tooLarge = SubmitAndWait(node, 1, KvCommand.Of(new PutRequest { Key = B("k"), Value = new byte[CommandCodec.MaxRequestBytes] }));
        Assert.Equal(KeelErrorCode.RequestTooLarge, tooLarge.Error!.Code);
        Assert.Equal("etcdserver: request is too large", tooLarge.Error.Message);

        var future = SubmitAndWait(node, 2, KvCommand.Compact(1_000));
        Assert.Equal("etcdserver: mvcc: required revision is a future revision", future.Error!.Message);
        Assert.Equal("OutOfRange", future.Error.GrpcStatusCode);
    }

    [Fact]
    public void Unanswered_writes_end_with_an_unknown_outcome()
    {
        // A leader of three whose peers never answer cannot commit: the client hears "request timed out" or, once check-quorum
        // deposes the leader, "leader changed"; either way the outcome is reported as unknown, never as a failure.
        var node = Open(NewDirectory(6), [1, 2, 3]);
        node.Raft.Campaign();
        var term = node.Raft.Term;
        // Grant the votes by hand so the node leads, then let its peers stay silent.
        foreach (var peer in new ulong[] { 2, 3 })
        {
            node.Step(new Message { Type = MessageType.PreVoteResponse, From = peer, To = 1, Term = term + 1 });
        }
        foreach (var peer in new ulong[] { 2, 3 })
            node.Step(new Message { Type = MessageType.VoteResponse, From = peer, To = 1, Term = node.Raft.Term });
        Assert.True(node.IsLeader);
        Drain(node);
        node.Submit(1, KvCommand.Of(new PutRequest { Key = B("k"), Value = B("v") }));
        var result = Await(node, 1);
        Assert.NotNull(result.Error);
        Assert.False(result.Error!.IsDefinite);
    }
}
