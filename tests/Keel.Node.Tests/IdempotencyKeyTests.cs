using Keel.Core;
using Keel.Idempotency;
using Keel.Mvcc;
using Keel.Raft;
using static Keel.Node.Tests.TestCluster;

namespace Keel.Node.Tests;

public sealed class IdempotencyKeyTests
{
    private static KvCommand Put(string key, string value) => KvCommand.Of(new PutRequest { Key = B(key), Value = B(value), PrevKv = true });

    [Fact]
    public void A_retry_with_the_same_key_replays_the_first_answer_byte_for_byte_and_changes_nothing()
    {
        var cluster = new TestCluster([1, 2, 3]);
        var leader = cluster.ElectLeader();
        cluster.Submit(leader, 1, Put("k", "v0"));
        var first = cluster.Submit(leader, 2, Put("k", "v1"), key: "req-1");
        Assert.False(first.IsError);
        Assert.False(first.IsIdempotentReplay);
        var revision = leader.Store.CurrentRevision;

        // The client did not hear the answer and retries on another node.
        var follower = cluster.Nodes.Values.First(n => !n.IsLeader);
        var retry = cluster.Submit(follower, 3, Put("k", "v1"), key: "req-1");
        Assert.True(retry.IsIdempotentReplay);
        Assert.Equal(ResponseCodec.Encode(first), ResponseCodec.Encode(retry));
        Assert.Equal(first.Put!.Revision, retry.Put!.Revision);
        Assert.Equal("v0", System.Text.Encoding.UTF8.GetString(retry.Put.PrevKv!.Value));
        cluster.Step(200);
        foreach (var node in cluster.Nodes.Values)
        {
            Assert.Equal(revision, node.Store.CurrentRevision);
            Assert.Equal(1, node.Idempotency.CompletedCount);
        }
        cluster.AssertInvariants();
    }

    [Fact]
    public void The_same_key_with_another_request_is_a_failed_precondition()
    {
        var cluster = new TestCluster([1]);
        var leader = cluster.ElectLeader();
        cluster.Submit(leader, 1, Put("k", "v1"), key: "req-1");
        var revision = leader.Store.CurrentRevision;
        var other = cluster.Submit(leader, 2, Put("k", "v2"), key: "req-1");
        Assert.Equal(KeelErrorCode.IdempotencyKeyMismatch, other.Error!.Code);
        Assert.Equal("FailedPrecondition", other.Error.GrpcStatusCode);
        Assert.Equal(revision, leader.Store.CurrentRevision);
    }

    [Fact]
    public void The_same_key_while_the_first_is_in_flight_is_aborted()
    {
        // A leader of three whose peers are silent: the first write cannot commit, so it stays in flight.
        var cluster = new TestCluster([1, 2, 3]);
        var leader = cluster.ElectLeader();
        cluster.Isolated.UnionWith(cluster.Nodes.Keys.Where(id => id != leader.Id));
        leader.Submit(1, Put("k", "v1"), "req-1");
        leader.Submit(2, Put("k", "v1"), "req-1");
        leader.Submit(3, Put("k", "v2"), "req-1");
        cluster.Deliver();
        var inFlight = cluster.Responses.Single(r => r.RequestId == 2);
        Assert.Equal(KeelErrorCode.IdempotencyKeyInFlight, inFlight.Error!.Code);
        Assert.Equal("Aborted", inFlight.Error.GrpcStatusCode);
        Assert.Equal(KeelErrorCode.IdempotencyKeyMismatch, cluster.Responses.Single(r => r.RequestId == 3).Error!.Code);
        Assert.DoesNotContain(cluster.Responses, r => r.RequestId == 1);
        cluster.AssertInvariants();

        // Once the first is answered (here: it times out, outcome unknown), a retry goes through and, the first having
        // committed after all, is answered with its result instead of executing twice.
        var first = cluster.Await(1);
        Assert.False(first.Error!.IsDefinite);
        cluster.Isolated.Clear();
        cluster.StepUntil(() => cluster.HasLeader);
        var retry = cluster.Submit(cluster.Leader, 4, Put("k", "v1"), key: "req-1");
        Assert.False(retry.IsError, retry.Error?.Message);
        var writes = cluster.Leader.Store.Range(new RangeRequest { Key = B("k") }).Kvs.Single().Version;
        Assert.Equal(1, writes);
    }

