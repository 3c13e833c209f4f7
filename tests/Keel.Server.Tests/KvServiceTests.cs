using Google.Protobuf;
using Grpc.Core;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Server.Tests;

public class KvServiceTests
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [Fact]
    public async Task Put_get_txn_delete_and_compact_follow_etcd_revisions()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1);
        var kv = new KV.KVClient(cluster.Channel(0));
        var first = await kv.PutAsync(new PutRequest { Key = B("a"), Value = B("1") });
        var second = await kv.PutAsync(new PutRequest { Key = B("a"), Value = B("2"), PrevKv = true });
        Assert.Equal(first.Header.Revision + 1, second.Header.Revision);
        Assert.Equal("1", second.PrevKv.Value.ToStringUtf8());

        var now = await kv.RangeAsync(new RangeRequest { Key = B("a") });
        Assert.Equal((2L, "2"), (now.Kvs[0].Version, now.Kvs[0].Value.ToStringUtf8()));
        Assert.Equal(first.Header.Revision, now.Kvs[0].CreateRevision);
        var before = await kv.RangeAsync(new RangeRequest { Key = B("a"), Revision = first.Header.Revision });
        Assert.Equal("1", before.Kvs[0].Value.ToStringUtf8());

        var txn = await kv.TxnAsync(new TxnRequest
        {
            Compare = { new Compare { Key = B("a"), Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = B("2") } },
            Success = { new RequestOp { RequestPut = new PutRequest { Key = B("b"), Value = B("x") } }, new RequestOp { RequestRange = new RangeRequest { Key = B("a") } } },
            Failure = { new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = B("a") } } },
        });
        Assert.True(txn.Succeeded);
        Assert.Equal(second.Header.Revision + 1, txn.Header.Revision);
        Assert.Equal("2", txn.Responses[1].ResponseRange.Kvs[0].Value.ToStringUtf8());

        var deleted = await kv.DeleteRangeAsync(new DeleteRangeRequest { Key = B("a"), RangeEnd = B("c"), PrevKv = true });
        Assert.Equal(2, deleted.Deleted);
        await kv.CompactAsync(new CompactionRequest { Revision = deleted.Header.Revision });
        var compacted = await Assert.ThrowsAsync<RpcException>(async () => await kv.RangeAsync(new RangeRequest { Key = B("a"), Revision = first.Header.Revision }));
        Assert.Equal(StatusCode.OutOfRange, compacted.StatusCode);
        Assert.Equal("etcdserver: mvcc: required revision has been compacted", compacted.Status.Detail);
    }

    [Fact]
    public async Task Bad_requests_get_etcds_errors_and_change_nothing()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1);
        var kv = new KV.KVClient(cluster.Channel(0));
        var empty = await Assert.ThrowsAsync<RpcException>(async () => await kv.PutAsync(new PutRequest { Value = B("v") }));
        Assert.Equal((StatusCode.InvalidArgument, "etcdserver: key is not provided"), (empty.StatusCode, empty.Status.Detail));

        var tooLarge = await Assert.ThrowsAsync<RpcException>(async () =>
            await kv.PutAsync(new PutRequest { Key = B("big"), Value = ByteString.CopyFrom(new byte[1_600_000]) }));
        Assert.Equal((StatusCode.InvalidArgument, "etcdserver: request is too large"), (tooLarge.StatusCode, tooLarge.Status.Detail));

        var txn = new TxnRequest();
        for (var i = 0; i < 129; i++) txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = B($"k{i}") } });
        var tooMany = await Assert.ThrowsAsync<RpcException>(async () => await kv.TxnAsync(txn));
        Assert.Equal((StatusCode.InvalidArgument, "etcdserver: too many operations in txn request"), (tooMany.StatusCode, tooMany.Status.Detail));

        var future = await Assert.ThrowsAsync<RpcException>(async () => await kv.RangeAsync(new RangeRequest { Key = B("k"), Revision = 1000 }));
        Assert.Equal((StatusCode.OutOfRange, "etcdserver: mvcc: required revision is a future revision"), (future.StatusCode, future.Status.Detail));

        var all = await kv.RangeAsync(new RangeRequest { Key = B("\0"), RangeEnd = B("\0") });
        Assert.Equal(0, all.Count);
        Assert.Equal(1, all.Header.Revision);
    }

    [Fact]
    public async Task A_write_through_any_member_is_read_linearizably_from_every_member()
    {
        await using var cluster = await LoopbackCluster.StartAsync(3);
        var clients = Enumerable.Range(0, 3).Select(i => new KV.KVClient(cluster.Channel(i))).ToArray();
        for (var i = 0; i < 30; i++)
        {
            var put = await clients[i % 3].PutAsync(new PutRequest { Key = B("counter"), Value = B(i.ToString()) });
            var read = await clients[(i + 1) % 3].RangeAsync(new RangeRequest { Key = B("counter") });
            Assert.Equal(i.ToString(), read.Kvs[0].Value.ToStringUtf8());
            Assert.True(read.Header.Revision >= put.Header.Revision);
        }
        var ids = new HashSet<ulong>();
        for (var i = 0; i < 3; i++) ids.Add((await clients[i].RangeAsync(new RangeRequest { Key = B("counter"), Serializable = true })).Header.MemberId);
        Assert.Equal(3, ids.Count);
    }

    [Fact]
    public async Task A_serializable_read_on_the_member_that_answered_a_write_sees_it_though_reads_skip_the_loop()
    {
        // Serializable reads are served from a view of the store on the RPC's thread; a member drops its view before it
        // answers a write that changed the store, so a client reading where it wrote always reads its own write.
        await using var cluster = await LoopbackCluster.StartAsync(3);
        var clients = Enumerable.Range(0, 3).Select(i => new KV.KVClient(cluster.Channel(i))).ToArray();
        for (var i = 0; i < 60; i++)
        {
            var member = i % 3;
            var put = await clients[member].PutAsync(new PutRequest { Key = B("own"), Value = B(i.ToString()) });
            for (var read = 0; read < 3; read++)
            {
                var got = await clients[member].RangeAsync(new RangeRequest { Key = B("own"), Serializable = true });
                Assert.Equal(i.ToString(), got.Kvs[0].Value.ToStringUtf8());
                Assert.True(got.Header.Revision >= put.Header.Revision, $"read revision {got.Header.Revision} < write {put.Header.Revision}");
            }
        }
        var fromView = cluster.Servers.Sum(server => server!.Host.Statistics.ReadsServedFromView);
        Assert.True(fromView > 0, "no serializable read was served from a view");

        // The view path validates and refuses as the loop does.
        var empty = await Assert.ThrowsAsync<RpcException>(async () => await clients[0].RangeAsync(new RangeRequest { Key = ByteString.Empty, Serializable = true }));
        Assert.Equal(StatusCode.InvalidArgument, empty.StatusCode);
        var future = await Assert.ThrowsAsync<RpcException>(async () => await clients[0].RangeAsync(new RangeRequest { Key = B("own"), Revision = 1_000_000, Serializable = true }));
        Assert.Equal(StatusCode.OutOfRange, future.StatusCode);
    }

    [Fact]
    public async Task Acknowledged_writes_survive_a_restart_of_every_member()
    {
        await using var cluster = await LoopbackCluster.StartAsync(3);
        var kv = new KV.KVClient(cluster.Channel(0));
        for (var i = 0; i < 20; i++) await kv.PutAsync(new PutRequest { Key = B($"d{i:D2}"), Value = B("v") });
        for (var m = 0; m < 3; m++) await cluster.StopMemberAsync(m);
        for (var m = 0; m < 3; m++) await cluster.StartMemberAsync(m);
        await cluster.WaitForLeaderAsync();
        var range = await new KV.KVClient(cluster.Channel(2)).RangeAsync(new RangeRequest { Key = B("d"), RangeEnd = B("e") });
        Assert.Equal(20, range.Count);
    }
}
