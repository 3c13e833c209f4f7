using Keel.Core;

namespace Keel.Leases;

/// <summary>
/// A table of time-bounded leases (etcd's lessor, ZooKeeper's sessions) written as a deterministic state machine, so
/// that it can live inside a replicated state machine: every operation takes the time as a parameter and the table
/// never reads a clock, allocates ids from a counter, and orders everything it returns.
/// </summary>
/// <remarks>
/// <para>What it does: grants leases with a TTL (etcd semantics: clamped up to the minimum, "etcdserver: too large lease
/// TTL" above the maximum), keeps them alive, revokes them, attaches keys (ephemeral keys the caller deletes when the
/// lease goes), expires them in deadline order with a bounded number of revocations per call, and issues a 64-bit
/// fencing token with every grant (Kleppmann, "How to do distributed locking", 2016). <see cref="Locks"/> builds
/// single-holder named resources on top.</para>
/// <para>Only a primary (the Raft leader's table) expires: see <see cref="Promote"/>, <see cref="Demote"/>,
/// <see cref="Checkpoint"/> and <see cref="ApplyCheckpoint"/>, and docs/leases.md for the promotion rule and its proof.
/// etcd needed lease checkpoints because TTLs were reset on every leader change (etcd #9395, #13294) and a stuck leader
/// revoked every lease (#12528, #15247).</para>
/// <para>Time: all calls on one table share one monotonic time line in milliseconds (the host's monotonic clock, or in
/// a replicated server the hybrid-clock time carried in log entries). A <c>nowMs</c> smaller than one seen before is a
/// host bug (an NTP step on a wall clock) and fails an <see cref="Invariant"/>; it is never silently absorbed.</para>
/// <para>Not thread-safe: the host serialises calls, as a state machine's apply loop does.</para>
/// </remarks>
public sealed partial class LeaseTable
{
    private readonly Dictionary<long, LeaseEntry> _leases = new();
    private readonly ExpiryQueue _expiry = new();
    private readonly Dictionary<byte[], long> _keyOwners = new(ByteKeyComparer.Instance);
    private readonly Dictionary<byte[], long>.AlternateLookup<ReadOnlySpan<byte>> _keyOwnersBySpan;
    private readonly Dictionary<string, ResourceHold> _resources = new(StringComparer.Ordinal);

    /// <summary>The next id to try when the table chooses one; 0 once every positive id was handed out.</summary>
    private long _nextLeaseId = 1;

    /// <summary>The last fencing token issued (0: none yet).</summary>
    private ulong _fencingToken;

    private long _lastNowMs = long.MinValue;
    private bool _isPrimary;
    private long _lastPrimaryCheckMs;

    /// <summary>Creates an empty table with <paramref name="options"/> (etcd's defaults when null).</summary>
    public LeaseTable(LeaseTableOptions? options = null)
    {
        Options = options ?? LeaseTableOptions.Default;
        Options.Validate();
        _keyOwnersBySpan = _keyOwners.GetAlternateLookup<ReadOnlySpan<byte>>();
        Locks = new LeaseLock(this);
    }

    /// <summary>The configuration.</summary>
    public LeaseTableOptions Options { get; }

    /// <summary>Named resources held by leases: at most one live lease holds each.</summary>
    public LeaseLock Locks { get; }

    /// <summary>Number of live leases.</summary>
    public int Count => _leases.Count;

    /// <summary>Number of keys attached to live leases.</summary>
    public int AttachedKeyCount => _keyOwners.Count;

    /// <summary>True between <see cref="Promote"/> and <see cref="Demote"/>: only then does the table expire leases.</summary>
    public bool IsPrimary => _isPrimary;

    /// <summary>The last fencing token issued (by a grant or a resource acquisition); 0 before the first.</summary>
    public ulong CurrentFencingToken => _fencingToken;

    /// <summary>The id the table tries next when asked to choose one (0 once the 63-bit id space is used up).</summary>
    public long NextLeaseId => _nextLeaseId;

    /// <summary>The latest time passed in; <see cref="long.MinValue"/> before the first call that takes a time.</summary>
    public long LastNowMs => _lastNowMs;

    /// <summary>How many times this table, as primary, detected that it had been paused (see <see cref="LeaseTableOptions.LeaderStallThresholdMs"/>).</summary>
    public long StallsDetected { get; private set; }

