using Keel.Core;

namespace Keel.Leases;

public sealed partial class LeaseTable
{
    /// <summary>
    /// This table became the primary (its node became the Raft leader): from now on it expires leases. No lease's
    /// deadline moves earlier; every deadline becomes at least
    /// <c>nowMs + PromotionExtensionMs + replicated remaining</c>, where the replicated remaining is the remaining TTL of
    /// the lease's last applied grant, keep-alive or checkpoint. The time that passed between that record and the
    /// promotion is deliberately not subtracted, because it was measured on another node's clock.
    /// </summary>
    /// <remarks>
    /// Guarantee (proof in docs/leases.md): a promoted table never expires a lease before its last keep-alive + TTL,
    /// nor before any deadline an earlier primary replicated in a checkpoint. Promoting an already primary table does
    /// nothing. Replicate a <see cref="Checkpoint"/> right after promoting, so that keep-alives applied on every replica
    /// see the extended deadlines too.
    /// </remarks>
    public void Promote(long nowMs)
    {
        ObserveTime(nowMs);
        if (_isPrimary) return;
        _isPrimary = true;
        _lastPrimaryCheckMs = nowMs;
        var fromMs = SaturatingAdd(nowMs, Options.PromotionExtensionMs);
        for (var i = 0; i < _expiry.Count; i++)
        {
            var lease = _expiry[i];
            lease.ExpiresAtMs = Math.Max(lease.ExpiresAtMs, SaturatingAdd(fromMs, lease.RemainingMs));
        }
        _expiry.Heapify();
    }

    /// <summary>
    /// This table is no longer the primary (its node lost leadership, or suspects it did): it stops expiring at once.
    /// A stale leader must not revoke (etcd PR #16822).
    /// </summary>
    public void Demote() => _isPrimary = false;

