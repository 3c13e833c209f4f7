namespace Keel.Leases;

/// <summary>The outcome of <see cref="LeaseTable.Grant"/> / <see cref="LeaseTable.GrantMs"/> (etcd LeaseGrantResponse).</summary>
public readonly record struct GrantResult
{
    /// <summary>Ok, or why the grant failed.</summary>
    public LeaseStatus Status { get; init; }

    /// <summary>The id of the new lease (the requested one, or the one the table chose); 0 on failure.</summary>
    public long LeaseId { get; init; }

    /// <summary>The granted TTL in milliseconds, after raising it to the minimum.</summary>
    public long TtlMs { get; init; }

    /// <summary>The granted TTL in whole seconds (rounded up), as etcd reports it.</summary>
    public long TtlSeconds => (TtlMs + 999) / 1000;

    /// <summary>The fencing token of this grant: greater than every token the table issued before; 0 on failure.</summary>
    public ulong FencingToken { get; init; }

    /// <summary>True when <see cref="Status"/> is <see cref="LeaseStatus.Ok"/>.</summary>
    public bool IsSuccess => Status == LeaseStatus.Ok;

    /// <summary>The error text of a failure (etcd's where etcd has one); null on success.</summary>
    public string? Error => LeaseErrors.MessageOf(Status);

    /// <summary>Returns this result, or throws <see cref="LeaseException"/> when it is a failure.</summary>
    public GrantResult ThrowIfFailed() => IsSuccess ? this : throw new LeaseException(Status);
}

/// <summary>The outcome of <see cref="LeaseTable.KeepAlive"/> (etcd LeaseKeepAliveResponse).</summary>
public readonly record struct KeepAliveResult
{
    /// <summary>Ok, or <see cref="LeaseStatus.NotFound"/> when the lease does not exist or its deadline has passed.</summary>
    public LeaseStatus Status { get; init; }

    /// <summary>The lease that was kept alive.</summary>
    public long LeaseId { get; init; }

    /// <summary>The renewed remaining TTL in milliseconds (the lease's full TTL); 0 when not found.</summary>
    public long TtlMs { get; init; }

    /// <summary>The renewed TTL in whole seconds as etcd reports it; 0 when not found (etcd's answer for an unknown lease).</summary>
    public long TtlSeconds => (TtlMs + 999) / 1000;

    /// <summary>True when <see cref="Status"/> is <see cref="LeaseStatus.Ok"/>.</summary>
    public bool IsSuccess => Status == LeaseStatus.Ok;

    /// <summary>The error text of a failure; null on success.</summary>
    public string? Error => LeaseErrors.MessageOf(Status);
}

/// <summary>The outcome of <see cref="LeaseTable.Revoke"/> (etcd LeaseRevoke).</summary>
public readonly record struct RevokeResult
{
    /// <summary>Ok, or <see cref="LeaseStatus.NotFound"/> ("etcdserver: requested lease not found").</summary>
    public LeaseStatus Status { get; init; }

    /// <summary>The revoked lease.</summary>
    public long LeaseId { get; init; }

    /// <summary>The keys that were attached, in byte order: the caller deletes these ephemeral keys.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Keys { get; init; }

    /// <summary>The named resources the lease held, in ordinal order; they are free again.</summary>
    public IReadOnlyList<string> ReleasedResources { get; init; }

    /// <summary>True when <see cref="Status"/> is <see cref="LeaseStatus.Ok"/>.</summary>
    public bool IsSuccess => Status == LeaseStatus.Ok;

    /// <summary>The error text of a failure; null on success.</summary>
    public string? Error => LeaseErrors.MessageOf(Status);

    /// <summary>Returns this result, or throws <see cref="LeaseException"/> when it is a failure.</summary>
    public RevokeResult ThrowIfFailed() => IsSuccess ? this : throw new LeaseException(Status);
}

