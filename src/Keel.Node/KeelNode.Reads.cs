using Keel.Mvcc;
using Keel.Raft;

namespace Keel.Node;

// Reads: linearizable through ReadIndex (Raft thesis 6.4; etcd v3_server.go linearizableReadLoop), served once the
// store has applied the confirmed index; serializable from the local store at once.
public sealed partial class KeelNode
{
    // LeaderWaitUntilMs: if the read finds no leader, or loses the one it asked, it may wait for the next until then.
    private readonly record struct PendingRead(ulong RequestId, RangeRequest Request, long DeadlineMs, long LeaderWaitUntilMs);

    private readonly SortedDictionary<ulong, PendingRead> _readsAwaitingIndex = [];
    private readonly List<(ulong Index, PendingRead Read)> _readsAwaitingApply = [];
    private ulong _nextReadId;

    /// <summary>
    /// Reads a key or range. A linearizable read reflects every write acknowledged before it was issued; a
    /// serializable read is served from this replica's store at once and may be stale.
    /// </summary>
    /// <param name="requestId">The client's id for the request, echoed in the answer.</param>
    /// <param name="request">The range to read.</param>
    /// <param name="linearizable">True for etcd's default read; false for <c>serializable: true</c>.</param>
    public void Read(ulong requestId, RangeRequest request, bool linearizable) => Read(requestId, request, linearizable, NoCallerDeadline);

    /// <summary>
    /// Reads as <see cref="Read(ulong, RangeRequest, bool)"/>; a linearizable read that finds no leader, or whose leader
    /// is lost before it confirmed the read index, waits for the next leader until <paramref name="leaderWaitUntilMs"/>
    /// (monotonic ms, the caller's deadline) or <see cref="KeelNodeOptions.LeaderWaitMs"/>, whichever comes first, and
    /// then fails with "etcdserver: no leader". A read has no effect, so asking again for a read index is always safe.
    /// </summary>
    /// <param name="requestId">The client's id for the request, echoed in the answer.</param>
    /// <param name="request">The range to read.</param>
    /// <param name="linearizable">True for etcd's default read; false for <c>serializable: true</c>.</param>
    /// <param name="leaderWaitUntilMs">The caller's bound on waiting for a leader, or <see cref="NoCallerDeadline"/>.</param>
    public void Read(ulong requestId, RangeRequest request, bool linearizable, long leaderWaitUntilMs)
    {
        ArgumentNullException.ThrowIfNull(request);
        try
        {
            MvccStore.Validate(request);
        }
        catch (MvccException refused)
        {
            Respond(KvResult.Failed(requestId, KeelError.FromMvcc(refused)));
            return;
        }
        if (!linearizable || (_options.UnsafeLocalReadsOnLeader && IsLeader))
        {
            Respond(Serve(requestId, request));
            return;
        }
        if (PendingCount >= _options.MaxPendingRequests)
        {
            Respond(KvResult.Failed(requestId, KeelError.TooManyRequests));
            return;
        }
        var leaderWaitUntil = LeaderWaitUntil(leaderWaitUntilMs);
        if (!HasKnownLeader)
        {
            AwaitLeaderOrRefuse(new AwaitingLeader(requestId, leaderWaitUntil, null, null, request));
            return;
        }
        // Read ids start at a random point each boot, so a ReadIndex answer meant for an earlier incarnation of this
        // node (still in the network) cannot be taken for one of ours.
        if (_nextReadId == 0) _nextReadId = (_random.NextUInt64() >> 2) + 1;
        var readId = _nextReadId++;
        _readsAwaitingIndex.Add(readId, new PendingRead(requestId, request, Deadline(), leaderWaitUntil));
        _raft.ReadIndex(readId);
        HandleReady();
    }

    private KvResult Serve(ulong requestId, RangeRequest request)
    {
        try
        {
            return new KvResult { RequestId = requestId, Range = _store.Range(request) };
        }
        catch (MvccException refused)
        {
            return KvResult.Failed(requestId, KeelError.FromMvcc(refused));
        }
    }

    private void OnReadState(ReadState state)
    {
        if (!_readsAwaitingIndex.Remove(state.RequestId, out var read)) return;
        switch (state.Outcome)
        {
            case ReadOutcome.Ready:
                if (state.Index <= AppliedIndex) Respond(Serve(read.RequestId, read.Request));
                else _readsAwaitingApply.Add((state.Index, read));
                break;
            case ReadOutcome.NoLeader:
                AwaitLeaderOrRefuse(new AwaitingLeader(read.RequestId, read.LeaderWaitUntilMs, null, null, read.Request));
                break;
            case ReadOutcome.LeaderChanged when _options.LeaderWaitMs > 0:
                // Nothing was read: ask the next leader (a read index confirmed later still reflects every write
                // acknowledged before the read was issued).
                AwaitLeaderOrRefuse(new AwaitingLeader(read.RequestId, read.LeaderWaitUntilMs, null, null, read.Request));
                break;
            case ReadOutcome.LeaderChanged:
                Respond(KvResult.Failed(read.RequestId, KeelError.LeaderChanged));
                break;
            default:
                Respond(KvResult.Failed(read.RequestId, KeelError.RequestTimedOut));
                break;
        }
    }

    private void ServeAppliedReads()
    {
        if (_readsAwaitingApply.Count == 0) return;
        var kept = 0;
        for (var i = 0; i < _readsAwaitingApply.Count; i++)
        {
            var (index, read) = _readsAwaitingApply[i];
            if (index <= AppliedIndex) Respond(Serve(read.RequestId, read.Request));
            else _readsAwaitingApply[kept++] = _readsAwaitingApply[i];
        }
        _readsAwaitingApply.RemoveRange(kept, _readsAwaitingApply.Count - kept);
    }

    private void ExpireReads()
    {
        List<ulong>? expired = null;
        foreach (var (readId, read) in _readsAwaitingIndex)
            if (read.DeadlineMs <= _nowMs) (expired ??= []).Add(readId);
        if (expired is not null)
        {
            foreach (var readId in expired)
            {
                _readsAwaitingIndex.Remove(readId, out var read);
                Respond(KvResult.Failed(read.RequestId, KeelError.RequestTimedOut));
            }
        }
        var kept = 0;
        for (var i = 0; i < _readsAwaitingApply.Count; i++)
        {
            var (_, read) = _readsAwaitingApply[i];
            if (read.DeadlineMs <= _nowMs) Respond(KvResult.Failed(read.RequestId, KeelError.RequestTimedOut));
            else _readsAwaitingApply[kept++] = _readsAwaitingApply[i];
        }
        _readsAwaitingApply.RemoveRange(kept, _readsAwaitingApply.Count - kept);
    }
}
