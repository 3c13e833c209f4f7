using Keel.Core;
using Keel.HybridClock;
using Keel.Leases;
using Keel.Mvcc;
using Keel.Raft;

namespace Keel.Node;

// Leases (etcd lease/lessor.go semantics on Keel.Leases.LeaseTable): grants, revocations and keep-alives are log
// entries applied by every replica at the entry's committed hybrid time; only the leader expires, by proposing a
// LeaseRevoke for each due lease, rate limited as etcd (500 every 500 ms).
public sealed partial class KeelNode
{
    private LeaseTable _leases = null!;
    private readonly Dictionary<long, long> _revokeProposedAtMs = [];
    // The lease time line: the committed time of the newest applied entry, extrapolated with this node's monotonic clock
    // since it was applied (so the leader's expiry does not depend on its own wall clock, which the simulator steps).
    private long _leaseBaseMs;
    private long _leaseBaseMonotonicMs;
    private long _lastExpiryCheckMs = long.MinValue;
    private long _lastCheckpointMs = long.MinValue;

    /// <summary>The replicated lease table (read-only use: tests compare replicas).</summary>
    public LeaseTable LeaseTable => _leases;

    /// <summary>
    /// A lease's remaining time as this replica's applied table knows it (etcd LeaseTimeToLive, served locally as
    /// etcd's leader does): TTL -1 and granted TTL 0 for an unknown lease.
    /// </summary>
    public LeaseTimeToLiveResult LeaseTimeToLive(long leaseId, bool includeKeys)
    {
        // Asked at the table's own time so that a query never moves the replicated time line; the time since is
        // subtracted here.
        var tableNowMs = Math.Max(0, _leases.LastNowMs);
        var answer = _leases.TimeToLive(leaseId, tableNowMs, includeKeys);
        if (!answer.IsSuccess) return new LeaseTimeToLiveResult(leaseId, -1, 0, [], 0);
        var elapsedMs = Math.Max(0, LeaseNowMs() - tableNowMs);
        var remainingMs = Math.Max(0, answer.RemainingMs - elapsedMs);
        var keys = new byte[answer.Keys.Count][];
        for (var i = 0; i < keys.Length; i++) keys[i] = answer.Keys[i].ToArray();
        return new LeaseTimeToLiveResult(leaseId, remainingMs / 1000, answer.GrantedTtlSeconds, keys, answer.FencingToken);
    }

    /// <summary>Revocations this node proposed as leader because a lease expired (a retry of one counts again).</summary>
    public long LeaseExpiriesProposed { get; private set; }

    /// <summary>The ids of every live lease in ascending order (etcd LeaseLeases), from the applied table.</summary>
    public long[] Leases() => _leases.Leases();

    private LeaseTable NewLeaseTable() => new(LeaseOptionsFor(_options));

    private static LeaseTableOptions LeaseOptionsFor(KeelNodeOptions options) =>
        LeaseTableOptions.FromElectionTimeout(options.ElectionTimeoutTicks * options.TickMs) with
        {
            LeaderStallThresholdMs = options.LeaseStallThresholdMs,
        };

    private long LeaseNowMs()
    {
        var elapsedMs = _nowMs == long.MinValue ? 0 : Math.Max(0, _nowMs - _leaseBaseMonotonicMs);
        return Math.Max(Math.Max(0, _leases.LastNowMs), (_leaseBaseMs > long.MaxValue - elapsedMs ? long.MaxValue : _leaseBaseMs + elapsedMs));
    }

    private void ObserveCommittedTimeForLeases(ulong timestamp)
    {
        var committedMs = HybridTimestamp.FromRaw(timestamp).PhysicalMs;
        if (committedMs <= _leaseBaseMs) return;
        _leaseBaseMs = committedMs;
        _leaseBaseMonotonicMs = _nowMs == long.MinValue ? 0 : _nowMs;
    }

    /// <summary>The time an applied lease command runs at: its committed time, never before what the table has seen.</summary>
    private long LeaseApplyMs(ulong timestamp) => Math.Max(HybridTimestamp.FromRaw(timestamp).PhysicalMs, Math.Max(0, _leases.LastNowMs));

