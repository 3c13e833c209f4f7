namespace Keel.Raft;

// Linearizable reads without log writes: ReadIndex confirmed by a heartbeat round, batched, and optional leader-lease
// reads (Raft thesis 6.4 and 6.4.1; etcd read_only.go, but with one round serving every read that waits on it).
public sealed partial class RaftNode
{
    private readonly record struct PendingRead(ulong From, ulong RequestId, ulong Index, ulong RequiredRound, long StartTick);

    private readonly List<PendingRead> _pendingReads = [];
    private readonly List<PendingRead> _readsAwaitingCommit = [];
    // Reads a follower forwarded, by the context of the ReadIndex message that carries them: all the reads of one turn
    // (between two Readys) share one message, and the leader's answer serves them all. Safe: every read in a batch was
    // issued before the message left, so the index the leader confirms after receiving it covers each of them.
    private readonly SortedDictionary<ulong, (long StartTick, List<ulong> RequestIds)> _forwardedReads = [];
    private List<ulong>? _openReadBatch;
    private readonly List<(ulong Round, long SentTick)> _roundSentTicks = [];
    private ulong _readRound;
    // The heartbeats of round _readRound are still in this turn's messages (GetReady has not handed them out): a read
    // that arrives now is confirmed by that round, since its messages leave after the read arrived.
    private bool _readRoundUnsent;
    private ulong _leaseRound;
    private long _leaseExpiresAtTick;

    /// <summary>
    /// Heartbeat rounds for reads that may be unanswered at once: a round starts for the reads that arrived while one
    /// was in flight without waiting for its answer, so a read waits about one round trip instead of up to two, and a
    /// slow follower still cannot make the leader send a round per turn.
    /// </summary>
    private const ulong MaxReadRoundsInFlight = 2;

    /// <summary>
    /// Requests a linearizable read (etcd ReadIndex). The answer arrives as a <see cref="ReadState"/> in a later
    /// <see cref="Ready"/>: serve the read once the state machine has applied <see cref="ReadState.Index"/>. Reads
    /// never hang: they fail with a typed <see cref="ReadOutcome"/> on leader change or timeout.
    /// </summary>
    /// <param name="requestId">The application's id for the request, echoed in the answer.</param>
    public void ReadIndex(ulong requestId)
    {
        if (Role == RaftRole.Leader)
        {
            HandleReadRequest(Id, requestId);
        }
        else if (Role == RaftRole.Follower && Leader != 0)
        {
            if (_openReadBatch is { } batch && _messages.Count > 0 && _messages[^1] is { Type: MessageType.ReadIndex } last && last.To == Leader
                && _forwardedReads.TryGetValue(last.Context, out var open) && ReferenceEquals(open.RequestIds, batch))
            {
                batch.Add(requestId);
                return;
            }
            _openReadBatch = [requestId];
            Send(new Message { Type = MessageType.ReadIndex, From = Id, To = Leader, Context = requestId });
            _forwardedReads[requestId] = (_tickCount, _openReadBatch);
        }
        else
        {
            _readStates.Add(new ReadState(requestId, 0, ReadOutcome.NoLeader));
        }
    }

    /// <summary>The tick until which this leader may serve lease-based reads without a round (0 when it holds no lease).</summary>
    public long LeaseExpiresAtTick => Role == RaftRole.Leader ? _leaseExpiresAtTick : 0;

    /// <summary>Reads waiting at this leader for a heartbeat round or for the first commit of its term.</summary>
    public int PendingReadCount => _pendingReads.Count + _readsAwaitingCommit.Count;

    private void HandleReadRequest(ulong from, ulong requestId)
    {
        // A new leader does not know the commit index of the previous term until it commits an entry of its own:
        // before that a read could miss an acknowledged write (thesis 6.4 step 1).
        if (!CommittedEntryInCurrentTerm())
        {
            _readsAwaitingCommit.Add(new PendingRead(from, requestId, 0, 0, _tickCount));
            return;
        }
        ServeRead(from, requestId, _tickCount);
    }

    private void ServeRead(ulong from, ulong requestId, long startTick)
    {
        var index = _log.Committed;
        if (_tracker.IsSingleVoter(Id))
        {
            RespondRead(from, requestId, index);
            return;
        }
        if (_options.ReadOnlyMode == ReadOnlyMode.LeaseBased && LeadTransferee == 0 && _tickCount < _leaseExpiresAtTick)
        {
            RespondRead(from, requestId, index);
            return;
        }
        // Confirmed by a round sent after this request arrived (the unsent one of this turn, or the next); every read
        // waiting for a round is served by it.
        _pendingReads.Add(new PendingRead(from, requestId, index, _readRoundUnsent ? _readRound : _readRound + 1, startTick));
        MaybeStartReadRound();
    }

    /// <summary>Starts the round the newest pending read needs, unless it is out already or too many rounds are.</summary>
    private void MaybeStartReadRound()
    {
        if (_pendingReads.Count == 0 || _pendingReads[^1].RequiredRound <= _readRound) return;
        if (_readRound - QuorumAckedRound() >= MaxReadRoundsInFlight) return;
        BroadcastHeartbeat();
    }

