using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;

namespace Keel.DotnetEtcd.Tests;

/// <summary>Txn through dotnet-etcd: compares on value, version, create and mod revision and lease; both branches.</summary>
[Collection(SharedClusterCollection.Name)]
public sealed class TxnTests(SharedClusterFixture fixture)
{
    private readonly EtcdClient _client = fixture.Client;

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static RequestOp Put(string key, string value) => new() { RequestPut = new PutRequest { Key = B(key), Value = B(value) } };

    private static RequestOp Get(string key) => new() { RequestRange = new RangeRequest { Key = B(key) } };

    [Fact(Timeout = 60_000)]
    public async Task True_compares_run_success_and_a_false_one_runs_failure()
    {
        var put = await _client.PutAsync("dtxn/a", "1", deadline: Bounds.CallDeadline);
        var revision = put.Header.Revision;
        var request = new TxnRequest
        {
            Compare =
            {
                new Compare { Key = B("dtxn/a"), Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = B("1") },
                new Compare { Key = B("dtxn/a"), Target = Compare.Types.CompareTarget.Version, Result = Compare.Types.CompareResult.Equal, Version = 1 },
                new Compare { Key = B("dtxn/a"), Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = revision },
                new Compare { Key = B("dtxn/a"), Target = Compare.Types.CompareTarget.Mod, Result = Compare.Types.CompareResult.Less, ModRevision = revision + 1 },
                new Compare { Key = B("dtxn/a"), Target = Compare.Types.CompareTarget.Lease, Result = Compare.Types.CompareResult.Equal, Lease = 0 },
            },
            Success = { Put("dtxn/x", "ok"), Get("dtxn/a") },
            Failure = { Put("dtxn/x", "bad") },
        };
        var success = await _client.TransactionAsync(request, deadline: Bounds.CallDeadline);
        Assert.True(success.Succeeded);
        Assert.Equal(revision + 1, success.Header.Revision);
        Assert.Equal(2, success.Responses.Count);
        Assert.Equal("1", Assert.Single(success.Responses[1].ResponseRange.Kvs).Value.ToStringUtf8());
        Assert.Equal("ok", await _client.GetValAsync("dtxn/x", deadline: Bounds.CallDeadline));

        // Same request again: version and mod of dtxn/a are unchanged, but dtxn/x moved on; compare on dtxn/x's version.
        request.Compare.Add(new Compare { Key = B("dtxn/x"), Target = Compare.Types.CompareTarget.Version, Result = Compare.Types.CompareResult.Greater, Version = 1 });
        var failure = await _client.TransactionAsync(request, deadline: Bounds.CallDeadline);
        Assert.False(failure.Succeeded);
        Assert.Equal("bad", await _client.GetValAsync("dtxn/x", deadline: Bounds.CallDeadline));
    }

    [Fact(Timeout = 60_000)]
    public async Task Nested_transactions_and_an_oversized_txn_are_handled_as_etcd_does()
    {
        var nested = new TxnRequest
        {
            Success =
            {
                new RequestOp
                {
                    RequestTxn = new TxnRequest
                    {
                        Compare = { new Compare { Key = B("dnested/none"), Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = 0 } },
                        Success = { Put("dnested/inner", "yes") },
                    },
                },
            },
        };
        var response = await _client.TransactionAsync(nested, deadline: Bounds.CallDeadline);
        Assert.True(response.Succeeded);
        Assert.True(response.Responses[0].ResponseTxn.Succeeded);
        Assert.Equal("yes", await _client.GetValAsync("dnested/inner", deadline: Bounds.CallDeadline));

        var tooMany = new TxnRequest();
        for (var i = 0; i < 129; i++) tooMany.Success.Add(Put($"dnested/many/{i}", "v"));
        var error = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => _client.TransactionAsync(tooMany, deadline: Bounds.CallDeadline));
        Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, error.StatusCode);
        Assert.Equal("etcdserver: too many operations in txn request", error.Status.Detail);
    }
}