    /// <summary>
    /// Removes the leases whose deadline is at or before <paramref name="nowMs"/>, at most
    /// <paramref name="maxRevocations"/> of them, in order of deadline then id, and returns each with its keys (the
    /// caller deletes these ephemeral keys) and released resources. Call it every 500 ms with 500 to get etcd's bound of
    /// 1,000 revocations per second. A non-primary returns nothing: only a leader expires.
    /// </summary>
    /// <remarks>
    /// This revokes locally, which suits a single-node host. In a replicated server the leader instead calls
    /// <see cref="PeekExpired"/>, proposes a Revoke for each lease it returns, and every replica applies
    /// <see cref="Revoke"/>, so that all replicas delete the same leases at the same log index.
    /// </remarks>
    public IReadOnlyList<ExpiredLease> ExpireDue(long nowMs, int maxRevocations)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxRevocations);
        ObserveTime(nowMs);
        if (!_isPrimary) return [];
        ForgiveOwnStall(nowMs);
        List<ExpiredLease>? expired = null;
        while ((expired?.Count ?? 0) < maxRevocations && _expiry.Peek() is { } next && next.ExpiresAtMs <= nowMs)
        {
            Invariant.Check(_isPrimary && next.ExpiresAtMs >= next.ReplicatedDeadlineMs,
                "only a primary expires, and never before the replicated deadline");
            var (keys, resources) = RemoveLease(next);
            (expired ??= []).Add(new ExpiredLease
            {
                LeaseId = next.Id, DeadlineMs = next.ExpiresAtMs, Keys = keys, ReleasedResources = resources,
            });
        }
        return expired is null ? [] : expired;
    }

    /// <summary>
    /// The leases <see cref="ExpireDue"/> would remove, without removing them: what a replicated leader proposes to
    /// revoke. Bounded and ordered like <see cref="ExpireDue"/>; a non-primary returns nothing. The same leases are
    /// returned again until their Revoke is applied, so the host remembers what it has already proposed.
    /// </summary>
    public IReadOnlyList<ExpiredLease> PeekExpired(long nowMs, int maxRevocations)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxRevocations);
        ObserveTime(nowMs);
        if (!_isPrimary || maxRevocations == 0) return [];
        ForgiveOwnStall(nowMs);
        List<LeaseEntry>? due = null;
        while ((due?.Count ?? 0) < maxRevocations && _expiry.Peek() is { } next && next.ExpiresAtMs <= nowMs)
        {
            _expiry.Remove(next);
            (due ??= []).Add(next);
        }
        if (due is null) return [];
        var result = new ExpiredLease[due.Count];
        for (var i = 0; i < due.Count; i++)
        {
            var lease = due[i];
            _expiry.Add(lease);
            result[i] = new ExpiredLease
            {
                LeaseId = lease.Id,
                DeadlineMs = lease.ExpiresAtMs,
                Keys = KeysOf(lease),
                ReleasedResources = lease.Resources is { Count: > 0 } held ? [.. held] : [],
            };
        }
        return result;
    }

    /// <summary>
    /// The primary's remaining TTL of every lease at <paramref name="nowMs"/>, in id order, for the host to replicate
    /// (etcd checkpoints every 5 minutes). Replicas apply them with <see cref="ApplyCheckpoint"/>; a later leader then
    /// continues from the checkpointed remaining instead of a full TTL. A non-primary returns nothing.
    /// </summary>
    public LeaseCheckpoint[] Checkpoint(long nowMs)
    {
        ObserveTime(nowMs);
        if (!_isPrimary) return [];
        var ids = Leases();
        var records = new LeaseCheckpoint[ids.Length];
        for (var i = 0; i < ids.Length; i++)
        {
            var lease = _leases[ids[i]];
            records[i] = new LeaseCheckpoint(lease.Id, lease.RenewCount, nowMs, Math.Max(0, lease.ExpiresAtMs - nowMs));
        }
        return records;
    }

    /// <summary>
    /// Applies checkpoint records (on every replica, the primary included, at the time of the log entry that carries
    /// them). A record is ignored when its lease is gone, when a keep-alive was applied after it was measured
    /// (<see cref="LeaseCheckpoint.RenewCount"/> differs), when it is older than the lease's current record, or when it
    /// would bring the replicated deadline forward: a checkpoint records how much of a TTL was used, it never shortens
    /// a promise.
    /// </summary>
    /// <returns>How many records were applied.</returns>
    /// <exception cref="ArgumentException">A record has a negative remaining TTL or was measured after <paramref name="nowMs"/>.</exception>
    public int ApplyCheckpoint(ReadOnlySpan<LeaseCheckpoint> records, long nowMs)
    {
        ObserveTime(nowMs);
        foreach (var record in records)
        {
            if (record.RemainingMs < 0 || record.CheckpointAtMs > nowMs)
                throw new ArgumentException(
                    $"checkpoint of lease {record.LeaseId} is malformed (remaining {record.RemainingMs} ms, measured at {record.CheckpointAtMs} ms, applied at {nowMs} ms)",
                    nameof(records));
        }
        var applied = 0;
        foreach (var record in records)
        {
            if (!_leases.TryGetValue(record.LeaseId, out var lease)) continue;
            if (record.RenewCount != lease.RenewCount || record.CheckpointAtMs < lease.RecordedAtMs) continue;
            if (SaturatingAdd(record.CheckpointAtMs, record.RemainingMs) < lease.ReplicatedDeadlineMs) continue;
            lease.RecordedAtMs = record.CheckpointAtMs;
            lease.RemainingMs = record.RemainingMs;
            SetDeadlineFromRecord(lease);
            applied++;
        }
        return applied;
    }

    /// <summary>
    /// A primary that went longer than <see cref="LeaseTableOptions.LeaderStallThresholdMs"/> without an expiry check
    /// was paused itself (GC, stalled disk, suspended VM): keep-alives could not be processed meanwhile, so expiring
    /// the leases that fell due during the pause would punish their holders for the leader's pause (etcd #12528).
    /// Every deadline moves forward by the gap; the order of the expiry index is unchanged except at saturation.
    /// </summary>
    private void ForgiveOwnStall(long nowMs)
    {
        var gapMs = nowMs - _lastPrimaryCheckMs;
        _lastPrimaryCheckMs = nowMs;
        if (Options.LeaderStallThresholdMs <= 0 || gapMs <= Options.LeaderStallThresholdMs) return;
        StallsDetected++;
        for (var i = 0; i < _expiry.Count; i++)
        {
            var lease = _expiry[i];
            lease.ExpiresAtMs = SaturatingAdd(lease.ExpiresAtMs, gapMs);
        }
        _expiry.Heapify();
    }
}
