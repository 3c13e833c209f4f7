using Keel.Core.Encoding;
using Keel.HybridClock;
using Keel.Mvcc;
using Keel.Raft;

namespace Keel.Node;

// Writes: propose, apply in log order on every replica, answer the client on the proposing node.
public sealed partial class KeelNode
{
    // Index is 0 for a proposal forwarded to the leader (its index is learnt only when it applies).
    private readonly record struct PendingWrite(ulong RequestId, long DeadlineMs, ulong Index);

    private readonly Dictionary<ulong, PendingWrite> _pendingWrites = [];
    private readonly Dictionary<ulong, ulong> _proposalAtIndex = [];
    // Replicated state: every replica skips an entry whose proposal id it already applied (a forwarded proposal the
    // network duplicated is appended twice). Grows without bound until the idempotency window bounds it (not done).
    private readonly HashSet<ulong> _appliedProposals = [];
    private ulong _lastAppliedTimestamp;

    /// <summary>
    /// Submits a write. The answer (the typed response, or a <see cref="KeelError"/>) arrives in the
    /// <see cref="Outbox"/>, now or after later calls, exactly once unless the node crashes first.
    /// </summary>
    /// <param name="requestId">The client's id for the request, echoed in the answer.</param>
    /// <param name="command">The write.</param>
    public void Submit(ulong requestId, KvCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        if (CommandCodec.EncodedSize(command) > CommandCodec.MaxRequestBytes)
        {
            Respond(KvResult.Failed(requestId, KeelError.RequestTooLarge));
            return;
        }
        if (!IsLeader && _raft.Leader == 0)
        {
            Respond(KvResult.Failed(requestId, KeelError.NoLeader));
            return;
        }
        var proposalId = NextProposalId();
        var timestamp = _clock.Now(_wallMs);
        var data = CommandCodec.Encode(new CommandHeader(proposalId, Id, timestamp.Raw), command);
        var result = _raft.Propose(data);
        switch (result.Status)
        {
            case ProposeStatus.Dropped:
                Respond(KvResult.Failed(requestId, result.DropReason is ProposalDropReason.Overloaded or ProposalDropReason.QuorumLagging
                    ? KeelError.TooManyRequests
                    : KeelError.NoLeader));
                return;
            case ProposeStatus.Appended:
                _pendingWrites.Add(proposalId, new PendingWrite(requestId, Deadline(), result.Index));
                _proposalAtIndex[result.Index] = proposalId;
                break;
            case ProposeStatus.Forwarded:
                _pendingWrites.Add(proposalId, new PendingWrite(requestId, Deadline(), 0));
                break;
        }
        HandleReady();
    }

    private long Deadline() => (_nowMs == long.MinValue ? 0 : _nowMs) + _options.RequestTimeoutMs;

    private ulong NextProposalId()
    {
        while (true)
        {
            var id = _random.NextUInt64();
            if (id != 0 && !_pendingWrites.ContainsKey(id) && !_appliedProposals.Contains(id)) return id;
        }
    }

    private void Apply(Entry entry)
    {
        if (entry.Index <= AppliedIndex) return;
        AppliedIndex = entry.Index;
        if (entry.Type != EntryType.Normal || entry.Data.IsEmpty)
        {
            // A new leader's empty entry, or a configuration change: a write waiting at this index was displaced.
            FailDisplacedWrite(entry.Index, 0);
            return;
        }
        var (header, command) = CommandCodec.Decode(entry.Data.Span);
        // Revision timestamps must not go backwards even if a new leader's clock is behind the old one's: the clamp is
        // a function of the log alone, so every replica stamps every revision identically.
        var timestamp = Math.Max(header.HybridTimestamp, _lastAppliedTimestamp);
        _lastAppliedTimestamp = timestamp;
        // Keeps this node's clock ahead of every applied write (a later proposal of ours is stamped after it); a
        // timestamp too far ahead of our wall clock is refused by the clock and simply not adopted.
        _clock.TryUpdate(HybridTimestamp.FromRaw(timestamp), _wallMs, out _);
        FailDisplacedWrite(entry.Index, header.ProposalId);
        if (!_appliedProposals.Add(header.ProposalId)) return;
        var result = Execute(command, (long)timestamp);
        if (_pendingWrites.Remove(header.ProposalId, out var waiting))
            Respond(result with { RequestId = waiting.RequestId });
    }

    private KvResult Execute(KvCommand command, long timestamp)
    {
        try
        {
            return command.Kind switch
            {
                KvCommandKind.Put => new KvResult { RequestId = 0, Put = _store.Put(command.Put!, timestamp) },
                KvCommandKind.DeleteRange => new KvResult { RequestId = 0, DeleteRange = _store.DeleteRange(command.DeleteRange!, timestamp) },
                KvCommandKind.Txn => new KvResult { RequestId = 0, Txn = _store.Txn(command.Txn!, timestamp) },
                KvCommandKind.Compact => Compact(command.CompactRevision),
                _ => throw new InvalidCommandException($"unknown command kind {command.Kind}"),
            };
        }
        catch (MvccException refused)
        {
            // Deterministic: every replica refuses the same command against the same state, and none changes.
            return KvResult.Failed(0, KeelError.FromMvcc(refused));
        }
    }

    private KvResult Compact(long revision)
    {
        _store.Compact(revision);
        return new KvResult { RequestId = 0, Compact = new CompactResponse(_store.CurrentRevision) };
    }

    private void FailDisplacedWrite(ulong index, ulong appliedProposalId)
    {
        if (!_proposalAtIndex.Remove(index, out var expected) || expected == appliedProposalId) return;
        if (_pendingWrites.Remove(expected, out var waiting)) Respond(KvResult.Failed(waiting.RequestId, KeelError.LeaderChanged));
    }

    private void OnProposalOutcome(ProposalOutcome outcome)
    {
        // Committed proposals are answered when they apply; a lost leadership leaves the outcome unknown.
        if (outcome.Status != ProposalStatus.LeaderChanged) return;
        if (_proposalAtIndex.Remove(outcome.Index, out var proposalId) && _pendingWrites.Remove(proposalId, out var waiting))
            Respond(KvResult.Failed(waiting.RequestId, KeelError.LeaderChanged));
    }

    private void OnSoftState(SoftState soft)
    {
        if (soft.Leader == _knownLeader) return;
        _knownLeader = soft.Leader;
        // A proposal forwarded to the old leader may be lost with it: tell the client now rather than at the timeout.
        List<ulong>? lost = null;
        foreach (var (proposalId, waiting) in _pendingWrites)
            if (waiting.Index == 0) (lost ??= []).Add(proposalId);
        if (lost is null) return;
        lost.Sort();
        foreach (var proposalId in lost)
        {
            _pendingWrites.Remove(proposalId, out var waiting);
            Respond(KvResult.Failed(waiting.RequestId, KeelError.LeaderChanged));
        }
    }

    private void ExpireRequests()
    {
        List<(ulong RequestId, ulong ProposalId, ulong Index)>? expired = null;
        foreach (var (proposalId, waiting) in _pendingWrites)
            if (waiting.DeadlineMs <= _nowMs) (expired ??= []).Add((waiting.RequestId, proposalId, waiting.Index));
        if (expired is not null)
        {
            expired.Sort();
            foreach (var (requestId, proposalId, index) in expired)
            {
                _pendingWrites.Remove(proposalId);
                if (index != 0 && _proposalAtIndex.TryGetValue(index, out var atIndex) && atIndex == proposalId) _proposalAtIndex.Remove(index);
                Respond(KvResult.Failed(requestId, KeelError.RequestTimedOut));
            }
        }
        ExpireReads();
    }
}