/// <summary>The outcome of <see cref="LeaseTable.TimeToLive"/> (etcd LeaseTimeToLiveResponse).</summary>
public readonly record struct TimeToLiveResult
{
    /// <summary>Ok, or <see cref="LeaseStatus.NotFound"/>.</summary>
    public LeaseStatus Status { get; init; }

    /// <summary>The lease asked about.</summary>
    public long LeaseId { get; init; }

    /// <summary>The TTL the lease was granted with, in milliseconds; 0 when not found.</summary>
    public long GrantedTtlMs { get; init; }

    /// <summary>The granted TTL in whole seconds (etcd's <c>grantedTTL</c>); 0 when not found.</summary>
    public long GrantedTtlSeconds => Status == LeaseStatus.Ok ? (GrantedTtlMs + 999) / 1000 : 0;

    /// <summary>Milliseconds until this table's deadline for the lease (never negative); -1 when not found.</summary>
    public long RemainingMs { get; init; }

    /// <summary>
    /// The remaining TTL in whole seconds, truncated like etcd's <c>TTL</c> field (so a fresh 10 s lease shows 9 once
    /// any time passed); -1 for an unknown lease, as etcd answers.
    /// </summary>
    public long RemainingTtlSeconds => Status == LeaseStatus.Ok ? RemainingMs / 1000 : -1;

    /// <summary>The fencing token the lease was granted with; 0 when not found.</summary>
    public ulong FencingToken { get; init; }

    /// <summary>The attached keys in byte order (empty unless asked for, and when not found).</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Keys { get; init; }

    /// <summary>True when <see cref="Status"/> is <see cref="LeaseStatus.Ok"/>.</summary>
    public bool IsSuccess => Status == LeaseStatus.Ok;
}

/// <summary>A lease removed by <see cref="LeaseTable.ExpireDue"/>, or found due by <see cref="LeaseTable.PeekExpired"/>.</summary>
public readonly record struct ExpiredLease
{
    /// <summary>The lease.</summary>
    public long LeaseId { get; init; }

    /// <summary>The deadline that passed, on the table's time line.</summary>
    public long DeadlineMs { get; init; }

    /// <summary>The attached keys in byte order: the caller deletes these ephemeral keys.</summary>
    public IReadOnlyList<ReadOnlyMemory<byte>> Keys { get; init; }

    /// <summary>The named resources the lease held, in ordinal order (released by ExpireDue; still held after PeekExpired).</summary>
    public IReadOnlyList<string> ReleasedResources { get; init; }
}

/// <summary>
/// One lease's remaining TTL as a primary measured it (etcd LeaseCheckpoint). The primary replicates these records and
/// every replica applies them with <see cref="LeaseTable.ApplyCheckpoint"/>, so a future leader knows how much of the
/// TTL was already used up instead of restarting it (etcd #9395).
/// </summary>
/// <param name="LeaseId">The lease.</param>
/// <param name="RenewCount">How many keep-alives the lease had when measured; a record older than a later keep-alive is ignored.</param>
/// <param name="CheckpointAtMs">When the primary measured it, on the table's time line.</param>
/// <param name="RemainingMs">The primary's remaining TTL at <paramref name="CheckpointAtMs"/>, never negative.</param>
public readonly record struct LeaseCheckpoint(long LeaseId, ulong RenewCount, long CheckpointAtMs, long RemainingMs);

/// <summary>The outcome of <see cref="LeaseLock.Acquire"/>.</summary>
public readonly record struct AcquireResult
{
    /// <summary>Ok, <see cref="LeaseStatus.NotFound"/> (no such lease), or <see cref="LeaseStatus.HeldByAnotherLease"/>.</summary>
    public LeaseStatus Status { get; init; }

    /// <summary>The resource asked for.</summary>
    public string Resource { get; init; }

    /// <summary>The lease that holds the resource now (the caller's on success, the other holder's when refused, 0 when not found).</summary>
    public long HolderLeaseId { get; init; }

    /// <summary>The holder's fencing token: pass it with every write to the resource.</summary>
    public ulong FencingToken { get; init; }

    /// <summary>True when the caller's lease already held the resource (the acquisition was a retry; same token).</summary>
    public bool WasAlreadyHeld { get; init; }

    /// <summary>True when <see cref="Status"/> is <see cref="LeaseStatus.Ok"/>.</summary>
    public bool IsSuccess => Status == LeaseStatus.Ok;

    /// <summary>The error text of a failure; null on success.</summary>
    public string? Error => LeaseErrors.MessageOf(Status);
}

/// <summary>Who holds a named resource, and with which fencing token.</summary>
/// <param name="Resource">The resource name.</param>
/// <param name="LeaseId">The holding lease.</param>
/// <param name="FencingToken">The token issued when the lease acquired the resource.</param>
public readonly record struct ResourceHold(string Resource, long LeaseId, ulong FencingToken);

/// <summary>The verdict of <see cref="LeaseLock.ValidateFence"/> on a token presented with a write to a resource.</summary>
public enum FenceCheck
{
    /// <summary>The token is the current holder's: the write may proceed.</summary>
    Valid = 0,

    /// <summary>The token is older than the current holder's: a former holder (paused, partitioned) is writing late.</summary>
    Stale,

    /// <summary>Nobody holds the resource (the holder's lease expired or was revoked): no write may proceed.</summary>
    NotHeld,

    /// <summary>The token is newer than the current holder's: it was never issued for this resource.</summary>
    NeverIssued,
}
