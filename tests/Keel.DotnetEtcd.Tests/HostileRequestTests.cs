using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;

namespace Keel.DotnetEtcd.Tests;

/// <summary>
/// The requests that once stopped a whole cluster (a Txn compare with result 7 or target 9 was committed and then threw
/// on every member at apply, again after every restart; a Range with sort_target 9 stopped the member serving it),
/// sent with raw protobuf enums to every member of a real 3-member cluster: each is refused with InvalidArgument, and
/// all three members keep serving, also after every one of them is restarted. etcd 3.4 answers the compare probes and
/// its members panic on the sort probe, so this test is Keel's (under KEEL_TEST_SERVER=etcd it checks only that the
/// compare probes leave the cluster serving).
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class HostileRequestTests : IAsyncLifetime
{
    private TestCluster.TestCluster? _cluster;

    private TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => _cluster = await TestCluster.TestCluster.StartAsync(3);

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    private EtcdClient ClientOf(int member) =>
        new(Cluster.Members[member].ClientUrl, configureChannelOptions: options => options.Credentials = ChannelCredentials.Insecure);

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static TxnRequest CompareProbe(int target, int result)
    {
        var txn = new TxnRequest();
        txn.Compare.Add(new Compare { Key = B("probe"), Target = (Compare.Types.CompareTarget)target, Result = (Compare.Types.CompareResult)result, Version = 1 });
        txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = B("probe"), Value = B("x") } });
        return txn;
    }

    private static TxnRequest NestedSortProbe()
    {
        var inner = new TxnRequest();
        inner.Success.Add(new RequestOp { RequestRange = new RangeRequest { Key = B("a"), RangeEnd = B("\0"), SortTarget = (RangeRequest.Types.SortTarget)9 } });
        var outer = new TxnRequest();
        outer.Success.Add(new RequestOp { RequestTxn = inner });
        return outer;
    }

    private static async Task<StatusCode> CodeOf(Func<Task> call)
    {
        try
        {
            await call();
            return StatusCode.OK;
        }
        catch (RpcException refused)
        {
            return refused.StatusCode;
        }
    }

    private async Task AssertEveryMemberServes(string key)
    {
        for (var member = 0; member < 3; member++)
        {
            using var client = ClientOf(member);
            var put = await client.PutAsync($"{key}/{member}", "ok", deadline: Bounds.CallDeadline);
            Assert.True(put.Header.Revision > 1);
            var get = await client.GetAsync($"{key}/{member}", deadline: Bounds.CallDeadline);
            Assert.Equal("ok", Assert.Single(get.Kvs).Value.ToStringUtf8());
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task Every_probe_is_refused_and_every_member_keeps_serving_also_after_restarts()
    {
        await AssertEveryMemberServes("before");
        var keel = Cluster.Kind == TestCluster.ServerKind.Keel;
        for (var member = 0; member < 3; member++)
        {
            using var client = ClientOf(member);
            var compareResult = await CodeOf(() => client.TransactionAsync(CompareProbe(0, 7), deadline: Bounds.CallDeadline));
            var compareTarget = await CodeOf(() => client.TransactionAsync(CompareProbe(9, 0), deadline: Bounds.CallDeadline));
            if (!keel) continue;
            Assert.Equal(StatusCode.InvalidArgument, compareResult);
            Assert.Equal(StatusCode.InvalidArgument, compareTarget);
            Assert.Equal(StatusCode.InvalidArgument, await CodeOf(() => client.TransactionAsync(CompareProbe(255, 255), deadline: Bounds.CallDeadline)));
            Assert.Equal(StatusCode.InvalidArgument, await CodeOf(() => client.GetAsync(
                new RangeRequest { Key = B("a"), SortTarget = (RangeRequest.Types.SortTarget)9 }, deadline: Bounds.CallDeadline)));
            Assert.Equal(StatusCode.InvalidArgument, await CodeOf(() => client.GetAsync(
                new RangeRequest { Key = B("a"), SortOrder = (RangeRequest.Types.SortOrder)5, Serializable = true }, deadline: Bounds.CallDeadline)));
            Assert.Equal(StatusCode.InvalidArgument, await CodeOf(() => client.TransactionAsync(NestedSortProbe(), deadline: Bounds.CallDeadline)));
            var tooMany = new TxnRequest();
            var nested = new TxnRequest();
            for (var i = 0; i < 129; i++) nested.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = B($"many/{i}") } });
            tooMany.Success.Add(new RequestOp { RequestTxn = nested });
            var error = await Assert.ThrowsAsync<RpcException>(() => client.TransactionAsync(tooMany, deadline: Bounds.CallDeadline));
            Assert.Equal("etcdserver: too many operations in txn request", error.Status.Detail);
            Assert.Equal(StatusCode.InvalidArgument, await CodeOf(() => client.AlarmAsync(
                new AlarmRequest { Action = (AlarmRequest.Types.AlarmAction)9 }, deadline: Bounds.CallDeadline)));
        }
        await AssertEveryMemberServes("after-probes");

        for (var member = 0; member < 3; member++) await Cluster.KillAsync(member);
        // All three at once: one member alone has no quorum and cannot become healthy.
        await Task.WhenAll(Enumerable.Range(0, 3).Select(member => Cluster.RestartAsync(member)));
        await AssertEveryMemberServes("after-restart");
        for (var member = 0; member < 3; member++) Assert.True(Cluster.Members[member].IsRunning, Cluster.DescribeOutput());
    }
}
