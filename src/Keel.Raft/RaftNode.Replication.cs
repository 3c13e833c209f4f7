using Keel.Core;

namespace Keel.Raft;

// Log replication: proposals, AppendEntries on both sides, commit by quorum, back-pressure
// (Raft 5.3 and 5.4.2; etcd raft.go stepLeader/handleAppendEntries/maybeCommit).
public sealed partial class RaftNode
{
    private readonly List<(ulong Index, ulong Term)> _pendingProposals = [];
    private long _uncommittedBytes;

    /// <summary>Payload bytes appended by this leader that are not yet committed (back-pressure).</summary>
    public long UncommittedBytes => _uncommittedBytes;

    /// <summary>
    /// Proposes an application command. A leader appends it (and later reports a <see cref="ProposalOutcome"/>); a
    /// follower forwards it to the leader; otherwise it is dropped with a typed reason, never silently.
    /// </summary>
    public ProposeResult Propose(ReadOnlyMemory<byte> data) => ProposeEntry(EntryType.Normal, data);

    private ProposeResult ProposeEntry(EntryType type, ReadOnlyMemory<byte> data)
    {
        var entry = new Entry(0, 0, type, data);
        switch (Role)
        {
            case RaftRole.Leader:
                return LeaderPropose([entry], local: true);
            case RaftRole.Follower when Leader == 0:
                return ProposeResult.Dropped(ProposalDropReason.NoLeader, $"node {Id} knows no leader in term {_term}");
            case RaftRole.Follower when _options.DisableProposalForwarding:
                return ProposeResult.Dropped(ProposalDropReason.ForwardingDisabled, $"node {Id} does not forward proposals to leader {Leader}");
            case RaftRole.Follower:
                Forward(entry);
                return new ProposeResult(ProposeStatus.Forwarded, 0, 0, Leader, ProposalDropReason.None, null);
            default:
                return ProposeResult.Dropped(ProposalDropReason.NoLeader, $"node {Id} is campaigning in term {_term}");
        }
    }

    // Proposals this follower forwards between two Readys travel as one Propose message (up to
    // MaxSizePerMessageBytes): under load a follower then costs the leader one frame, one send and one step per batch,
    // not per write. The list is only appended to until GetReady hands the message out.
    private List<Entry>? _forwarding;
    private long _forwardingBytes;

    private void Forward(Entry entry)
    {
        if (_forwarding is { } batch && _messages.Count > 0 && _messages[^1] is { Type: MessageType.Propose } last && last.To == Leader
            && ReferenceEquals(last.Entries, batch) && _forwardingBytes + entry.Data.Length <= _options.MaxSizePerMessageBytes)
        {
            batch.Add(entry);
            _forwardingBytes += entry.Data.Length;
            return;
        }
        _forwarding = [entry];
        _forwardingBytes = entry.Data.Length;
        Send(new Message { Type = MessageType.Propose, From = Id, To = Leader, Entries = _forwarding });
    }

    private ProposeResult LeaderPropose(IReadOnlyList<Entry> proposed, bool local)
    {
        if (proposed.Count == 0) return ProposeResult.Dropped(ProposalDropReason.None, "empty proposal");
        if (!_tracker.Progress.ContainsKey(Id))
            return ProposeResult.Dropped(ProposalDropReason.NotMember, $"leader {Id} was removed from the configuration");
        if (LeadTransferee != 0)
            return ProposeResult.Dropped(ProposalDropReason.LeadershipTransferInProgress,
                $"leader {Id} is transferring leadership to {LeadTransferee}");
        foreach (var entry in proposed)
        {
            if (entry.Type != EntryType.ConfChange) continue;
            var refusal = CheckConfChangeProposal(entry.Data);
            if (refusal is not null) return ProposeResult.Dropped(ProposalDropReason.ConfChangeRefused, refusal);
        }
        long bytes = 0;
        foreach (var entry in proposed) bytes += entry.PayloadBytes;
        // etcd increaseUncommittedSize: one proposal is always allowed when nothing is outstanding, so a single large
        // entry cannot wedge the leader.
        if (_options.MaxUncommittedBytes > 0 && _uncommittedBytes > 0 && bytes > 0 && _uncommittedBytes + bytes > _options.MaxUncommittedBytes)
            return ProposeResult.Dropped(ProposalDropReason.Overloaded,
                $"leader {Id} has {_uncommittedBytes} uncommitted bytes; limit {_options.MaxUncommittedBytes}");
        if (_options.MaxQuorumLagEntries > 0)
        {
            var quorumIndex = _tracker.QuorumMatchIndex();
            var lag = _log.LastIndex > quorumIndex ? _log.LastIndex - quorumIndex : 0;
            if (lag > _options.MaxQuorumLagEntries)
                return ProposeResult.Dropped(ProposalDropReason.QuorumLagging,
                    $"the quorum has replicated up to {quorumIndex}, {lag} entries behind the leader's {_log.LastIndex}; limit {_options.MaxQuorumLagEntries}");
        }
        var first = _log.LastIndex + 1;
        var entries = new Entry[proposed.Count];
        for (var i = 0; i < entries.Length; i++)
        {
            entries[i] = proposed[i] with { Index = first + (ulong)i, Term = _term };
            if (entries[i].Type == EntryType.ConfChange) _pendingConfIndex = entries[i].Index;
        }
        _uncommittedBytes += bytes;
        AppendEntries(entries);
        if (local)
        {
            foreach (var entry in entries) _pendingProposals.Add((entry.Index, entry.Term));
        }
        BroadcastAppend();
        var last = entries[^1];
        return new ProposeResult(ProposeStatus.Appended, last.Index, last.Term, Id, ProposalDropReason.None, null);
    }