    /// <summary>
    /// Grants a lease of <paramref name="ttlSeconds"/> (etcd LeaseGrant). <paramref name="leaseId"/> 0 lets the table
    /// choose the next free id; a TTL below the minimum (zero and negative included) is raised to it.
    /// </summary>
    /// <returns>The lease id, the TTL granted and a fresh fencing token; or TtlTooLarge, InvalidLeaseId, AlreadyExists,
    /// LeaseIdsExhausted, FencingTokensExhausted.</returns>
    public GrantResult Grant(long leaseId, long ttlSeconds, long nowMs)
    {
        ObserveTime(nowMs);
        if (ttlSeconds > Options.MaxTtlSeconds) return new GrantResult { Status = LeaseStatus.TtlTooLarge };
        var ttlMs = ttlSeconds <= 0 ? 0 : SaturatingMultiply(ttlSeconds, 1000);
        return GrantCore(leaseId, ttlMs, nowMs);
    }

    /// <summary>As <see cref="Grant"/> with a TTL in milliseconds (the maximum is <see cref="LeaseTableOptions.MaxTtlMs"/>).</summary>
    public GrantResult GrantMs(long leaseId, long ttlMs, long nowMs)
    {
        ObserveTime(nowMs);
        if (ttlMs > Options.MaxTtlMs) return new GrantResult { Status = LeaseStatus.TtlTooLarge };
        return GrantCore(leaseId, ttlMs, nowMs);
    }

    private GrantResult GrantCore(long leaseId, long ttlMs, long nowMs)
    {
        if (leaseId < 0) return new GrantResult { Status = LeaseStatus.InvalidLeaseId };
        if (leaseId > 0 && _leases.ContainsKey(leaseId)) return new GrantResult { Status = LeaseStatus.AlreadyExists };
        if (_fencingToken == ulong.MaxValue) return new GrantResult { Status = LeaseStatus.FencingTokensExhausted };
        if (leaseId == 0 && !TryAllocateId(out leaseId)) return new GrantResult { Status = LeaseStatus.LeaseIdsExhausted };

        ttlMs = Math.Max(ttlMs, Options.MinTtlMs);
        var lease = new LeaseEntry(leaseId)
        {
            TtlMs = ttlMs,
            FencingToken = IssueFencingToken(),
            RecordedAtMs = nowMs,
            RemainingMs = ttlMs,
        };
        lease.ExpiresAtMs = lease.ReplicatedDeadlineMs;
        _leases.Add(leaseId, lease);
        _expiry.Add(lease);
        return new GrantResult { Status = LeaseStatus.Ok, LeaseId = leaseId, TtlMs = ttlMs, FencingToken = lease.FencingToken };
    }

    /// <summary>
    /// Renews a lease to its full TTL from <paramref name="nowMs"/> (etcd LeaseKeepAlive). Allocation-free.
    /// </summary>
    /// <returns>The renewed TTL; or NotFound with TTL 0 (etcd's answer) when the lease does not exist, or when its
    /// replicated deadline has already passed: such a lease is dead and awaits revocation, and renewing it would tell
    /// the client it holds a lease that the primary is about to revoke (etcd's lessor refuses these too).</returns>
    public KeepAliveResult KeepAlive(long leaseId, long nowMs)
    {
        ObserveTime(nowMs);
        if (!_leases.TryGetValue(leaseId, out var lease) || nowMs >= lease.ReplicatedDeadlineMs)
            return new KeepAliveResult { Status = LeaseStatus.NotFound, LeaseId = leaseId };

        lease.RenewCount++;
        lease.RecordedAtMs = nowMs;
        lease.RemainingMs = lease.TtlMs;
        SetDeadlineFromRecord(lease);
        return new KeepAliveResult { Status = LeaseStatus.Ok, LeaseId = leaseId, TtlMs = lease.TtlMs };
    }

    /// <summary>
    /// On the primary only: the lease's deadline becomes at least <paramref name="primaryNowMs"/> + its remaining TTL,
    /// where <paramref name="primaryNowMs"/> is the primary's own time at the moment it applied a grant or keep-alive
    /// (etcd's lessor does the same: <c>refresh</c> at apply, on the leader's clock). The replicated record is measured
    /// at the entry's committed time, which lags the real moment when the proposer's clock was behind the committed
    /// time line (the entry's time is then clamped up to the previous entry's); without this the primary would expire
    /// such a lease before its holder had it for a TTL. A non-primary, or an unknown lease, is left alone; a deadline
    /// never moves earlier.
    /// </summary>
    public void HoldFromPrimaryTime(long leaseId, long primaryNowMs)
    {
        if (!_isPrimary || !_leases.TryGetValue(leaseId, out var lease)) return;
        var deadline = SaturatingAdd(primaryNowMs, lease.RemainingMs);
        if (deadline <= lease.ExpiresAtMs) return;
        lease.ExpiresAtMs = deadline;
        _expiry.Update(lease);
    }

