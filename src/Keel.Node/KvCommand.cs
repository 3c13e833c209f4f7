using Keel.Mvcc;

namespace Keel.Node;

/// <summary>Which write a <see cref="KvCommand"/> carries.</summary>
public enum KvCommandKind : byte
{
    /// <summary>etcd Put.</summary>
    Put = 1,

    /// <summary>etcd DeleteRange.</summary>
    DeleteRange = 2,

    /// <summary>etcd Txn.</summary>
    Txn = 3,

    /// <summary>etcd Compact.</summary>
    Compact = 4,
}

/// <summary>
/// A replicated key-value write: exactly one of Put, DeleteRange, Txn or Compact (the write half of etcd's
/// <c>InternalRaftRequest</c>, etcdserver/api/v3rpc and etcdserverpb/raft_internal.proto). It goes through the Raft log
/// and is applied to every replica's <see cref="MvccStore"/> in log order.
/// </summary>
public sealed record KvCommand
{
    private KvCommand() { }

    /// <summary>What the command is.</summary>
    public KvCommandKind Kind { get; private init; }

    /// <summary>The put, when <see cref="Kind"/> is Put.</summary>
    public PutRequest? Put { get; private init; }

    /// <summary>The delete, when <see cref="Kind"/> is DeleteRange.</summary>
    public DeleteRangeRequest? DeleteRange { get; private init; }

    /// <summary>The transaction, when <see cref="Kind"/> is Txn.</summary>
    public TxnRequest? Txn { get; private init; }

    /// <summary>The revision to compact at, when <see cref="Kind"/> is Compact.</summary>
    public long CompactRevision { get; private init; }

    /// <summary>A put command.</summary>
    public static KvCommand Of(PutRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new() { Kind = KvCommandKind.Put, Put = request };
    }

    /// <summary>A delete-range command.</summary>
    public static KvCommand Of(DeleteRangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new() { Kind = KvCommandKind.DeleteRange, DeleteRange = request };
    }

    /// <summary>A transaction command.</summary>
    public static KvCommand Of(TxnRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new() { Kind = KvCommandKind.Txn, Txn = request };
    }

    /// <summary>A compaction at <paramref name="revision"/>.</summary>
    public static KvCommand Compact(long revision) => new() { Kind = KvCommandKind.Compact, CompactRevision = revision };
}

/// <summary>The answer to a compaction (etcd CompactionResponse): the store revision when it was applied.</summary>
/// <param name="Revision">The store revision at apply time.</param>
public sealed record CompactResponse(long Revision);

/// <summary>Why a request failed, as etcd's gRPC error classes (etcd-api.md, "Errors").</summary>
public enum KeelErrorCode
{
    /// <summary>No leader is known: the write or read was not started; safe to retry ("etcdserver: no leader").</summary>
    NoLeader,

    /// <summary>
    /// Leadership changed while the request was in flight. For a write the outcome is unknown: it may still commit
    /// ("etcdserver: leader changed"). Retry with an idempotency key.
    /// </summary>
    LeaderChanged,

    /// <summary>No answer within the request timeout; for a write the outcome is unknown ("etcdserver: request timed out").</summary>
    RequestTimedOut,

    /// <summary>The encoded request exceeds the 1.5 MiB limit ("etcdserver: request is too large").</summary>
    RequestTooLarge,

    /// <summary>Back-pressure: the leader's uncommitted log is full ("etcdserver: too many requests").</summary>
    TooManyRequests,

    /// <summary>The MVCC store refused the request (compacted or future revision, empty key, too many operations...).</summary>
    Mvcc,
}

/// <summary>A typed failure with etcd's exact message and gRPC status code.</summary>
/// <param name="Code">The class of failure.</param>
/// <param name="Message">etcd's error text, e.g. "etcdserver: leader changed".</param>
/// <param name="GrpcStatusCode">The gRPC status a shell answers with ("Unavailable", "InvalidArgument"...).</param>
public sealed record KeelError(KeelErrorCode Code, string Message, string GrpcStatusCode)
{
    /// <summary>"etcdserver: no leader".</summary>
    public static KeelError NoLeader { get; } = new(KeelErrorCode.NoLeader, "etcdserver: no leader", "Unavailable");

    /// <summary>"etcdserver: leader changed".</summary>
    public static KeelError LeaderChanged { get; } = new(KeelErrorCode.LeaderChanged, "etcdserver: leader changed", "Unavailable");

    /// <summary>"etcdserver: request timed out".</summary>
    public static KeelError RequestTimedOut { get; } = new(KeelErrorCode.RequestTimedOut, "etcdserver: request timed out", "Unavailable");

    /// <summary>"etcdserver: request is too large".</summary>
    public static KeelError RequestTooLarge { get; } = new(KeelErrorCode.RequestTooLarge, "etcdserver: request is too large", "InvalidArgument");

    /// <summary>"etcdserver: too many requests".</summary>
    public static KeelError TooManyRequests { get; } = new(KeelErrorCode.TooManyRequests, "etcdserver: too many requests", "ResourceExhausted");

    /// <summary>The MVCC store's refusal, with its etcd text and status.</summary>
    public static KeelError FromMvcc(MvccException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return new(KeelErrorCode.Mvcc, exception.Message, exception.GrpcStatusCode);
    }

    /// <summary>True when the request certainly had no effect (a write that may still commit answers false).</summary>
    public bool IsDefinite => Code is not (KeelErrorCode.LeaderChanged or KeelErrorCode.RequestTimedOut);
}

/// <summary>
/// The answer to one client request, matched by <see cref="RequestId"/>: exactly one of the typed responses, or
/// <see cref="Error"/>.
/// </summary>
public sealed record KvResult
{
    /// <summary>The id the client passed to <see cref="KeelNode.Submit"/> or <see cref="KeelNode.Read"/>.</summary>
    public required ulong RequestId { get; init; }

    /// <summary>A read's answer.</summary>
    public RangeResponse? Range { get; init; }

    /// <summary>A put's answer.</summary>
    public PutResponse? Put { get; init; }

    /// <summary>A delete's answer.</summary>
    public DeleteRangeResponse? DeleteRange { get; init; }

    /// <summary>A transaction's answer.</summary>
    public TxnResponse? Txn { get; init; }

    /// <summary>A compaction's answer.</summary>
    public CompactResponse? Compact { get; init; }

    /// <summary>The failure, when the request did not succeed.</summary>
    public KeelError? Error { get; init; }

    /// <summary>True when <see cref="Error"/> is set.</summary>
    public bool IsError => Error is not null;

    /// <summary>A failed request.</summary>
    public static KvResult Failed(ulong requestId, KeelError error) => new() { RequestId = requestId, Error = error };
}