    // The leader's own append: only ever at the end of its log.
    private void AppendEntries(IReadOnlyList<Entry> entries)
    {
        var last = _log.LastIndex;
        if (entries[0].Index == 0)
        {
            var numbered = new Entry[entries.Count];
            for (var i = 0; i < numbered.Length; i++) numbered[i] = entries[i] with { Index = last + 1 + (ulong)i, Term = _term };
            entries = numbered;
        }
        Invariant.Check(entries[0].Index == last + 1, "a leader never truncates its own log");
        // The leader's own ack waits for OnPersisted: it counts its entries only once durable (thesis 10.2.1).
        _log.Append(entries);
    }

    private void ReduceUncommittedBytes(IReadOnlyList<Entry> committed)
    {
        if (Role != RaftRole.Leader) return;
        long bytes = 0;
        foreach (var entry in committed) bytes += entry.PayloadBytes;
        _uncommittedBytes = Math.Max(0, _uncommittedBytes - bytes);
    }

    private void BroadcastAppend()
    {
        foreach (var (id, pr) in _tracker.Members)
        {
            if (id != Id) MaybeSendAppend(id, pr, sendIfEmpty: true);
        }
    }

    /// <summary>
    /// Sends the next append to <paramref name="to"/> if flow control allows (etcd <c>maybeSendAppend</c>); falls back
    /// to a snapshot when the needed entries were compacted.
    /// </summary>
    private bool MaybeSendAppend(ulong to, Progress pr, bool sendIfEmpty)
    {
        if (pr.IsPaused) return false;
        var prevIndex = pr.Next - 1;
        if (_log.TryGetTerm(prevIndex, out var prevTerm) != StorageStatus.Ok) return MaybeSendSnapshot(to, pr);
        IReadOnlyList<Entry> entries = [];
        if (pr.Next <= _log.LastIndex)
        {
            var batch = new List<Entry>();
            var status = _log.TryGetEntries(pr.Next, _log.LastIndex + 1, _options.MaxSizePerMessageBytes, batch);
            if (status == StorageStatus.Compacted) return MaybeSendSnapshot(to, pr);
            Invariant.Check(status == StorageStatus.Ok, "entries between Next and the last index must be readable");
            entries = batch;
        }
        if (entries.Count == 0 && !sendIfEmpty) return false;
        long bytes = 0;
        foreach (var entry in entries) bytes += entry.PayloadBytes;
        Send(new Message
        {
            Type = MessageType.Append,
            From = Id,
            To = to,
            Term = _term,
            Index = prevIndex,
            LogTerm = prevTerm,
            Entries = entries,
            Commit = _log.Committed,
        });
        pr.SentEntries(entries.Count, bytes, entries.Count > 0 ? entries[^1].Index : prevIndex);
        return true;
    }

    private void BroadcastHeartbeat()
    {
        var round = StartReadRound();
        foreach (var (id, pr) in _tracker.Members)
        {
            if (id == Id) continue;
            // Never tell a follower to commit beyond what it is known to hold: its tail may still diverge from ours
            // (the etcd "tocommit out of range" panic came from trusting such a commit index).
            Send(new Message { Type = MessageType.Heartbeat, From = Id, To = id, Term = _term, Commit = Math.Min(pr.Match, _log.Committed), Context = round });
        }
    }

    private void HandleAppend(Message m)
    {
        if (m.Index < _log.Committed)
        {
            Send(NewMessage(MessageType.AppendResponse, m.From) with { Index = _log.Committed });
            return;
        }
        var lastNew = _log.MaybeAppend(m.Index, m.LogTerm, m.Commit, m.Entries);
        if (lastNew is { } matched)
        {
            Send(new Message { Type = MessageType.AppendResponse, From = Id, To = m.From, Term = _term, Index = matched });
            return;
        }
        // Fast backtracking (etcd): hint the largest index whose term is at most the leader's prevTerm, so the leader
        // skips a whole divergent term per round trip instead of one entry.
        var (hintIndex, hintTerm) = _log.FindConflictByTerm(Math.Min(m.Index, _log.LastIndex), m.LogTerm);
        Send(NewMessage(MessageType.AppendResponse, m.From) with
        {
            Index = m.Index,
            Reject = true,
            RejectHint = hintIndex,
            LogTerm = hintTerm,
        });
    }

