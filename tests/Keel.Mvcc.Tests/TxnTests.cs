using static Keel.Mvcc.Tests.B;

namespace Keel.Mvcc.Tests;

public class TxnTests
{
    private static Compare Cmp(string key, CompareTarget target, CompareResult result, long number = 0, string value = "", string rangeEnd = "") =>
        new() { Key = Y(key), RangeEnd = Y(rangeEnd), Target = target, Result = result, NumberOperand = number, ValueOperand = Y(value) };

    private static RequestOp PutOp(string key, string value) => RequestOp.Of(new PutRequest { Key = Y(key), Value = Y(value) });

    private static RequestOp DelOp(string key, string rangeEnd = "") => RequestOp.Of(new DeleteRangeRequest { Key = Y(key), RangeEnd = Y(rangeEnd) });

    private static RequestOp GetOp(string key, long revision = 0) => RequestOp.Of(new RangeRequest { Key = Y(key), Revision = revision });

    private static MvccStore Sample()
    {
        var store = new MvccStore();
        store.Put("a", "1", lease: 3); // 2
        store.Put("b", "2");           // 3
        store.Put("b", "3");           // 4
        return store;
    }

    [Theory]
    [InlineData(CompareTarget.Value, CompareResult.Equal, 0, "1", true)]
    [InlineData(CompareTarget.Value, CompareResult.Greater, 0, "0", true)]
    [InlineData(CompareTarget.Value, CompareResult.Less, 0, "0", false)]
    [InlineData(CompareTarget.Value, CompareResult.NotEqual, 0, "1", false)]
    [InlineData(CompareTarget.Version, CompareResult.Equal, 1, "", true)]
    [InlineData(CompareTarget.Version, CompareResult.Greater, 1, "", false)]
    [InlineData(CompareTarget.Create, CompareResult.Equal, 2, "", true)]
    [InlineData(CompareTarget.Create, CompareResult.Less, 3, "", true)]
    [InlineData(CompareTarget.Mod, CompareResult.NotEqual, 2, "", false)]
    [InlineData(CompareTarget.Mod, CompareResult.Greater, 1, "", true)]
    [InlineData(CompareTarget.Lease, CompareResult.Equal, 3, "", true)]
    [InlineData(CompareTarget.Lease, CompareResult.Less, 3, "", false)]
    public void Compares_on_every_target_and_relation(CompareTarget target, CompareResult result, long number, string value, bool holds)
    {
        var store = Sample();
        var response = store.Txn(new TxnRequest { Compares = [Cmp("a", target, result, number, value)], Success = [GetOp("a")] }, 100);
        Assert.Equal(holds, response.Succeeded);
        Assert.Equal(holds ? 1 : 0, response.Responses.Count);
    }

    [Fact]
    public void A_missing_key_compares_as_zeros_except_on_value()
    {
        var store = Sample();
        Assert.True(store.Txn(new TxnRequest { Compares = [Cmp("zz", CompareTarget.Create, CompareResult.Equal, 0)] }, 100).Succeeded);
        Assert.True(store.Txn(new TxnRequest { Compares = [Cmp("zz", CompareTarget.Version, CompareResult.Equal, 0)] }, 100).Succeeded);
        Assert.False(store.Txn(new TxnRequest { Compares = [Cmp("zz", CompareTarget.Value, CompareResult.Equal, value: "")] }, 100).Succeeded);
        Assert.False(store.Txn(new TxnRequest { Compares = [Cmp("zz", CompareTarget.Value, CompareResult.NotEqual, value: "x")] }, 100).Succeeded);
    }

