using Keel.Core;
using Keel.Core.Encoding;
using Keel.HybridClock;
using Keel.Idempotency;
using Keel.Mvcc;
using Keel.Raft;

namespace Keel.Node;

// Writes: propose, apply in log order on every replica, answer the client on the proposing node.
public sealed partial class KeelNode
{
    // Index is 0 for a proposal forwarded to the leader (its index is learnt only when it applies).
    private readonly record struct PendingWrite(ulong RequestId, long DeadlineMs, ulong Index, string? IdempotencyKey);

    private readonly Dictionary<ulong, PendingWrite> _pendingWrites = [];
    private readonly Dictionary<ulong, ulong> _proposalAtIndex = [];
    // Replicated state: every replica skips an entry whose proposal id it already applied (a forwarded proposal the
    // network duplicated is appended twice). Bounded: an id is remembered for AppliedProposalWindowEntries applied
    // entries (a duplicate append lands within a few entries of the original; the window is a function of the log
    // alone, so every replica forgets the same ids at the same index).
    private readonly HashSet<ulong> _appliedProposals = [];
    private readonly Queue<(ulong Index, ulong ProposalId)> _appliedProposalOrder = new();
    // Local: idempotency keys of this node's writes still waiting for their answer (a retry meanwhile is ABORTED).
    private readonly Dictionary<string, (ulong ProposalId, RequestFingerprint Fingerprint)> _keysInFlight = new(StringComparer.Ordinal);
    private IdempotencyTable _idempotency = null!;
    private ulong _lastAppliedTimestamp;

    /// <summary>The replicated idempotency table (read-only use: tests compare replicas).</summary>
    public IdempotencyTable Idempotency => _idempotency;

    /// <summary>Proposal ids remembered to skip duplicate appends (bounded by <see cref="KeelNodeOptions.AppliedProposalWindowEntries"/>).</summary>
    public int RememberedProposalCount => _appliedProposals.Count;

    /// <summary>
    /// Submits a write. The answer (the typed response, or a <see cref="KeelError"/>) arrives in the
    /// <see cref="Outbox"/>, now or after later calls, exactly once unless the node crashes first.
    /// </summary>
    /// <param name="requestId">The client's id for the request, echoed in the answer.</param>
    /// <param name="command">The write.</param>
    public void Submit(ulong requestId, KvCommand command) => Submit(requestId, command, null);

    /// <summary>
    /// Submits a write with an optional idempotency key (Put, DeleteRange, Txn and LeaseGrant; Keel's extension). The
    /// key and a fingerprint of the command travel in the log entry; every replica records the first answer in its
    /// replicated idempotency table at the entry's committed time, so a retry with the same key and the same command,
    /// on any node, within <see cref="IdempotencyOptions.CompletedWindowMs"/> of committed time, is answered with the
    /// first answer (<see cref="KvResult.IsIdempotentReplay"/>) and changes nothing. The same key with a different
    /// command fails with FailedPrecondition; while the first is still waiting on this node, with Aborted.
    /// </summary>
    /// <param name="requestId">The client's id for the request, echoed in the answer.</param>
    /// <param name="command">The write.</param>
    /// <param name="idempotencyKey">1 to 255 printable ASCII characters chosen by the client, or null.</param>
    public void Submit(ulong requestId, KvCommand command, string? idempotencyKey) => Submit(requestId, command, idempotencyKey, NoCallerDeadline);

