namespace Keel.Mvcc;

/// <summary>Why an MVCC request was refused; each maps to one etcd error (etcdserver/api/v3rpc/rpctypes/error.go).</summary>
public enum MvccError
{
    /// <summary>OutOfRange "etcdserver: mvcc: required revision has been compacted".</summary>
    Compacted,

    /// <summary>OutOfRange "etcdserver: mvcc: required revision is a future revision".</summary>
    FutureRevision,

    /// <summary>InvalidArgument "etcdserver: key not found" (put with ignore_value/ignore_lease on a missing key).</summary>
    KeyNotFound,

    /// <summary>InvalidArgument "etcdserver: key is not provided".</summary>
    EmptyKey,

    /// <summary>InvalidArgument "etcdserver: value is provided" (ignore_value with a value).</summary>
    ValueProvided,

    /// <summary>InvalidArgument "etcdserver: lease is provided" (ignore_lease with a lease).</summary>
    LeaseProvided,

    /// <summary>InvalidArgument "etcdserver: too many operations in txn request".</summary>
    TooManyOperations,

    /// <summary>InvalidArgument "etcdserver: duplicate key given in txn request".</summary>
    DuplicateKey,

    /// <summary>
    /// InvalidArgument with a message naming the field: an enum out of range, a negative count, a transaction nested
    /// too deep. etcd has no words for these (its members answer some and panic on others); Keel refuses them.
    /// </summary>
    InvalidRequest,

    /// <summary>ResourceExhausted "etcdserver: mvcc: database space exceeded" (the NOSPACE alarm is active).</summary>
    NoSpace,
}

/// <summary>
/// An expected refusal of an MVCC request, carrying etcd's exact message (clients match the text) and the gRPC status
/// code name the server should answer with. Thrown before any state changes: a refused request leaves the store as it was.
/// </summary>
public sealed class MvccException : Exception
{
    /// <summary>Creates the exception for <paramref name="error"/> with etcd's message.</summary>
    public MvccException(MvccError error) : base(MessageOf(error)) => Error = error;

    /// <summary>A refusal with its own message (used for <see cref="MvccError.InvalidRequest"/>).</summary>
    public MvccException(MvccError error, string message) : base(message) => Error = error;

    /// <summary>What was refused.</summary>
    public MvccError Error { get; }

    /// <summary>The gRPC status code etcd answers with: "OutOfRange" or "InvalidArgument".</summary>
    public string GrpcStatusCode => Error is MvccError.Compacted or MvccError.FutureRevision ? "OutOfRange"
        : Error == MvccError.NoSpace ? "ResourceExhausted" : "InvalidArgument";

    /// <summary>etcd's exact error text for <paramref name="error"/>.</summary>
    public static string MessageOf(MvccError error) => error switch
    {
        MvccError.Compacted => "etcdserver: mvcc: required revision has been compacted",
        MvccError.FutureRevision => "etcdserver: mvcc: required revision is a future revision",
        MvccError.KeyNotFound => "etcdserver: key not found",
        MvccError.EmptyKey => "etcdserver: key is not provided",
        MvccError.ValueProvided => "etcdserver: value is provided",
        MvccError.LeaseProvided => "etcdserver: lease is provided",
        MvccError.TooManyOperations => "etcdserver: too many operations in txn request",
        MvccError.DuplicateKey => "etcdserver: duplicate key given in txn request",
        MvccError.InvalidRequest => "keel: invalid request",
        MvccError.NoSpace => "etcdserver: mvcc: database space exceeded",
        _ => throw new ArgumentOutOfRangeException(nameof(error), error, "unknown MVCC error"),
    };
}
