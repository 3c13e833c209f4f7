namespace Keel.Protocol;

/// <summary>
/// gRPC metadata names for Keel's extensions to the etcd calls. They travel as request or response headers so the
/// etcd messages stay byte-identical and unmodified etcd clients, which ignore unknown headers, keep working.
/// gRPC metadata keys are lower-case ASCII (grpc/doc/PROTOCOL-HTTP2.md).
/// </summary>
public static class KeelMetadata
{
    /// <summary>
    /// Request header on Put, DeleteRange, Txn and LeaseGrant: a client-chosen key that makes a retry return the first
    /// response instead of applying twice (same key in flight: ABORTED; same key, different request: FAILED_PRECONDITION).
    /// </summary>
    public const string IdempotencyKey = "idempotency-key";

    /// <summary>Longest idempotency key accepted, in UTF-8 bytes; longer keys are rejected with INVALID_ARGUMENT.</summary>
    public const int MaxIdempotencyKeyBytes = 256;

    /// <summary>Default window in which an idempotency key is remembered, measured in committed hybrid-clock time: 24 hours.</summary>
    public const long DefaultIdempotencyWindowMs = 24L * 60 * 60 * 1000;

    /// <summary>
    /// Response header on LeaseGrant and Lock: the fencing token, a decimal integer that only increases across the
    /// cluster's history, so a resource can refuse a paused former holder (Kleppmann, "How to do distributed locking", 2016).
    /// </summary>
    public const string FencingToken = "keel-fencing-token";

    /// <summary>Response header on writes: the hybrid-clock timestamp of the revision, as "wallTimeUnixMs.logical".</summary>
    public const string RevisionTimestamp = "keel-revision-timestamp";
}