    private void UpdateLeaseRole()
    {
        if (IsLeader && !_leases.IsPrimary)
        {
            _leases.Promote(LeaseNowMs());
            _lastExpiryCheckMs = _nowMs;
            _lastCheckpointMs = _nowMs;
        }
        else if (!IsLeader && _leases.IsPrimary)
        {
            // A deposed leader stops expiring at once (etcd PR #16822): its revocations could only race its successor's.
            _leases.Demote();
            _revokeProposedAtMs.Clear();
        }
    }

    private void ExpireLeases()
    {
        if (!IsLeader || !_leases.IsPrimary || _nowMs == long.MinValue) return;
        if (_lastExpiryCheckMs != long.MinValue && _nowMs - _lastExpiryCheckMs < LeaseTableOptions.EtcdExpiryCheckIntervalMs) return;
        _lastExpiryCheckMs = _nowMs;
        var perCheck = (int)(LeaseTableOptions.EtcdMaxRevocationsPerSecond * LeaseTableOptions.EtcdExpiryCheckIntervalMs / 1000);
        foreach (var due in _leases.PeekExpired(LeaseNowMs(), perCheck))
        {
            // PeekExpired returns a lease until its revocation applies: propose each once per request timeout.
            if (_revokeProposedAtMs.TryGetValue(due.LeaseId, out var proposedAtMs) && _nowMs - proposedAtMs < _options.RequestTimeoutMs) continue;
            var data = CommandCodec.Encode(new CommandHeader(NextProposalId(), Id, _clock.Now(_wallMs).Raw), KvCommand.LeaseRevoke(due.LeaseId));
            if (_raft.Propose(data).Status == ProposeStatus.Appended)
            {
                _revokeProposedAtMs[due.LeaseId] = _nowMs;
                LeaseExpiriesProposed++;
            }
        }
    }

    private void CheckpointLeases()
    {
        if (!IsLeader || !_leases.IsPrimary || _options.LeaseCheckpointIntervalMs <= 0 || _nowMs == long.MinValue) return;
        if (_nowMs - _lastCheckpointMs < _options.LeaseCheckpointIntervalMs) return;
        _lastCheckpointMs = _nowMs;
        var records = _leases.Checkpoint(LeaseNowMs());
        // etcd batches 1,000 records per entry (lessor.go maxLeaseCheckpointBatchSize).
        for (var i = 0; i < records.Length; i += 1_000)
        {
            var batch = records.AsSpan(i, Math.Min(1_000, records.Length - i)).ToArray();
            _raft.Propose(CommandCodec.Encode(new CommandHeader(NextProposalId(), Id, _clock.Now(_wallMs).Raw), KvCommand.LeaseCheckpoint(batch)));
        }
    }

    private KvResult ApplyLeaseCheckpoint(KvCommand command, ulong timestamp)
    {
        // The leader measured on its extrapolated time line, which may run slightly ahead of the entry's stamp.
        var nowMs = LeaseApplyMs(timestamp);
        // Malformed records (only a client could send them) are skipped, the same way on every replica, rather than
        // throwing inside the apply loop.
        var records = command.Checkpoints.Where(r => r.RemainingMs >= 0 && r.CheckpointAtMs >= 0).ToArray();
        foreach (var record in records) nowMs = Math.Max(nowMs, record.CheckpointAtMs);
        _leases.ApplyCheckpoint(records, nowMs);
        return new KvResult { RequestId = 0 };
    }

    private KvResult? CheckLeasesExist(KvCommand command)
    {
        var missing = command.Kind switch
        {
            KvCommandKind.Put => MissingLease(command.Put!),
            KvCommandKind.Txn => MissingLease(command.Txn!),
            _ => false,
        };
        return missing ? KvResult.Failed(0, KeelError.FromLease(LeaseStatus.NotFound)) : null;
    }

    private bool MissingLease(PutRequest put) => put.Lease != 0 && !put.IgnoreLease && !_leases.Contains(put.Lease);

    // Both branches are checked, not only the one taken (etcd checks the taken path): a Txn naming a lease that does
    // not exist is refused whichever way its compares go. Stricter, never weaker.
    private bool MissingLease(TxnRequest txn)
    {
        foreach (var op in txn.Success.Concat(txn.Failure))
        {
            if (op.Put is { } put && MissingLease(put)) return true;
            if (op.Txn is { } nested && MissingLease(nested)) return true;
        }
        return false;
    }

