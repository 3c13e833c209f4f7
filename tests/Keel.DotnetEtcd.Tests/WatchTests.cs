using System.Threading.Channels;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Mvccpb;

namespace Keel.DotnetEtcd.Tests;

/// <summary>Watch through dotnet-etcd: history from a start revision, prefix, prev_kv, live events, compaction cancel.</summary>
[Collection(SharedClusterCollection.Name)]
public sealed class WatchTests(SharedClusterFixture fixture)
{
    private readonly EtcdClient _client = fixture.Client;

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static async Task<List<WatchResponse>> Collect(ChannelReader<WatchResponse> reader, Func<List<WatchResponse>, bool> done)
    {
        var seen = new List<WatchResponse>();
        using var cancel = new CancellationTokenSource(Bounds.WaitTimeout);
        try
        {
            while (!done(seen)) seen.Add(await reader.ReadAsync(cancel.Token));
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"watch: condition not met within {Bounds.WaitTimeout.TotalSeconds} s; got {string.Join(" | ", seen)}");
        }
        return seen;
    }

    private static int EventCount(List<WatchResponse> responses) => responses.Sum(r => r.Events.Count);

    [Fact(Timeout = 60_000)]
    public async Task A_watch_from_an_old_revision_replays_history_then_streams_new_events_in_order()
    {
        var first = (await _client.PutAsync("dwatch/k", "v1", deadline: Bounds.CallDeadline)).Header.Revision;
        await _client.PutAsync("dwatch/k", "v2", deadline: Bounds.CallDeadline);
        await _client.DeleteAsync("dwatch/k", deadline: Bounds.CallDeadline);
        await _client.PutAsync("dwatchx", "outside the prefix", deadline: Bounds.CallDeadline);

        var responses = Channel.CreateUnbounded<WatchResponse>();
        using var stop = new CancellationTokenSource();
        var request = new WatchRequest
        {
            CreateRequest = new WatchCreateRequest { Key = B("dwatch/"), RangeEnd = EtcdClient.GetRangeEnd(B("dwatch/")), StartRevision = first, PrevKv = true },
        };
        var watchId = await _client.WatchAsync(request, r => responses.Writer.TryWrite(r), cancellationToken: stop.Token);
        try
        {
            var history = await Collect(responses.Reader, seen => EventCount(seen) >= 3);
            var events = history.SelectMany(r => r.Events).ToArray();
            Assert.Equal([Event.Types.EventType.Put, Event.Types.EventType.Put, Event.Types.EventType.Delete], events.Select(e => e.Type));
            Assert.Equal(["v1", "v2", ""], events.Select(e => e.Kv.Value.ToStringUtf8()));
            Assert.Equal("v1", events[1].PrevKv.Value.ToStringUtf8());
            Assert.Equal("dwatch/k", events[2].Kv.Key.ToStringUtf8());
            Assert.Equal(first, events[0].Kv.ModRevision);
            Assert.True(events[0].Kv.ModRevision < events[1].Kv.ModRevision && events[1].Kv.ModRevision < events[2].Kv.ModRevision);

            var live = (await _client.PutAsync("dwatch/live", "now", deadline: Bounds.CallDeadline)).Header.Revision;
            var next = await Collect(responses.Reader, seen => EventCount(seen) >= 1);
            var liveEvent = Assert.Single(next.SelectMany(r => r.Events));
            Assert.Equal("dwatch/live", liveEvent.Kv.Key.ToStringUtf8());
            Assert.Equal(live, liveEvent.Kv.ModRevision);
        }
        finally
        {
            _client.CancelWatch(watchId);
            stop.Cancel();
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task A_watch_from_a_compacted_revision_is_canceled_with_the_compact_revision()
    {
        var old = (await _client.PutAsync("dwatchc/k", "1", deadline: Bounds.CallDeadline)).Header.Revision;
        var now = (await _client.PutAsync("dwatchc/k", "2", deadline: Bounds.CallDeadline)).Header.Revision;
        await _client.CompactAsync(new CompactionRequest { Revision = now }, deadline: Bounds.CallDeadline);

        var responses = Channel.CreateUnbounded<WatchResponse>();
        using var stop = new CancellationTokenSource();
        var request = new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("dwatchc/k"), StartRevision = old } };
        var watchId = await _client.WatchAsync(request, r => responses.Writer.TryWrite(r), cancellationToken: stop.Token);
        try
        {
            var seen = await Collect(responses.Reader, s => s.Any(r => r.Canceled));
            var canceled = seen.First(r => r.Canceled);
            Assert.Equal(now, canceled.CompactRevision);
            Assert.Empty(seen.SelectMany(r => r.Events));
        }
        finally
        {
            _client.CancelWatch(watchId);
            stop.Cancel();
        }
    }
}
