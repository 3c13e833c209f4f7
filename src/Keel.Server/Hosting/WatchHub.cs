using System.Threading.Channels;
using Keel.Mvcc;
using Keel.Protocol.Etcd.Etcdserverpb;


namespace Keel.Server.Hosting;

/// <summary>
/// Serves etcd watches from this member's applied store (etcd <c>mvcc/watchable_store.go</c> without its separate
/// synced/unsynced groups): every watcher remembers the next revision it owes its client, and after each batch of
/// applied work the hub reads the store's history from there. Because each watcher is fed only from the store's
/// history in revision order, events are never skipped or duplicated, also across a leader change (the store on
/// this member applies the one log in order whoever leads). A slow client is simply left behind (its stream has too
/// many responses queued) and catches up from history later; if compaction overtakes it, it is canceled with the
/// compact revision, as etcd does.
/// </summary>
/// <remarks>Touched only from the node loop.</remarks>
internal sealed class WatchHub
{
    /// <summary>A stream with more responses than this queued is not fed until it drains.</summary>
    private const int MaxQueuedResponses = 64;

    /// <summary>At most this many events go into one response (etcd sends at most its batch size per response too).</summary>
    private const int MaxEventsPerResponse = 1000;

    private readonly NodeHost _host;
    private readonly List<Watcher> _watchers = [];

    public WatchHub(NodeHost host) => _host = host;

    /// <summary>Watchers served (etcd's <c>etcd_debugging_mvcc_watcher_total</c>).</summary>
    public int Count => _watchers.Count;

    /// <summary>Streams with at least one watcher.</summary>
    public int StreamCount => _watchers.Select(w => w.Stream).Distinct().Count();

    /// <summary>Adds a watcher; the created response is queued first, so its events always follow it.</summary>
    public void Add(Watcher watcher)
    {
        var store = _host.Node.Store;
        var current = store.CurrentRevision;
        if (watcher.NextRevision == 0) watcher.NextRevision = current + 1;
        if (watcher.NextRevision < store.CompactRevision)
        {
            // etcd: created, then canceled at once with the compact revision (clients match on CompactRevision).
            watcher.Stream.Enqueue(new WatchResponse { Header = Header(), WatchId = watcher.WatchId, Created = true });
            CancelCompacted(watcher);
            return;
        }
        watcher.Stream.Enqueue(new WatchResponse { Header = Header(), WatchId = watcher.WatchId, Created = true });
        _watchers.Add(watcher);
        Feed(watcher);
    }

    /// <summary>Removes a watcher of <paramref name="stream"/>; true when it existed.</summary>
    public bool Remove(WatchStream stream, long watchId)
    {
        var index = _watchers.FindIndex(w => w.Stream == stream && w.WatchId == watchId);
        if (index < 0) return false;
        _watchers.RemoveAt(index);
        return true;
    }

    /// <summary>Removes every watcher of a closed stream.</summary>
    public void RemoveAll(WatchStream stream) => _watchers.RemoveAll(w => w.Stream == stream);

    /// <summary>Answers a progress request: the current revision if every watcher of the stream is caught up.</summary>
    public void RequestProgress(WatchStream stream)
    {
        var current = _host.Node.Store.CurrentRevision;
        if (_watchers.Any(w => w.Stream == stream && w.NextRevision <= current)) return;
        stream.Enqueue(new WatchResponse { Header = Header(), WatchId = -1 });
    }

    /// <summary>Feeds every watcher the events applied since its next revision.</summary>
    public void Notify()
    {
        if (_watchers.Count == 0) return;
        var store = _host.Node.Store;
        for (var i = _watchers.Count - 1; i >= 0; i--)
        {
            var watcher = _watchers[i];
            if (watcher.NextRevision > store.CurrentRevision || watcher.Stream.QueuedResponses > MaxQueuedResponses) continue;
            if (watcher.NextRevision < store.CompactRevision)
            {
                CancelCompacted(watcher);
                _watchers.RemoveAt(i);
                continue;
            }
            Feed(watcher);
        }
    }