    /// <summary>
    /// Submits a write as <see cref="Submit(ulong, KvCommand, string?)"/>; if no leader is known it waits for one until
    /// <paramref name="leaderWaitUntilMs"/> (monotonic ms, the caller's deadline) or <see cref="KeelNodeOptions.LeaderWaitMs"/>,
    /// whichever comes first, and then fails with "etcdserver: no leader" (nothing proposed).
    /// </summary>
    /// <param name="requestId">The client's id for the request, echoed in the answer.</param>
    /// <param name="command">The write.</param>
    /// <param name="idempotencyKey">1 to 255 printable ASCII characters chosen by the client, or null.</param>
    /// <param name="leaderWaitUntilMs">The caller's bound on waiting for a leader, or <see cref="NoCallerDeadline"/>.</param>
    public void Submit(ulong requestId, KvCommand command, string? idempotencyKey, long leaderWaitUntilMs)
    {
        ArgumentNullException.ThrowIfNull(command);
        RequestFingerprint fingerprint = default;
        if (idempotencyKey is not null)
        {
            if (IdempotencyKey.DescribeProblem(idempotencyKey) is { } problem)
            {
                Respond(KvResult.Failed(requestId, KeelError.InvalidIdempotencyKey(problem)));
                return;
            }
            if (command.Kind is not (KvCommandKind.Put or KvCommandKind.DeleteRange or KvCommandKind.Txn or KvCommandKind.LeaseGrant))
            {
                Respond(KvResult.Failed(requestId, KeelError.InvalidIdempotencyKey($"not accepted on {command.Kind}; only Put, DeleteRange, Txn and LeaseGrant")));
                return;
            }
        }
        // Everything that can be judged from the request alone is judged here, before it is proposed: nothing invalid
        // ever reaches the log (apply refuses it again, deterministically, should a peer propose it anyway).
        if (ValidateCommand(command) is { } invalid)
        {
            Respond(KvResult.Failed(requestId, invalid));
            return;
        }
        if (CommandCodec.EncodedSize(command, idempotencyKey) > CommandCodec.MaxRequestBytes)
        {
            Respond(KvResult.Failed(requestId, KeelError.RequestTooLarge));
            return;
        }
        // etcd's maxGapBetweenApplyAndCommitIndex: the apply loop is far behind, taking more would only queue more.
        if (_raft.Log.Committed > AppliedIndex + _options.MaxCommittedAheadOfAppliedEntries || PendingCount >= _options.MaxPendingRequests)
        {
            Respond(KvResult.Failed(requestId, KeelError.TooManyRequests));
            return;
        }
        if (IsDiskFull)
        {
            // This member cannot write its log: even a delete would wait here until the disk has room again.
            Respond(KvResult.Failed(requestId, KeelError.NoSpace));
            return;
        }
        if (RefusedByQuota(requestId, command)) return;
        if (idempotencyKey is not null)
        {
            fingerprint = CommandCodec.Fingerprint(command);
            if (_keysInFlight.TryGetValue(idempotencyKey, out var inFlight))
            {
                Respond(KvResult.Failed(requestId, inFlight.Fingerprint == fingerprint ? KeelError.IdempotencyKeyInFlight : KeelError.IdempotencyKeyMismatch));
                return;
            }
        }
        if (!HasKnownLeader)
        {
            // Judged valid above and checked again when it goes on: waiting claims nothing (no proposal, no key).
            AwaitLeaderOrRefuse(new AwaitingLeader(requestId, LeaderWaitUntil(leaderWaitUntilMs), command, idempotencyKey, null));
            return;
        }
        var proposalId = NextProposalId();
        var timestamp = _clock.Now(_wallMs);
        var header = new CommandHeader(proposalId, Id, timestamp.Raw) { IdempotencyKey = idempotencyKey, Fingerprint = fingerprint };
        var data = CommandCodec.Encode(header, command);
        var result = _raft.Propose(data);
        switch (result.Status)
        {
            case ProposeStatus.Dropped when result.DropReason is ProposalDropReason.NoLeader or ProposalDropReason.LeadershipTransferInProgress:
                AwaitLeaderOrRefuse(new AwaitingLeader(requestId, LeaderWaitUntil(leaderWaitUntilMs), command, idempotencyKey, null));
                return;
            case ProposeStatus.Dropped:
                Respond(KvResult.Failed(requestId, result.DropReason is ProposalDropReason.Overloaded or ProposalDropReason.QuorumLagging
                    ? KeelError.TooManyRequests
                    : KeelError.NoLeader));
                return;
            case ProposeStatus.Appended:
                _pendingWrites.Add(proposalId, new PendingWrite(requestId, Deadline(), result.Index, idempotencyKey));
                _proposalAtIndex[result.Index] = proposalId;
                break;
            case ProposeStatus.Forwarded:
                _pendingWrites.Add(proposalId, new PendingWrite(requestId, Deadline(), 0, idempotencyKey));
                break;
        }
        if (idempotencyKey is not null && result.Status != ProposeStatus.Dropped) _keysInFlight.Add(idempotencyKey, (proposalId, fingerprint));
        HandleReady();
    }