    /// <summary>Moves lease attachments to match what the newest revision (if it is after <paramref name="revisionBefore"/>) wrote (puts attach, deletes detach).</summary>
    private void SyncLeaseAttachments(long revisionBefore)
    {
        var revision = _store.CurrentRevision;
        if (revision == revisionBefore) return;
        foreach (var change in _store.Events(revision, AllKeys, AllKeys, revision))
        {
            var key = change.Kv.Key;
            var owner = _leases.LeaseOfKey(key);
            var lease = change.Type == EventType.Put ? change.Kv.Lease : 0;
            if (owner == lease) continue;
            if (owner != 0) _leases.Detach(owner, key);
            if (lease != 0) Invariant.Check(_leases.Attach(lease, key) == LeaseStatus.Ok, "a put's lease exists (checked before the write)");
        }
    }

    private static readonly byte[] AllKeys = [0];

    private KvResult ApplyLeaseGrant(KvCommand command, ulong timestamp)
    {
        var granted = _leases.Grant(command.LeaseId, command.TtlSeconds, LeaseApplyMs(timestamp));
        if (!granted.IsSuccess) return KvResult.Failed(0, KeelError.FromLease(granted.Status));
        // The entry's committed time can lag the moment it applies (a proposer whose clock is behind the time line, e.g.
        // after the leader's clock jumped: chaos clock-jump-leader); the leader counts the TTL from its own time now.
        _leases.HoldFromPrimaryTime(granted.LeaseId, LeaseNowMs());
        return new KvResult
        {
            RequestId = 0,
            LeaseGrant = new LeaseGrantResponse(granted.LeaseId, granted.TtlSeconds, granted.FencingToken, _store.CurrentRevision),
        };
    }

    private KvResult ApplyLeaseKeepAlive(KvCommand command, ulong timestamp)
    {
        var renewed = _leases.KeepAlive(command.LeaseId, LeaseApplyMs(timestamp));
        if (renewed.IsSuccess) _leases.HoldFromPrimaryTime(command.LeaseId, LeaseNowMs());
        return new KvResult { RequestId = 0, LeaseKeepAlive = new LeaseKeepAliveResponse(command.LeaseId, renewed.IsSuccess ? renewed.TtlSeconds : 0) };
    }

    private KvResult ApplyLeaseRevoke(KvCommand command, long storeTimestamp)
    {
        _revokeProposedAtMs.Remove(command.LeaseId);
        var revoked = _leases.Revoke(command.LeaseId);
        if (!revoked.IsSuccess) return KvResult.Failed(0, KeelError.FromLease(revoked.Status));
        if (revoked.Keys.Count == 0) return new KvResult { RequestId = 0, LeaseRevoke = new LeaseRevokeResponse(_store.CurrentRevision, 0) };
        // All attached keys go in one revision (one MVCC write, as etcd's lessor deletes them in one txn). A Txn holds at
        // most 128 operations per level, so the deletes nest 128 to a level: any number of keys fits one transaction.
        var ops = new List<RequestOp>(revoked.Keys.Count);
        foreach (var key in revoked.Keys) ops.Add(RequestOp.Of(new DeleteRangeRequest { Key = key.ToArray() }));
        while (ops.Count > MvccStore.MaxTxnOperations)
        {
            var nested = new List<RequestOp>((ops.Count + MvccStore.MaxTxnOperations - 1) / MvccStore.MaxTxnOperations);
            for (var i = 0; i < ops.Count; i += MvccStore.MaxTxnOperations)
                nested.Add(RequestOp.Of(new TxnRequest { Success = ops.GetRange(i, Math.Min(MvccStore.MaxTxnOperations, ops.Count - i)) }));
            ops = nested;
        }
        var before = _store.CurrentRevision;
        _store.Txn(new TxnRequest { Success = ops }, storeTimestamp);
        Invariant.Check(_store.CurrentRevision <= before + 1, "a revocation deletes its keys in one revision");
        SyncLeaseAttachments(before);
        return new KvResult { RequestId = 0, LeaseRevoke = new LeaseRevokeResponse(_store.CurrentRevision, revoked.Keys.Count) };
    }
}
