using Google.Protobuf;
using Grpc.Core;
using Keel.Protocol;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Server.Tests;

public class IdempotencyKeyTests
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static Metadata Key(string key) => new() { { KeelMetadata.IdempotencyKey, key } };

    [Fact]
    public async Task A_retried_write_with_the_same_key_returns_the_first_answer_and_writes_nothing()
    {
        await using var cluster = await LoopbackCluster.StartAsync(3);
        var viaFirst = new KV.KVClient(cluster.Channel(0));
        var viaOther = new KV.KVClient(cluster.Channel(2));
        var first = await viaFirst.PutAsync(new PutRequest { Key = B("order-42"), Value = B("paid") }, Key("7f9c"));
        // The retry goes to another member, as a client that lost its connection would send it.
        var retry = await viaOther.PutAsync(new PutRequest { Key = B("order-42"), Value = B("paid") }, Key("7f9c"));
        Assert.Equal(first.Header.Revision, retry.Header.Revision);
        var read = await viaOther.RangeAsync(new RangeRequest { Key = B("order-42") });
        Assert.Equal((1L, first.Header.Revision), (read.Kvs[0].Version, read.Kvs[0].ModRevision));
        Assert.Equal(first.Header.Revision, read.Header.Revision);

        var txn = new TxnRequest { Success = { new RequestOp { RequestPut = new PutRequest { Key = B("counter"), Value = B("1") } } } };
        var txnFirst = await viaFirst.TxnAsync(txn, Key("txn-1"));
        var txnRetry = await viaFirst.TxnAsync(txn, Key("txn-1"));
        Assert.Equal(txnFirst.Header.Revision, txnRetry.Header.Revision);

        var leases = new Lease.LeaseClient(cluster.Channel(1));
        var grant = await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 30 }, Key("lease-1"));
        var grantRetry = await leases.LeaseGrantAsync(new LeaseGrantRequest { TTL = 30 }, Key("lease-1"));
        Assert.Equal(grant.ID, grantRetry.ID);
        Assert.Single((await leases.LeaseLeasesAsync(new LeaseLeasesRequest())).Leases);
    }

    [Fact]
    public async Task The_same_key_with_a_different_request_is_refused_and_changes_nothing()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1);
        var kv = new KV.KVClient(cluster.Channel(0));
        var first = await kv.PutAsync(new PutRequest { Key = B("k"), Value = B("v1") }, Key("same"));
        var mismatch = await Assert.ThrowsAsync<RpcException>(async () =>
            await kv.PutAsync(new PutRequest { Key = B("k"), Value = B("v2") }, Key("same")));
        Assert.Equal(StatusCode.FailedPrecondition, mismatch.StatusCode);
        var read = await kv.RangeAsync(new RangeRequest { Key = B("k") });
        Assert.Equal(("v1", first.Header.Revision), (read.Kvs[0].Value.ToStringUtf8(), read.Header.Revision));

        var empty = await Assert.ThrowsAsync<RpcException>(async () =>
            await kv.PutAsync(new PutRequest { Key = B("k"), Value = B("v1") }, Key(new string('x', KeelMetadata.MaxIdempotencyKeyBytes + 1))));
        Assert.Equal(StatusCode.InvalidArgument, empty.StatusCode);
    }
}