    /// <summary>
    /// etcd's periodic progress notification (<c>progress_notify</c>, every 10 minutes by default): each caught-up
    /// watcher that asked for it gets an empty response whose header carries the current revision, so a client on a
    /// quiet key knows how far it has seen.
    /// </summary>
    public void NotifyProgress()
    {
        var current = _host.Node.Store.CurrentRevision;
        foreach (var watcher in _watchers)
        {
            if (!watcher.ProgressNotify || watcher.NextRevision <= current) continue;
            watcher.Stream.Enqueue(new WatchResponse { Header = Header(), WatchId = watcher.WatchId });
        }
    }

    /// <summary>Ends every stream (shutdown).</summary>
    public void CancelAll(string reason)
    {
        foreach (var watcher in _watchers) watcher.Stream.Complete();
        _watchers.Clear();
    }

    /// <summary>etcd cancels a watch whose next revision was compacted away, naming the compact revision.</summary>
    private void CancelCompacted(Watcher watcher) => watcher.Stream.Enqueue(new WatchResponse
    {
        Header = Header(),
        WatchId = watcher.WatchId,
        Canceled = true,
        CompactRevision = _host.Node.Store.CompactRevision,
        CancelReason = "etcdserver: mvcc: required revision has been compacted",
    });

    private void Feed(Watcher watcher)
    {
        var store = _host.Node.Store;
        if (watcher.NextRevision > store.CurrentRevision) return;
        var events = store.Events(watcher.NextRevision, watcher.Key, watcher.RangeEnd);
        var response = new WatchResponse { Header = Header(), WatchId = watcher.WatchId };
        var lastRevision = store.CurrentRevision;
        for (var i = 0; i < events.Count; i++)
        {
            var change = events[i];
            // Stop at a revision boundary so one revision's events never straddle two responses unless fragmenting.
            if (response.Events.Count >= MaxEventsPerResponse && change.Kv.ModRevision != events[i - 1].Kv.ModRevision)
            {
                lastRevision = events[i - 1].Kv.ModRevision;
                break;
            }
            if (change.Type == EventType.Put && watcher.NoPut) continue;
            if (change.Type == EventType.Delete && watcher.NoDelete) continue;
            response.Events.Add(ProtoMapping.ToProto(change, watcher.PrevKv));
        }
        watcher.NextRevision = lastRevision + 1;
        if (response.Events.Count > 0) watcher.Stream.Enqueue(response);
    }

    private ResponseHeader Header() => _host.Header(_host.Node.Store.CurrentRevision);
}

/// <summary>One watch of a stream (etcd <c>WatchCreateRequest</c>).</summary>
internal sealed class Watcher
{
    public required WatchStream Stream { get; init; }
    public required long WatchId { get; init; }
    public required byte[] Key { get; init; }
    public required byte[] RangeEnd { get; init; }
    public long NextRevision { get; set; }
    public bool PrevKv { get; init; }
    public bool NoPut { get; init; }
    public bool NoDelete { get; init; }
    public bool ProgressNotify { get; init; }
}

/// <summary>The outgoing side of one gRPC Watch call: a queue drained by the call's writer.</summary>
internal sealed class WatchStream
{
    private readonly Channel<WatchResponse> _responses = Channel.CreateUnbounded<WatchResponse>(new UnboundedChannelOptions { SingleReader = true });
    private int _queued;

    public int QueuedResponses => Volatile.Read(ref _queued);

    public ChannelReader<WatchResponse> Reader => _responses.Reader;

    public void Enqueue(WatchResponse response)
    {
        if (_responses.Writer.TryWrite(response)) Interlocked.Increment(ref _queued);
    }

    public void OnSent() => Interlocked.Decrement(ref _queued);

    public void Complete() => _responses.Writer.TryComplete();
}