    [Fact]
    public void A_compare_over_a_range_must_hold_for_every_key()
    {
        var store = Sample();
        Assert.True(store.Txn(new TxnRequest { Compares = [Cmp("a", CompareTarget.Mod, CompareResult.Greater, 1, rangeEnd: "c")] }, 100).Succeeded);
        Assert.False(store.Txn(new TxnRequest { Compares = [Cmp("a", CompareTarget.Mod, CompareResult.Greater, 2, rangeEnd: "c")] }, 100).Succeeded);
        Assert.True(store.Txn(new TxnRequest { Compares = [Cmp("a", CompareTarget.Version, CompareResult.Less, 3, rangeEnd: "\0")] }, 100).Succeeded);
    }

    [Fact]
    public void All_writes_of_a_txn_share_one_revision_and_reads_see_earlier_writes()
    {
        var store = Sample();
        var response = store.Txn(new TxnRequest
        {
            Compares = [Cmp("a", CompareTarget.Value, CompareResult.Equal, value: "1")],
            Success = [PutOp("c", "new"), GetOp("c"), DelOp("b"), PutOp("d", "x"), GetOp("b", revision: 4)],
        }, 100);
        Assert.True(response.Succeeded);
        Assert.Equal(5, response.Revision);
        Assert.Equal(5, store.CurrentRevision);
        Assert.Equal(Y("new"), Assert.Single(response.Responses[1].Range!.Kvs).Value);
        Assert.Equal(5, response.Responses[1].Range!.Revision);
        Assert.Equal(1, response.Responses[2].DeleteRange!.Deleted);
        Assert.Equal(Y("3"), Assert.Single(response.Responses[4].Range!.Kvs).Value);
        var events = store.Events(5, [0], FromKey);
        Assert.Equal([5, 5, 5], events.Select(e => e.Kv.ModRevision));
        Assert.Equal(["c:Put", "b:Delete", "d:Put"], events.Select(e => $"{S(e.Kv.Key)}:{e.Type}")); // write order
        store.AssertInvariants();
    }

    [Fact]
    public void A_read_only_txn_creates_no_revision()
    {
        var store = Sample();
        var response = store.Txn(new TxnRequest { Success = [GetOp("a")], Failure = [PutOp("x", "y")] }, 100);
        Assert.True(response.Succeeded);
        Assert.Equal(4, response.Revision);
        Assert.Equal(4, store.CurrentRevision);
    }

    [Fact]
    public void The_failure_branch_runs_when_a_compare_fails()
    {
        var store = Sample();
        var response = store.Txn(new TxnRequest
        {
            Compares = [Cmp("a", CompareTarget.Value, CompareResult.Equal, value: "nope")],
            Success = [PutOp("s", "1")],
            Failure = [PutOp("f", "1")],
        }, 100);
        Assert.False(response.Succeeded);
        Assert.Null(store.Get("s"));
        Assert.NotNull(store.Get("f"));
    }

    [Fact]
    public void Nested_txns_choose_their_branch_against_the_state_before_the_txn()
    {
        var store = Sample();
        var nested = new TxnRequest
        {
            Compares = [Cmp("n", CompareTarget.Create, CompareResult.Equal, 0)], // n does not exist before the txn
            Success = [PutOp("m", "nested-then")],
            Failure = [PutOp("m", "nested-else")],
        };
        var response = store.Txn(new TxnRequest { Success = [PutOp("n", "1"), RequestOp.Of(nested)] }, 100);
        Assert.True(response.Responses[1].Txn!.Succeeded);
        Assert.Equal(Y("nested-then"), store.Get("m")!.Value);
        Assert.Equal(5, store.Get("m")!.ModRevision);
        Assert.Equal(5, store.Get("n")!.ModRevision);
    }