    /// <summary>
    /// Revokes a lease (etcd LeaseRevoke): it is gone at once, its keys are detached and returned so the caller deletes
    /// them, and the resources it held are released.
    /// </summary>
    public RevokeResult Revoke(long leaseId)
    {
        if (!_leases.TryGetValue(leaseId, out var lease))
            return new RevokeResult
            {
                Status = LeaseStatus.NotFound, LeaseId = leaseId, Keys = [], ReleasedResources = [],
            };
        var (keys, resources) = RemoveLease(lease);
        return new RevokeResult { Status = LeaseStatus.Ok, LeaseId = leaseId, Keys = keys, ReleasedResources = resources };
    }

    /// <summary>
    /// The granted TTL, the time left until this table's deadline, and optionally the attached keys (etcd
    /// LeaseTimeToLive); for an unknown lease NotFound with remaining TTL -1, as etcd answers.
    /// </summary>
    public TimeToLiveResult TimeToLive(long leaseId, long nowMs, bool includeKeys = false)
    {
        ObserveTime(nowMs);
        if (!_leases.TryGetValue(leaseId, out var lease))
            return new TimeToLiveResult { Status = LeaseStatus.NotFound, LeaseId = leaseId, RemainingMs = -1, Keys = [] };
        return new TimeToLiveResult
        {
            Status = LeaseStatus.Ok,
            LeaseId = leaseId,
            GrantedTtlMs = lease.TtlMs,
            RemainingMs = Math.Max(0, lease.ExpiresAtMs - nowMs),
            FencingToken = lease.FencingToken,
            Keys = includeKeys ? KeysOf(lease) : [],
        };
    }

    /// <summary>True when the lease exists (granted, and neither revoked nor expired).</summary>
    public bool Contains(long leaseId) => _leases.ContainsKey(leaseId);

    /// <summary>The ids of all live leases in ascending order (etcd LeaseLeases).</summary>
    public long[] Leases()
    {
        var ids = new long[_leases.Count];
        _leases.Keys.CopyTo(ids, 0);
        Array.Sort(ids);
        return ids;
    }

    private void ObserveTime(long nowMs)
    {
        Invariant.Check(nowMs >= _lastNowMs, (nowMs, _lastNowMs),
            static t => $"lease table time went backwards from {t._lastNowMs} ms to {t.nowMs} ms: the host must pass a monotonic clock");
        _lastNowMs = nowMs;
    }

    private bool TryAllocateId(out long leaseId)
    {
        var candidate = _nextLeaseId;
        while (candidate > 0 && _leases.ContainsKey(candidate))
            candidate = candidate == long.MaxValue ? 0 : candidate + 1;
        leaseId = candidate;
        if (candidate == 0)
        {
            _nextLeaseId = 0;
            return false;
        }
        _nextLeaseId = candidate == long.MaxValue ? 0 : candidate + 1;
        return true;
    }

    private ulong IssueFencingToken()
    {
        Invariant.Check(_fencingToken < ulong.MaxValue, "fencing tokens must never wrap around");
        var token = _fencingToken + 1;
        Invariant.Check(token > _fencingToken, "fencing tokens strictly increase");
        _fencingToken = token;
        return token;
    }

    /// <summary>
    /// After an applied command changed the replicated record: a non-primary follows the record; a primary never moves
    /// its deadline earlier (a promotion or a stall may have extended it).
    /// </summary>
    private void SetDeadlineFromRecord(LeaseEntry lease)
    {
        var deadline = lease.ReplicatedDeadlineMs;
        lease.ExpiresAtMs = _isPrimary ? Math.Max(deadline, lease.ExpiresAtMs) : deadline;
        _expiry.Update(lease);
    }

    private (IReadOnlyList<ReadOnlyMemory<byte>> Keys, IReadOnlyList<string> Resources) RemoveLease(LeaseEntry lease)
    {
        _leases.Remove(lease.Id);
        _expiry.Remove(lease);
        var keys = KeysOf(lease);
        if (lease.Keys is not null)
            foreach (var key in lease.Keys) _keyOwners.Remove(key);
        IReadOnlyList<string> resources = [];
        if (lease.Resources is { Count: > 0 })
        {
            resources = [.. lease.Resources];
            foreach (var resource in lease.Resources) _resources.Remove(resource);
        }
        return (keys, resources);
    }

    private static IReadOnlyList<ReadOnlyMemory<byte>> KeysOf(LeaseEntry lease)
    {
        if (lease.Keys is not { Count: > 0 } set) return [];
        var keys = new ReadOnlyMemory<byte>[set.Count];
        var i = 0;
        foreach (var key in set) keys[i++] = key;
        return keys;
    }

    internal static long SaturatingAdd(long a, long b)
    {
        var sum = unchecked(a + b);
        // Overflow happened iff both operands have the same sign and the sum's sign differs.
        if (((a ^ sum) & (b ^ sum)) < 0) return a < 0 ? long.MinValue : long.MaxValue;
        return sum;
    }

    private static long SaturatingMultiply(long a, long b) =>
        a > long.MaxValue / b ? long.MaxValue : a * b;
}
