using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;

namespace Keel.DotnetEtcd.Tests;

/// <summary>KV through dotnet-etcd: put, get, range with options, delete, revisions.</summary>
[Collection(SharedClusterCollection.Name)]
public sealed class KvTests(SharedClusterFixture fixture)
{
    private readonly EtcdClient _client = fixture.Client;

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [Fact(Timeout = 60_000)]
    public async Task Put_then_get_returns_the_value_with_revisions_and_version()
    {
        var first = await _client.PutAsync("dkv/a", "1", deadline: Bounds.CallDeadline);
        var second = await _client.PutAsync(new PutRequest { Key = B("dkv/a"), Value = B("2"), PrevKv = true }, deadline: Bounds.CallDeadline);
        Assert.Equal(first.Header.Revision + 1, second.Header.Revision);
        Assert.Equal("1", second.PrevKv.Value.ToStringUtf8());

        var get = await _client.GetAsync("dkv/a", deadline: Bounds.CallDeadline);
        var kv = Assert.Single(get.Kvs);
        Assert.Equal("dkv/a", kv.Key.ToStringUtf8());
        Assert.Equal("2", kv.Value.ToStringUtf8());
        Assert.Equal(first.Header.Revision, kv.CreateRevision);
        Assert.Equal(second.Header.Revision, kv.ModRevision);
        Assert.Equal(2, kv.Version);
        Assert.Equal("2", await _client.GetValAsync("dkv/a", deadline: Bounds.CallDeadline));
        Assert.True(get.Header.ClusterId != 0 && get.Header.MemberId != 0 && get.Header.RaftTerm != 0);
    }

    [Fact(Timeout = 60_000)]
    public async Task Range_honours_prefix_limit_sort_revision_keys_only_and_count_only()
    {
        var revisions = new List<long>();
        foreach (var (key, value) in new[] { ("drange/b", "2"), ("drange/a", "3"), ("drange/c", "1") })
            revisions.Add((await _client.PutAsync(key, value, deadline: Bounds.CallDeadline)).Header.Revision);
        await _client.PutAsync("drangf", "outside", deadline: Bounds.CallDeadline);

        var prefix = await _client.GetRangeAsync("drange/", deadline: Bounds.CallDeadline);
        Assert.Equal(["drange/a", "drange/b", "drange/c"], prefix.Kvs.Select(kv => kv.Key.ToStringUtf8()));
        Assert.Equal(3, prefix.Count);

        var rangeEnd = EtcdClient.GetRangeEnd(B("drange/"));
        var limited = await _client.GetAsync(new RangeRequest { Key = B("drange/"), RangeEnd = rangeEnd, Limit = 2 }, deadline: Bounds.CallDeadline);
        Assert.Equal(["drange/a", "drange/b"], limited.Kvs.Select(kv => kv.Key.ToStringUtf8()));
        Assert.True(limited.More);
        Assert.Equal(3, limited.Count);

        var byValue = await _client.GetAsync(new RangeRequest
        {
            Key = B("drange/"), RangeEnd = rangeEnd,
            SortTarget = RangeRequest.Types.SortTarget.Value, SortOrder = RangeRequest.Types.SortOrder.Descend,
        }, deadline: Bounds.CallDeadline);
        Assert.Equal(["3", "2", "1"], byValue.Kvs.Select(kv => kv.Value.ToStringUtf8()));

        var historical = await _client.GetAsync(new RangeRequest { Key = B("drange/"), RangeEnd = rangeEnd, Revision = revisions[1] }, deadline: Bounds.CallDeadline);
        Assert.Equal(["drange/a", "drange/b"], historical.Kvs.Select(kv => kv.Key.ToStringUtf8()));

        var keysOnly = await _client.GetAsync(new RangeRequest { Key = B("drange/"), RangeEnd = rangeEnd, KeysOnly = true }, deadline: Bounds.CallDeadline);
        Assert.All(keysOnly.Kvs, kv => Assert.True(kv.Value.IsEmpty));
        Assert.Equal(3, keysOnly.Kvs.Count);

        var countOnly = await _client.GetAsync(new RangeRequest { Key = B("drange/"), RangeEnd = rangeEnd, CountOnly = true }, deadline: Bounds.CallDeadline);
        Assert.Empty(countOnly.Kvs);
        Assert.Equal(3, countOnly.Count);

        var minCreate = await _client.GetAsync(new RangeRequest { Key = B("drange/"), RangeEnd = rangeEnd, MinCreateRevision = revisions[1] }, deadline: Bounds.CallDeadline);
        Assert.Equal(["drange/a", "drange/c"], minCreate.Kvs.Select(kv => kv.Key.ToStringUtf8()));

        var serializable = await _client.GetAsync(new RangeRequest { Key = B("drange/"), RangeEnd = rangeEnd, Serializable = true }, deadline: Bounds.CallDeadline);
        Assert.True(serializable.Count <= 3);
    }

    [Fact(Timeout = 60_000)]
    public async Task Delete_and_delete_range_remove_keys_and_return_prev_kvs()
    {
        await _client.PutAsync("ddel/one", "1", deadline: Bounds.CallDeadline);
        await _client.PutAsync("ddel/p/a", "a", deadline: Bounds.CallDeadline);
        await _client.PutAsync("ddel/p/b", "b", deadline: Bounds.CallDeadline);

        Assert.Equal(1, (await _client.DeleteAsync("ddel/one", deadline: Bounds.CallDeadline)).Deleted);
        Assert.Equal(0, (await _client.DeleteAsync("ddel/one", deadline: Bounds.CallDeadline)).Deleted);
        Assert.Empty((await _client.GetAsync("ddel/one", deadline: Bounds.CallDeadline)).Kvs);

        var range = await _client.DeleteAsync(new DeleteRangeRequest { Key = B("ddel/p/"), RangeEnd = EtcdClient.GetRangeEnd(B("ddel/p/")), PrevKv = true }, deadline: Bounds.CallDeadline);
        Assert.Equal(2, range.Deleted);
        Assert.Equal(["a", "b"], range.PrevKvs.Select(kv => kv.Value.ToStringUtf8()));
        Assert.Empty((await _client.GetRangeAsync("ddel/", deadline: Bounds.CallDeadline)).Kvs);
    }

    [Fact(Timeout = 60_000)]
    public async Task Reading_a_compacted_or_future_revision_fails_with_etcds_errors()
    {
        var old = (await _client.PutAsync("dcompact/k", "1", deadline: Bounds.CallDeadline)).Header.Revision;
        var now = (await _client.PutAsync("dcompact/k", "2", deadline: Bounds.CallDeadline)).Header.Revision;

        var future = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() =>
            _client.GetAsync(new RangeRequest { Key = B("dcompact/k"), Revision = now + 1_000_000 }, deadline: Bounds.CallDeadline));
        Assert.Equal(Grpc.Core.StatusCode.OutOfRange, future.StatusCode);
        Assert.Equal("etcdserver: mvcc: required revision is a future revision", future.Status.Detail);

        await _client.CompactAsync(new CompactionRequest { Revision = now, Physical = true }, deadline: Bounds.CallDeadline);
        var compacted = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() =>
            _client.GetAsync(new RangeRequest { Key = B("dcompact/k"), Revision = old }, deadline: Bounds.CallDeadline));
        Assert.Equal(Grpc.Core.StatusCode.OutOfRange, compacted.StatusCode);
        Assert.Equal("etcdserver: mvcc: required revision has been compacted", compacted.Status.Detail);
    }
}
