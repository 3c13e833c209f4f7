namespace Keel.Leases;

/// <summary>The outcome of a lease table operation. Everything but <see cref="Ok"/> is an expected, typed failure.</summary>
public enum LeaseStatus
{
    /// <summary>The operation succeeded.</summary>
    Ok = 0,

    /// <summary>The lease does not exist (never granted, revoked, or expired): "etcdserver: requested lease not found".</summary>
    NotFound,

    /// <summary>A lease with the requested id already exists: "etcdserver: lease already exists".</summary>
    AlreadyExists,

    /// <summary>The requested TTL exceeds the maximum: "etcdserver: too large lease TTL".</summary>
    TtlTooLarge,

    /// <summary>The requested lease id is negative (0 asks the table to choose one).</summary>
    InvalidLeaseId,

    /// <summary>The 64-bit lease id counter reached its end; the table never wraps around to reuse ids.</summary>
    LeaseIdsExhausted,

    /// <summary>The 64-bit fencing token counter reached its end; the table never wraps around.</summary>
    FencingTokensExhausted,

    /// <summary>The named resource is held by another live lease.</summary>
    HeldByAnotherLease,

    /// <summary>The lease does not hold the named resource.</summary>
    NotHolder,
}

/// <summary>
/// The error texts of <see cref="LeaseStatus"/> values. The etcd ones are byte-for-byte etcd's
/// (<c>etcdserver/api/v3rpc/rpctypes/error.go</c>) because clients match on them.
/// </summary>
public static class LeaseErrors
{
    /// <summary>etcd's NotFound text.</summary>
    public const string NotFound = "etcdserver: requested lease not found";

    /// <summary>etcd's text for a duplicate lease id.</summary>
    public const string AlreadyExists = "etcdserver: lease already exists";

    /// <summary>etcd's OutOfRange text for a TTL above the maximum.</summary>
    public const string TtlTooLarge = "etcdserver: too large lease TTL";

    /// <summary>Keel's text for a negative lease id.</summary>
    public const string InvalidLeaseId = "keel: lease id must be positive (0 lets the table choose)";

    /// <summary>Keel's text for an exhausted id counter.</summary>
    public const string LeaseIdsExhausted = "keel: lease ids exhausted";

    /// <summary>Keel's text for an exhausted fencing token counter.</summary>
    public const string FencingTokensExhausted = "keel: fencing tokens exhausted";

    /// <summary>Keel's text for a resource held by another lease.</summary>
    public const string HeldByAnotherLease = "keel: resource is held by another lease";

    /// <summary>Keel's text for a release by a lease that does not hold the resource.</summary>
    public const string NotHolder = "keel: lease does not hold the resource";

    /// <summary>The error text of <paramref name="status"/>, or null for <see cref="LeaseStatus.Ok"/>.</summary>
    public static string? MessageOf(LeaseStatus status) => status switch
    {
        LeaseStatus.Ok => null,
        LeaseStatus.NotFound => NotFound,
        LeaseStatus.AlreadyExists => AlreadyExists,
        LeaseStatus.TtlTooLarge => TtlTooLarge,
        LeaseStatus.InvalidLeaseId => InvalidLeaseId,
        LeaseStatus.LeaseIdsExhausted => LeaseIdsExhausted,
        LeaseStatus.FencingTokensExhausted => FencingTokensExhausted,
        LeaseStatus.HeldByAnotherLease => HeldByAnotherLease,
        LeaseStatus.NotHolder => NotHolder,
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "unknown lease status"),
    };
}

/// <summary>A failed lease operation turned into an exception by one of the results' <c>ThrowIfFailed</c> methods.</summary>
public sealed class LeaseException : Exception
{
    /// <summary>Creates the exception for a failed <paramref name="status"/>, with its error text as the message.</summary>
    public LeaseException(LeaseStatus status) : base(LeaseErrors.MessageOf(status) ?? "lease operation succeeded")
    {
        Status = status;
    }

    /// <summary>Why the operation failed.</summary>
    public LeaseStatus Status { get; }
}

/// <summary>A lease table snapshot could not be decoded: wrong magic or version, bad checksum, or inconsistent content.</summary>
public sealed class LeaseSnapshotException : Exception
{
    /// <summary>Creates the exception with a description of what is wrong with the snapshot.</summary>
    public LeaseSnapshotException(string message) : base("keel: corrupt lease snapshot: " + message) { }
}
