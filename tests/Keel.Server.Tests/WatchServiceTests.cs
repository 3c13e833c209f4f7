using Google.Protobuf;
using Grpc.Core;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Protocol.Etcd.Mvccpb;

namespace Keel.Server.Tests;

public class WatchServiceTests
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static async Task<WatchResponse> Next(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.True(await call.ResponseStream.MoveNext(timeout.Token), "the watch stream ended");
        return call.ResponseStream.Current;
    }

    [Fact]
    public async Task Events_arrive_in_revision_order_after_the_created_reply_with_prev_kv_and_filters()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1);
        var kv = new KV.KVClient(cluster.Channel(0));
        using var call = new Watch.WatchClient(cluster.Channel(0)).Watch();
        await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("w/"), RangeEnd = B("w0"), PrevKv = true } });
        var created = await Next(call);
        Assert.True(created.Created);
        await call.RequestStream.WriteAsync(new WatchRequest
        {
            CreateRequest = new WatchCreateRequest { Key = B("w/"), RangeEnd = B("w0"), Filters = { WatchCreateRequest.Types.FilterType.Noput } },
        });
        var createdDeletesOnly = await Next(call);
        Assert.True(createdDeletesOnly.Created);
        Assert.NotEqual(created.WatchId, createdDeletesOnly.WatchId);

        var revisions = new List<long>();
        for (var i = 0; i < 5; i++) revisions.Add((await kv.PutAsync(new PutRequest { Key = B("w/a"), Value = B(i.ToString()) })).Header.Revision);
        await kv.PutAsync(new PutRequest { Key = B("other"), Value = B("x") });
        revisions.Add((await kv.DeleteRangeAsync(new DeleteRangeRequest { Key = B("w/a") })).Header.Revision);

        var all = new List<Event>();
        var deletes = new List<Event>();
        while (all.Count < 6 || deletes.Count < 1)
        {
            var response = await Next(call);
            (response.WatchId == created.WatchId ? all : deletes).AddRange(response.Events);
        }
        Assert.Equal(revisions, all.Select(e => e.Kv.ModRevision));
        Assert.Equal(Event.Types.EventType.Delete, all[^1].Type);
        Assert.Equal("3", all[4].PrevKv.Value.ToStringUtf8());
        Assert.Single(deletes);
        Assert.Equal(revisions[^1], deletes[0].Kv.ModRevision);
        await call.RequestStream.CompleteAsync();
    }

    [Fact]
    public async Task A_watch_from_an_old_revision_replays_history_and_a_compacted_start_is_canceled()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1);
        var kv = new KV.KVClient(cluster.Channel(0));
        var first = (await kv.PutAsync(new PutRequest { Key = B("h"), Value = B("1") })).Header.Revision;
        await kv.PutAsync(new PutRequest { Key = B("h"), Value = B("2") });
        var third = (await kv.PutAsync(new PutRequest { Key = B("h"), Value = B("3") })).Header.Revision;

        using (var call = new Watch.WatchClient(cluster.Channel(0)).Watch())
        {
            await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("h"), StartRevision = first } });
            Assert.True((await Next(call)).Created);
            var events = new List<Event>();
            while (events.Count < 3) events.AddRange((await Next(call)).Events);
            Assert.Equal(["1", "2", "3"], events.Select(e => e.Kv.Value.ToStringUtf8()));
        }

        await kv.CompactAsync(new CompactionRequest { Revision = third });
        using (var call = new Watch.WatchClient(cluster.Channel(0)).Watch())
        {
            await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("h"), StartRevision = first } });
            var response = await Next(call);
            if (response.Created && !response.Canceled) response = await Next(call);
            Assert.True(response.Canceled);
            Assert.Equal(third, response.CompactRevision);
        }
    }

    [Fact]
    public async Task A_progress_request_reports_the_current_revision_with_watch_id_minus_one()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1);
        var kv = new KV.KVClient(cluster.Channel(0));
        var revision = (await kv.PutAsync(new PutRequest { Key = B("p"), Value = B("1") })).Header.Revision;
        using var call = new Watch.WatchClient(cluster.Channel(0)).Watch();
        await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("q") } });
        Assert.True((await Next(call)).Created);
        await call.RequestStream.WriteAsync(new WatchRequest { ProgressRequest = new WatchProgressRequest() });
        var progress = await Next(call);
        Assert.Equal(-1, progress.WatchId);
        Assert.Empty(progress.Events);
        Assert.Equal(revision, progress.Header.Revision);
    }

    [Fact]
    public async Task A_quiet_watch_with_progress_notify_gets_periodic_empty_responses_with_the_current_revision()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1, progressNotifyMs: 300);
        var kv = new KV.KVClient(cluster.Channel(0));
        var revision = (await kv.PutAsync(new PutRequest { Key = B("busy"), Value = B("1") })).Header.Revision;
        using var call = new Watch.WatchClient(cluster.Channel(0)).Watch();
        await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("quiet"), ProgressNotify = true, WatchId = 7 } });
        Assert.True((await Next(call)).Created);
        var progress = await Next(call);
        Assert.Equal(7, progress.WatchId);
        Assert.Empty(progress.Events);
        Assert.Equal(revision, progress.Header.Revision);
        var later = (await kv.PutAsync(new PutRequest { Key = B("busy"), Value = B("2") })).Header.Revision;
        WatchResponse next;
        do next = await Next(call);
        while (next.Header.Revision < later);
        Assert.Equal((7L, later), (next.WatchId, next.Header.Revision));
        Assert.Empty(next.Events);
    }
}