    [Fact]
    public void A_key_expires_after_the_window_of_committed_time_and_then_executes_again()
    {
        var cluster = new TestCluster([1], configure: o => o with { Idempotency = IdempotencyOptions.Default with { CompletedWindowMs = 2_000 } });
        var leader = cluster.ElectLeader();
        var first = cluster.Submit(leader, 1, Put("k", "v"), key: "req-1");
        cluster.Step(1_000);
        Assert.True(cluster.Submit(leader, 2, Put("k", "v"), key: "req-1").IsIdempotentReplay);
        cluster.Step(1_500);
        var again = cluster.Submit(leader, 3, Put("k", "v"), key: "req-1");
        Assert.False(again.IsIdempotentReplay);
        Assert.True(again.Put!.Revision > first.Put!.Revision);
    }

    [Fact]
    public void A_lease_grant_retried_with_its_key_grants_one_lease()
    {
        var cluster = new TestCluster([1]);
        var leader = cluster.ElectLeader();
        var first = cluster.Submit(leader, 1, KvCommand.LeaseGrant(0, 30), key: "grant-1");
        var retry = cluster.Submit(leader, 2, KvCommand.LeaseGrant(0, 30), key: "grant-1");
        Assert.Equal(first.LeaseGrant, retry.LeaseGrant);
        Assert.Single(leader.Leases());
        // Errors are stored and replayed too: the request is never executed a second time.
        var refused = cluster.Submit(leader, 3, KvCommand.Of(new PutRequest { Key = B("x"), Lease = 777 }), key: "put-1");
        var refusedAgain = cluster.Submit(leader, 4, KvCommand.Of(new PutRequest { Key = B("x"), Lease = 777 }), key: "put-1");
        Assert.Equal(refused.Error, refusedAgain.Error);
        Assert.True(refusedAgain.IsIdempotentReplay);
    }

    [Fact]
    public void Invalid_keys_and_keys_on_other_commands_are_refused_before_the_log()
    {
        var cluster = new TestCluster([1]);
        var leader = cluster.ElectLeader();
        var applied = leader.AppliedIndex;
        leader.Submit(1, Put("k", "v"), "");
        leader.Submit(2, Put("k", "v"), "caf\u00e9");
        leader.Submit(3, KvCommand.Compact(1), "ok-key");
        cluster.Deliver();
        Assert.All(cluster.Responses, r => Assert.Equal(KeelErrorCode.InvalidIdempotencyKey, r.Error!.Code));
        Assert.Equal(3, cluster.Responses.Count);
        Assert.Equal(applied, leader.AppliedIndex);
    }

    [Fact]
    public void Remembered_proposal_ids_are_bounded_by_the_window()
    {
        var cluster = new TestCluster([1], configure: o => o with { AppliedProposalWindowEntries = 10 });
        var leader = cluster.ElectLeader();
        for (ulong i = 1; i <= 50; i++) cluster.Submit(leader, i, Put($"k{i % 3}", "v"));
        Assert.InRange(leader.RememberedProposalCount, 1, 10);
        leader.AssertInvariants();
    }

    [Fact]
    public void A_duplicated_append_of_the_same_proposal_applies_once()
    {
        // The same encoded entry proposed twice (as a duplicated forward would be) changes the store once.
        var cluster = new TestCluster([1]);
        var leader = cluster.ElectLeader();
        var data = CommandCodec.Encode(new CommandHeader(42, 1, leader.Raft.Term), Put("k", "v"));
        Assert.Equal(ProposeStatus.Appended, leader.Raft.Propose(data).Status);
        Assert.Equal(ProposeStatus.Appended, leader.Raft.Propose(data).Status);
        cluster.Step(100);
        Assert.Equal(1, leader.Store.Range(new RangeRequest { Key = B("k") }).Kvs.Single().Version);
    }
}