    private void RespondRead(ulong from, ulong requestId, ulong index)
    {
        if (from == Id) _readStates.Add(new ReadState(requestId, index, ReadOutcome.Ready));
        else Send(NewMessage(MessageType.ReadIndexResponse, from) with { Index = index, Context = requestId });
    }

    private ulong QuorumAckedRound()
    {
        var round = _tracker.QuorumAckedRound();
        return round == ulong.MaxValue ? _readRound : round;
    }

    private ulong StartReadRound()
    {
        _readRound++;
        _readRoundUnsent = true;
        _roundSentTicks.Add((_readRound, _tickCount));
        if (_tracker.Progress.TryGetValue(Id, out var self)) self.AckedRound = _readRound;
        return _readRound;
    }

    private void AcknowledgeReadRound(Progress pr, ulong round)
    {
        if (round <= pr.AckedRound || round > _readRound) return;
        pr.AckedRound = round;
        var quorumRound = QuorumAckedRound();
        if (quorumRound > _leaseRound)
        {
            // The lease runs from when the confirmed round was sent, not from when the acks came back: followers reset
            // their election timers on receipt, which is no earlier than the send.
            foreach (var (sentRound, sentTick) in _roundSentTicks)
            {
                if (sentRound != quorumRound) continue;
                _leaseRound = quorumRound;
                _leaseExpiresAtTick = sentTick + _options.ElectionTimeoutTicks - _options.MaxClockDriftTicks;
                break;
            }
            _roundSentTicks.RemoveAll(r => r.Round < quorumRound);
        }
        var released = 0;
        while (released < _pendingReads.Count && _pendingReads[released].RequiredRound <= quorumRound)
        {
            var read = _pendingReads[released];
            RespondRead(read.From, read.RequestId, read.Index);
            released++;
        }
        _pendingReads.RemoveRange(0, released);
        // Reads that arrived while rounds were in flight (and found no room for another) go out together in the next.
        MaybeStartReadRound();
    }

    private void ReleaseReadsAwaitingCommit()
    {
        if (_readsAwaitingCommit.Count == 0) return;
        var waiting = _readsAwaitingCommit.ToArray();
        _readsAwaitingCommit.Clear();
        foreach (var read in waiting) ServeRead(read.From, read.RequestId, read.StartTick);
    }

    private void HandleReadIndexResponse(Message m)
    {
        if (!_forwardedReads.Remove(m.Context, out var batch)) return;
        if (ReferenceEquals(batch.RequestIds, _openReadBatch)) _openReadBatch = null;
        foreach (var requestId in batch.RequestIds) _readStates.Add(new ReadState(requestId, m.Index, ReadOutcome.Ready));
    }

    private void FailPendingReads(ReadOutcome outcome)
    {
        foreach (var read in _pendingReads) FailRead(read, outcome);
        foreach (var read in _readsAwaitingCommit) FailRead(read, outcome);
        foreach (var (_, batch) in _forwardedReads)
            foreach (var requestId in batch.RequestIds) _readStates.Add(new ReadState(requestId, 0, outcome));
        _pendingReads.Clear();
        _readsAwaitingCommit.Clear();
        _forwardedReads.Clear();
        _openReadBatch = null;
    }

    // Remote readers learn of the failure by their own leader change or timeout; only local ones are answered here.
    private void FailRead(PendingRead read, ReadOutcome outcome)
    {
        if (read.From == Id) _readStates.Add(new ReadState(read.RequestId, 0, outcome));
    }

    private void ResetReads()
    {
        _readRound = 0;
        _readRoundUnsent = false;
        _leaseRound = 0;
        _leaseExpiresAtTick = 0;
        _roundSentTicks.Clear();
    }

    private void ExpireReads()
    {
        var timeout = _options.ReadTimeoutTicks > 0 ? _options.ReadTimeoutTicks : 2 * _options.ElectionTimeoutTicks;
        var cutoff = _tickCount - timeout;
        ExpireFrom(_pendingReads, cutoff);
        ExpireFrom(_readsAwaitingCommit, cutoff);
        if (_forwardedReads.Count == 0) return;
        foreach (var (context, batch) in _forwardedReads.ToArray())
        {
            if (batch.StartTick > cutoff) continue;
            _forwardedReads.Remove(context);
            if (ReferenceEquals(batch.RequestIds, _openReadBatch)) _openReadBatch = null;
            foreach (var requestId in batch.RequestIds) _readStates.Add(new ReadState(requestId, 0, ReadOutcome.TimedOut));
        }
    }

    private void ExpireFrom(List<PendingRead> reads, long cutoff)
    {
        if (reads.Count == 0) return;
        var kept = 0;
        for (var i = 0; i < reads.Count; i++)
        {
            var read = reads[i];
            if (read.StartTick <= cutoff) FailRead(read, ReadOutcome.TimedOut);
            else reads[kept++] = read;
        }
        reads.RemoveRange(kept, reads.Count - kept);
    }
}