    private void HandleHeartbeat(Message m)
    {
        _log.CommitTo(Math.Min(m.Commit, _log.LastIndex));
        Send(new Message { Type = MessageType.HeartbeatResponse, From = Id, To = m.From, Term = _term, Context = m.Context });
    }

    private void HandleAppendResponse(Message m, Progress pr)
    {
        // No follower can hold more than this leader sent it: an ack beyond our log is corrupt, and trusting it would
        // later count the follower for entries it never received.
        if (!m.Reject && m.Index > _log.LastIndex) return;
        MarkActive(pr);
        if (m.Reject)
        {
            var nextProbe = m.RejectHint;
            if (m.LogTerm > 0) nextProbe = _log.FindConflictByTerm(m.RejectHint, m.LogTerm).Index;
            if (pr.MaybeDecreaseTo(m.Index, nextProbe))
            {
                if (pr.State == ProgressState.Replicate) pr.BecomeProbe();
                MaybeSendAppend(m.From, pr, sendIfEmpty: true);
            }
            return;
        }
        if (pr.State == ProgressState.Snapshot && m.Index >= pr.PendingSnapshot)
        {
            // The follower holds the snapshot (this one, or an older one we kept resending while the log was compacted
            // further): leave the Snapshot state. Replicate if our log continues where it is, else probe, which sends
            // the current snapshot. Waiting for the application to report the snapshot would hang on a lost message.
            pr.MaybeUpdate(m.Index);
            pr.BecomeProbe();
            if (pr.Match + 1 >= _log.FirstIndex) pr.BecomeReplicate();
            if (MaybeCommit()) BroadcastAppend();
            else MaybeSendAppend(m.From, pr, sendIfEmpty: true);
            while (MaybeSendAppend(m.From, pr, sendIfEmpty: false)) { }
            return;
        }
        var wasPaused = pr.IsPaused;
        if (!pr.MaybeUpdate(m.Index) && !(pr.Match == m.Index && pr.State == ProgressState.Probe)) return;
        switch (pr.State)
        {
            case ProgressState.Probe:
                pr.BecomeReplicate();
                break;
            case ProgressState.Replicate:
                pr.Inflights.FreeLe(m.Index);
                break;
        }
        if (MaybeCommit()) BroadcastAppend();
        else if (wasPaused) MaybeSendAppend(m.From, pr, sendIfEmpty: true);
        while (MaybeSendAppend(m.From, pr, sendIfEmpty: false)) { }
        if (m.From == LeadTransferee && pr.Match == _log.LastIndex) SendTimeoutNow(m.From);
    }

    private void HandleHeartbeatResponse(Message m, Progress pr)
    {
        MarkActive(pr);
        pr.ProbeSent = false;
        // Appends in flight may have been lost: a full window would then never drain. Free one slot so the next append
        // goes out; if entries were lost the follower rejects it and we fall back to probing (etcd FreeFirstOne).
        if (pr.State == ProgressState.Replicate && pr.Inflights.Full) pr.Inflights.FreeFirstOne();
        if (pr.State == ProgressState.Snapshot) MaybeResendSnapshotChunk(m.From, pr);
        else if (pr.Match < _log.LastIndex || pr.State == ProgressState.Probe) MaybeSendAppend(m.From, pr, sendIfEmpty: true);
        AcknowledgeReadRound(pr, m.Context);
    }

    /// <summary>
    /// Advances the commit index to what a quorum (of both halves, when joint) has durably replicated, but only to an
    /// entry of the current term (Raft 5.4.2: never count replicas of older-term entries).
    /// </summary>
    private bool MaybeCommit()
    {
        var quorumIndex = _tracker.QuorumMatchIndex();
        if (quorumIndex == ulong.MaxValue || quorumIndex <= _log.Committed) return false;
        if (!_log.MatchTerm(quorumIndex, _term)) return false;
        var hadCommitInTerm = CommittedEntryInCurrentTerm();
        _log.CommitTo(quorumIndex);
        var completed = 0;
        while (completed < _pendingProposals.Count && _pendingProposals[completed].Index <= quorumIndex)
        {
            var (index, term) = _pendingProposals[completed];
            Invariant.Check(_log.MatchTerm(index, term), "a leader's own pending entry is still in its log");
            _proposalOutcomes.Add(new ProposalOutcome(index, term, ProposalStatus.Committed));
            completed++;
        }
        _pendingProposals.RemoveRange(0, completed);
        if (!hadCommitInTerm) ReleaseReadsAwaitingCommit();
        return true;
    }

    private bool CommittedEntryInCurrentTerm() =>
        _log.TryGetTerm(_log.Committed, out var term) == StorageStatus.Ok && term == _term;

    private void FailPendingProposals()
    {
        foreach (var (index, term) in _pendingProposals)
        {
            _proposalOutcomes.Add(new ProposalOutcome(index, term, ProposalStatus.LeaderChanged));
        }
        _pendingProposals.Clear();
    }

    // Leadership ended or changed: nothing a client waits for may hang (etcd #8975, #14027).
    private void FailPendingRequests()
    {
        FailPendingProposals();
        FailPendingReads(ReadOutcome.LeaderChanged);
    }
}