    [Fact]
    public void At_most_128_operations_per_branch_and_compares()
    {
        var store = Sample();
        var many = Enumerable.Range(0, 129).Select(i => PutOp($"k{i}", "v")).ToArray();
        ThrowsMvcc(MvccError.TooManyOperations, () => store.Txn(new TxnRequest { Success = many }, 100));
        ThrowsMvcc(MvccError.TooManyOperations, () => store.Txn(new TxnRequest { Failure = many }, 100));
        var compares = Enumerable.Range(0, 129).Select(_ => Cmp("a", CompareTarget.Version, CompareResult.Equal, 1)).ToArray();
        ThrowsMvcc(MvccError.TooManyOperations, () => store.Txn(new TxnRequest { Compares = compares }, 100));
        ThrowsMvcc(MvccError.TooManyOperations, () => store.Txn(new TxnRequest { Success = [RequestOp.Of(new TxnRequest { Success = many })] }, 100));
        Assert.Equal("etcdserver: too many operations in txn request", MvccException.MessageOf(MvccError.TooManyOperations));
        store.Txn(new TxnRequest { Success = many[..128] }, 100);
        Assert.Equal(5, store.CurrentRevision);
        Assert.Equal(128 + 2, store.Range(new RangeRequest { Key = [0], RangeEnd = FromKey, CountOnly = true }).Count);
    }

    [Fact]
    public void Duplicate_writes_of_a_key_are_refused()
    {
        var store = Sample();
        void Refused(params RequestOp[] ops) =>
            ThrowsMvcc(MvccError.DuplicateKey, () => store.Txn(new TxnRequest { Success = ops }, 100));
        Refused(PutOp("x", "1"), PutOp("x", "2"));
        Refused(DelOp("x"), PutOp("x", "2"));
        Refused(PutOp("x", "2"), DelOp("a", "z"));
        Refused(PutOp("x", "2"), DelOp("a", "\0"));
        Refused(PutOp("x", "1"), RequestOp.Of(new TxnRequest { Success = [PutOp("x", "2")] }));
        Refused(DelOp("x"), RequestOp.Of(new TxnRequest { Failure = [PutOp("x", "2")] }));
        Refused(PutOp("x", "1"), RequestOp.Of(new TxnRequest { Success = [DelOp("x")] }));
        ThrowsMvcc(MvccError.DuplicateKey, () => store.Txn(new TxnRequest { Failure = [PutOp("x", "1"), PutOp("x", "1")] }, 100));
        Assert.Equal("etcdserver: duplicate key given in txn request", MvccException.MessageOf(MvccError.DuplicateKey));
        Assert.Equal(4, store.CurrentRevision);

        // Allowed: overlapping deletes, and the same key in the then and else branches of a nested txn.
        store.Txn(new TxnRequest { Success = [DelOp("a", "c"), DelOp("b")] }, 100);
        store.Txn(new TxnRequest { Success = [RequestOp.Of(new TxnRequest { Success = [PutOp("x", "1")], Failure = [PutOp("x", "2")] })] }, 100);
        Assert.Equal(6, store.CurrentRevision);
    }

    [Fact]
    public void Ops_on_the_taken_branch_are_validated_before_anything_is_written()
    {
        var store = Sample();
        ThrowsMvcc(MvccError.KeyNotFound, () => store.Txn(new TxnRequest
        {
            Success = [PutOp("x", "1"), RequestOp.Of(new PutRequest { Key = Y("missing"), IgnoreValue = true })],
        }, 100));
        ThrowsMvcc(MvccError.FutureRevision, () => store.Txn(new TxnRequest { Success = [PutOp("x", "1"), GetOp("a", revision: 5)] }, 100));
        store.Compact(3);
        ThrowsMvcc(MvccError.Compacted, () => store.Txn(new TxnRequest { Success = [PutOp("x", "1"), GetOp("a", revision: 2)] }, 100));
        ThrowsMvcc(MvccError.EmptyKey, () => store.Txn(new TxnRequest { Failure = [RequestOp.Of(new PutRequest { Key = [] })] }, 100));
        Assert.Null(store.Get("x"));
        Assert.Equal(4, store.CurrentRevision);
        // Not on the taken branch: not checked, as in etcd.
        store.Txn(new TxnRequest { Success = [PutOp("x", "1")], Failure = [RequestOp.Of(new PutRequest { Key = Y("missing"), IgnoreValue = true })] }, 100);
        store.AssertInvariants();
    }
}