    /// <summary>Writes and linearizable reads waiting for their answer (bounded by <see cref="KeelNodeOptions.MaxPendingRequests"/>).</summary>
    public int PendingCount => _pendingWrites.Count + _readsAwaitingIndex.Count + _readsAwaitingApply.Count;

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
            if (entry.Type == EntryType.ConfChange && !entry.Data.IsEmpty) ApplyConfChangeEntry(entry);
            return;
        }
        CommandHeader header;
        KvCommand command;
        try
        {
            (header, command) = CommandCodec.Decode(entry.Data.Span);
            // The store keeps hybrid times as signed 64-bit numbers: a header beyond that was not written by a node.
            if (header.HybridTimestamp > long.MaxValue) throw new InvalidCommandException($"hybrid timestamp {header.HybridTimestamp} out of range");
        }
        catch (FormatException invalid)
        {
            // A committed entry that is not a command (a buggy or hostile peer proposed it): every replica decodes the
            // same bytes the same way, so every replica skips it and changes nothing; a write of ours waiting at this
            // index learns that it was displaced.
            InvalidEntriesSkipped++;
            FailDisplacedWrite(entry.Index, 0);
            LastInvalidEntry = $"entry {entry.Index} (term {entry.Term}, {entry.Data.Length} bytes): {invalid.Message}";
            return;
        }
        // Revision timestamps must not go backwards even if a new leader's clock is behind the old one's: the clamp is
        // a function of the log alone, so every replica stamps every revision identically.
        var timestamp = Math.Max(header.HybridTimestamp, _lastAppliedTimestamp);
        _lastAppliedTimestamp = timestamp;
        // Keeps this node's clock ahead of every applied write (a later proposal of ours is stamped after it); a
        // timestamp too far ahead of our wall clock is refused by the clock and simply not adopted.
        _clock.TryUpdate(HybridTimestamp.FromRaw(timestamp), _wallMs, out _);
        FailDisplacedWrite(entry.Index, header.ProposalId);
        ObserveCommittedTimeForLeases(timestamp);
        if (!RememberProposal(entry.Index, header.ProposalId)) return;
        var result = header.IdempotencyKey is null ? Execute(command, timestamp) : ExecuteIdempotent(header, command, timestamp);
        if (!TakePendingWrite(header.ProposalId, out var waiting)) return;
        // An Add whose peer URLs are now recorded continues with its configuration change, proposed after this Ready.
        if (command.Kind == KvCommandKind.MemberChange && command.MemberChange!.Kind == MemberChangeKind.Add && !result.IsError)
            _deferredConfChanges.Add((waiting.RequestId, command.MemberChange));
        else
            Respond(result with { RequestId = waiting.RequestId });
    }

    private bool RememberProposal(ulong index, ulong proposalId)
    {
        if (!_appliedProposals.Add(proposalId)) return false;
        _appliedProposalOrder.Enqueue((index, proposalId));
        while (_appliedProposalOrder.Count > 0 && _appliedProposalOrder.Peek().Index + (ulong)_options.AppliedProposalWindowEntries <= index)
            _appliedProposals.Remove(_appliedProposalOrder.Dequeue().ProposalId);
        return true;
    }

    private bool TakePendingWrite(ulong proposalId, out PendingWrite waiting)
    {
        if (!_pendingWrites.Remove(proposalId, out waiting)) return false;
        if (waiting.IdempotencyKey is { } key && _keysInFlight.TryGetValue(key, out var inFlight) && inFlight.ProposalId == proposalId)
            _keysInFlight.Remove(key);
        return true;
    }

    /// <summary>
    /// Claims the key in the replicated table at the entry's committed time: a new key executes and stores the encoded
    /// answer (errors too), a completed key replays the stored answer without executing, another request's key fails.
    /// Claim and completion happen in the same apply, so no replica ever holds the claim in flight across entries.
    /// </summary>
    private KvResult ExecuteIdempotent(CommandHeader header, KvCommand command, ulong timestamp)
    {
        var key = header.IdempotencyKey!;
        var nowMs = Math.Max(HybridTimestamp.FromRaw(timestamp).PhysicalMs, _idempotency.LastNowMs);
        var claim = _idempotency.Claim(key, header.Fingerprint, nowMs);
        switch (claim.Outcome)
        {
            case ClaimOutcome.Completed:
                return ResponseCodec.Decode(claim.Response.Body.Span, 0) with { IsIdempotentReplay = true };
            case ClaimOutcome.Mismatch:
                return KvResult.Failed(0, KeelError.IdempotencyKeyMismatch);
            case ClaimOutcome.TableFull:
                return KvResult.Failed(0, KeelError.IdempotencyTableFull);
            case ClaimOutcome.InFlight:
                Invariant.Check(false, "claims are completed in the apply that makes them");
                return KvResult.Failed(0, KeelError.IdempotencyKeyInFlight);
        }
        var result = Execute(command, timestamp);
        var encoded = ResponseCodec.Encode(result);
        var completed = _idempotency.Complete(key, header.Fingerprint, result.Error is null ? 0 : 1, encoded, nowMs);
        // A response larger than the per-entry bound is not remembered: the key is released so a retry executes again
        // rather than being refused forever (configure MaxResponseBytesPerEntry above the largest answer).
        if (completed.Outcome == CompleteOutcome.ResponseTooLarge) _idempotency.Release(key, header.Fingerprint, nowMs);
        return result;
    }

    private KvResult Execute(KvCommand command, ulong timestamp)
    {
        var storeTimestamp = (long)timestamp;
        try
        {
            if (ValidateCommand(command) is { } invalid) return KvResult.Failed(0, invalid);
            // While NOSPACE is active every replica refuses the same writes (etcd's capped applier).
            if (NoSpaceAlarmActive && GrowsStore(command)) return KvResult.Failed(0, KeelError.NoSpace);
            if (CheckLeasesExist(command) is { } refused) return refused;
            var before = _store.CurrentRevision;
            KvResult result = command.Kind switch
            {
                KvCommandKind.Put => new KvResult { RequestId = 0, Put = _store.Put(command.Put!, storeTimestamp) },
                KvCommandKind.DeleteRange => new KvResult { RequestId = 0, DeleteRange = _store.DeleteRange(command.DeleteRange!, storeTimestamp) },
                KvCommandKind.Txn => new KvResult { RequestId = 0, Txn = _store.Txn(command.Txn!, storeTimestamp) },
                KvCommandKind.Compact => Compact(command.CompactRevision),
                KvCommandKind.LeaseGrant => ApplyLeaseGrant(command, timestamp),
                KvCommandKind.LeaseRevoke => ApplyLeaseRevoke(command, storeTimestamp),
                KvCommandKind.LeaseKeepAlive => ApplyLeaseKeepAlive(command, timestamp),
                KvCommandKind.PublishMember => ApplyPublishMember(command.Member!),
                KvCommandKind.MemberChange => ApplyMemberChange(command.MemberChange!),
                KvCommandKind.LeaseCheckpoint => ApplyLeaseCheckpoint(command, timestamp),
                KvCommandKind.Alarm => ApplyAlarm(command.Alarm!),
                KvCommandKind.Auth => ApplyAuth(command.Auth!),
                KvCommandKind.GossipKeyring => ApplyKeyring(command.Keyring!),
                _ => KvResult.Failed(0, KeelError.InvalidCommand($"unknown command kind {command.Kind}")),
            };
            if (command.Kind is KvCommandKind.Put or KvCommandKind.DeleteRange or KvCommandKind.Txn) SyncLeaseAttachments(before);
            return result;
        }
        catch (MvccException refused)
        {
            // Deterministic: every replica refuses the same command against the same state, and none changes.
            return KvResult.Failed(0, KeelError.FromMvcc(refused));
        }
    }

    /// <summary>Committed entries skipped because they were not valid commands (a buggy or hostile proposer).</summary>
    public long InvalidEntriesSkipped { get; private set; }

    /// <summary>What the last skipped entry was, for the log line that reports it.</summary>
    public string? LastInvalidEntry { get; private set; }

    /// <summary>
    /// The checks a command must pass before it is proposed and again before it is applied, judged from the command
    /// alone: known enums, keys given, transaction limits across every nesting level.
    /// </summary>
    private static KeelError? ValidateCommand(KvCommand command)
    {
        try
        {
            switch (command.Kind)
            {
                case KvCommandKind.Put: MvccStore.Validate(command.Put!); break;
                case KvCommandKind.DeleteRange: MvccStore.Validate(command.DeleteRange!); break;
                case KvCommandKind.Txn: MvccStore.Validate(command.Txn!); break;
            }
            return null;
        }
        catch (MvccException refused)
        {
            return KeelError.FromMvcc(refused);
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
        if (TakePendingWrite(expected, out var waiting)) Respond(KvResult.Failed(waiting.RequestId, KeelError.LeaderChanged));
    }

    private void OnProposalOutcome(ProposalOutcome outcome)
    {
        // Committed proposals are answered when they apply; a lost leadership leaves the outcome unknown.
        if (outcome.Status != ProposalStatus.LeaderChanged) return;
        if (_proposalAtIndex.Remove(outcome.Index, out var proposalId) && TakePendingWrite(proposalId, out var waiting))
            Respond(KvResult.Failed(waiting.RequestId, KeelError.LeaderChanged));
    }

    private void OnSoftState(SoftState soft)
    {
        // Any change, losing sight of the leader included, fails the forwarded writes at once (outcome unknown). Letting
        // them wait through a pre-vote round that ends with the same leader looked harmless, but the chaos pass then
        // saw a lease granted through a follower expire up to 150 ms before its TTL under a leader clock jump
        // (clock-jump-leader, 3 runs out of 3); until that is understood, the client is told "leader changed".
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
            TakePendingWrite(proposalId, out var waiting);
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
                TakePendingWrite(proposalId, out _);
                if (index != 0 && _proposalAtIndex.TryGetValue(index, out var atIndex) && atIndex == proposalId) _proposalAtIndex.Remove(index);
                Respond(KvResult.Failed(requestId, KeelError.RequestTimedOut));
            }
        }
        ExpireReads();
        ExpireAwaitingLeader();
        ExpireMemberChanges();
    }
}
