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

    /// <summary>etcd LeaseGrant.</summary>
    LeaseGrant = 5,

    /// <summary>etcd LeaseRevoke (also what the leader proposes for an expired lease).</summary>
    LeaseRevoke = 6,

    /// <summary>One etcd LeaseKeepAlive renewal, replicated so every replica knows each lease's remaining TTL.</summary>
    LeaseKeepAlive = 7,

    /// <summary>A member records its name and client URLs (etcd's publish after start).</summary>
    PublishMember = 8,

    /// <summary>
    /// The replicated half of a membership change: records a new member's peer URLs before its Raft configuration change
    /// (Add), or replaces a member's peer URLs (Update). Use <see cref="KeelNode.SubmitMemberChange"/>.
    /// </summary>
    MemberChange = 9,

    /// <summary>
    /// The leader's measure of every lease's remaining TTL (etcd LeaseCheckpoint, #9395): replicated so that the next
    /// leader continues from it instead of granting a full TTL again.
    /// </summary>
    LeaseCheckpoint = 10,

    /// <summary>Activates or deactivates an alarm of a member (etcd's AlarmRequest through the log).</summary>
    Alarm = 11,

    /// <summary>A change of the auth store (etcd's Auth service writes: users, roles, permissions, enable/disable).</summary>
    Auth = 12,

    /// <summary>A change of the gossip keyring (initialize at bootstrap, install, use, remove: <c>keel keyring</c>).</summary>
    GossipKeyring = 13,
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

    /// <summary>The lease, when <see cref="Kind"/> is LeaseGrant (0: the node picks one), LeaseRevoke or LeaseKeepAlive.</summary>
    public long LeaseId { get; private init; }

    /// <summary>The requested TTL in seconds, when <see cref="Kind"/> is LeaseGrant.</summary>
    public long TtlSeconds { get; private init; }

    /// <summary>The member's attributes, when <see cref="Kind"/> is PublishMember.</summary>
    public MemberAttributes? Member { get; private init; }

    /// <summary>The change, when <see cref="Kind"/> is MemberChange (Add with its chosen id, or Update).</summary>
    public MemberChange? MemberChange { get; private init; }

    /// <summary>The checkpoint records, when <see cref="Kind"/> is LeaseCheckpoint.</summary>
    public IReadOnlyList<Keel.Leases.LeaseCheckpoint> Checkpoints { get; private init; } = [];

    /// <summary>A lease checkpoint (proposed by the leader; clients do not send it).</summary>
    public static KvCommand LeaseCheckpoint(IReadOnlyList<Keel.Leases.LeaseCheckpoint> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        return new() { Kind = KvCommandKind.LeaseCheckpoint, Checkpoints = [.. records] };
    }

    /// <summary>The alarm change, when <see cref="Kind"/> is Alarm.</summary>
    public AlarmChange? Alarm { get; private init; }

    /// <summary>Activates or deactivates <paramref name="change"/>'s alarm (etcd's Maintenance.Alarm, through the log).</summary>
    public static KvCommand OfAlarm(AlarmChange change) => new() { Kind = KvCommandKind.Alarm, Alarm = change };

    /// <summary>The auth change, when <see cref="Kind"/> is Auth.</summary>
    public Auth.AuthChange? Auth { get; private init; }

    /// <summary>A change of the replicated auth store (its password, if any, already hashed).</summary>
    public static KvCommand OfAuth(Auth.AuthChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return new() { Kind = KvCommandKind.Auth, Auth = change };
    }

    /// <summary>The keyring change, when <see cref="Kind"/> is GossipKeyring.</summary>
    public Keyring.KeyringChange? Keyring { get; private init; }

    /// <summary>A change of the replicated gossip keyring.</summary>
    public static KvCommand OfKeyring(Keyring.KeyringChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return new() { Kind = KvCommandKind.GossipKeyring, Keyring = change };
    }

    internal static KvCommand OfMemberChange(MemberChange change) => new() { Kind = KvCommandKind.MemberChange, MemberChange = change };

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

    /// <summary>
    /// A lease grant of <paramref name="ttlSeconds"/> (raised to the minimum TTL). <paramref name="leaseId"/> 0 lets the
    /// node choose: every replica picks the same fresh positive id at apply time (the lease table's next id).
    /// </summary>
    public static KvCommand LeaseGrant(long leaseId, long ttlSeconds) =>
        new() { Kind = KvCommandKind.LeaseGrant, LeaseId = leaseId, TtlSeconds = ttlSeconds };

    /// <summary>Revokes a lease and deletes its attached keys in one revision.</summary>
    public static KvCommand LeaseRevoke(long leaseId) => new() { Kind = KvCommandKind.LeaseRevoke, LeaseId = leaseId };

    /// <summary>Renews a lease to its full TTL (one keep-alive of etcd's stream).</summary>
    public static KvCommand LeaseKeepAlive(long leaseId) => new() { Kind = KvCommandKind.LeaseKeepAlive, LeaseId = leaseId };

    /// <summary>Records a member's name and client URLs (use <see cref="KeelNode.PublishMember"/>).</summary>
    public static KvCommand PublishMember(MemberAttributes attributes)
    {
        ArgumentNullException.ThrowIfNull(attributes);
        return new() { Kind = KvCommandKind.PublishMember, Member = attributes };
    }
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

    /// <summary>The lease table refused the request (lease not found, TTL too large, lease already exists...).</summary>
    Lease,

    /// <summary>
    /// A request with this idempotency key is still in flight on this node: the outcome of the first is not known yet.
    /// Retry later with the same key (gRPC ABORTED, HTTP 409 in the IETF Idempotency-Key draft).
    /// </summary>
    IdempotencyKeyInFlight,

    /// <summary>
    /// The idempotency key was already used for a different request (gRPC FAILED_PRECONDITION, HTTP 422): the stored
    /// answer belongs to another request and is not replayed.
    /// </summary>
    IdempotencyKeyMismatch,

    /// <summary>The idempotency key is not 1 to 255 printable ASCII characters (gRPC INVALID_ARGUMENT).</summary>
    InvalidIdempotencyKey,

    /// <summary>The replicated idempotency table is full of requests in flight (gRPC RESOURCE_EXHAUSTED).</summary>
    IdempotencyTableFull,

    /// <summary>A membership change was refused (unknown member, duplicate peer URL, a change already pending...).</summary>
    Membership,

    /// <summary>The NOSPACE alarm is active (quota exceeded or the disk is full).</summary>
    NoSpace,

    /// <summary>A committed log entry was not a valid command; it changed nothing.</summary>
    InvalidCommand,

    /// <summary>The auth store refused a change or a request was not permitted (etcd's auth errors).</summary>
    Auth,

    /// <summary>The gossip keyring refused a change (removing the primary, using a key not installed, a bad key).</summary>
    Keyring,
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

    /// <summary>
    /// "etcdserver: too many requests" for a request that found no leader while
    /// <see cref="KeelNodeOptions.MaxRequestsAwaitingLeader"/> others were already waiting for one (nothing proposed).
    /// </summary>
    public static KeelError TooManyAwaitingLeader { get; } = TooManyRequests;

    /// <summary>"keel: a request with this idempotency key is still in flight; retry later" (Aborted).</summary>
    public static KeelError IdempotencyKeyInFlight { get; } = new(KeelErrorCode.IdempotencyKeyInFlight,
        "keel: a request with this idempotency key is still in flight; retry later with the same key", "Aborted");

    /// <summary>"keel: idempotency key was already used for a different request" (FailedPrecondition).</summary>
    public static KeelError IdempotencyKeyMismatch { get; } = new(KeelErrorCode.IdempotencyKeyMismatch,
        "keel: idempotency key was already used for a different request", "FailedPrecondition");

    /// <summary>"keel: idempotency table is full of requests in flight" (ResourceExhausted).</summary>
    public static KeelError IdempotencyTableFull { get; } = new(KeelErrorCode.IdempotencyTableFull,
        "keel: idempotency table is full of requests in flight; retry later", "ResourceExhausted");

    /// <summary>An invalid idempotency key, with the reason (InvalidArgument).</summary>
    public static KeelError InvalidIdempotencyKey(string reason) =>
        new(KeelErrorCode.InvalidIdempotencyKey, "keel: invalid idempotency key: " + reason, "InvalidArgument");

    /// <summary>ResourceExhausted "etcdserver: mvcc: database space exceeded": the NOSPACE alarm is active.</summary>
    public static KeelError NoSpace { get; } = new(KeelErrorCode.NoSpace, "etcdserver: mvcc: database space exceeded", "ResourceExhausted");

    /// <summary>A committed entry that is not a valid command (written by a buggy or hostile peer): refused, nothing changed.</summary>
    public static KeelError InvalidCommand(string reason) =>
        new(KeelErrorCode.InvalidCommand, "keel: the log entry is not a valid command: " + reason, "InvalidArgument");

    /// <summary>A request refused before it was proposed (an enum out of range, a missing field...).</summary>
    public static KeelError InvalidRequest(string message) => new(KeelErrorCode.Mvcc, message, "InvalidArgument");

    /// <summary>A refused membership change (FailedPrecondition unless <paramref name="grpcStatusCode"/> says otherwise).</summary>
    public static KeelError MembershipRefused(string message, string grpcStatusCode = "FailedPrecondition") =>
        new(KeelErrorCode.Membership, message, grpcStatusCode);

    /// <summary>The lease table's refusal with etcd's text and gRPC status (NotFound, OutOfRange, FailedPrecondition...).</summary>
    public static KeelError FromLease(Keel.Leases.LeaseStatus status) => new(KeelErrorCode.Lease,
        Keel.Leases.LeaseErrors.MessageOf(status) ?? throw new ArgumentOutOfRangeException(nameof(status), status, "not a failure"),
        status switch
        {
            Keel.Leases.LeaseStatus.NotFound => "NotFound",
            Keel.Leases.LeaseStatus.TtlTooLarge => "OutOfRange",
            Keel.Leases.LeaseStatus.AlreadyExists => "FailedPrecondition",
            Keel.Leases.LeaseStatus.InvalidLeaseId => "InvalidArgument",
            _ => "ResourceExhausted",
        });

    /// <summary>The MVCC store's refusal, with its etcd text and status.</summary>
    public static KeelError FromMvcc(MvccException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return new(KeelErrorCode.Mvcc, exception.Message, exception.GrpcStatusCode);
    }

    /// <summary>The auth store's refusal with etcd's text and gRPC status (rpctypes/error.go).</summary>
    public static KeelError FromAuth(Auth.AuthStatus status) => status switch
    {
        Node.Auth.AuthStatus.RootUserNotExist => new(KeelErrorCode.Auth, "etcdserver: root user does not exist", "FailedPrecondition"),
        Node.Auth.AuthStatus.RootRoleNotExist => new(KeelErrorCode.Auth, "etcdserver: root user does not have root role", "FailedPrecondition"),
        Node.Auth.AuthStatus.UserAlreadyExists => new(KeelErrorCode.Auth, "etcdserver: user name already exists", "FailedPrecondition"),
        Node.Auth.AuthStatus.UserEmpty => new(KeelErrorCode.Auth, "etcdserver: user name is empty", "InvalidArgument"),
        Node.Auth.AuthStatus.UserNotFound => new(KeelErrorCode.Auth, "etcdserver: user name not found", "FailedPrecondition"),
        Node.Auth.AuthStatus.RoleAlreadyExists => new(KeelErrorCode.Auth, "etcdserver: role name already exists", "FailedPrecondition"),
        Node.Auth.AuthStatus.RoleNotFound => new(KeelErrorCode.Auth, "etcdserver: role name not found", "FailedPrecondition"),
        Node.Auth.AuthStatus.RoleEmpty => new(KeelErrorCode.Auth, "etcdserver: role name is empty", "InvalidArgument"),
        Node.Auth.AuthStatus.RoleNotGranted => new(KeelErrorCode.Auth, "etcdserver: role is not granted to the user", "FailedPrecondition"),
        Node.Auth.AuthStatus.PermissionNotGranted => new(KeelErrorCode.Auth, "etcdserver: permission is not granted to the role", "FailedPrecondition"),
        Node.Auth.AuthStatus.InvalidAuthManagement => new(KeelErrorCode.Auth, "etcdserver: invalid auth management", "InvalidArgument"),
        Node.Auth.AuthStatus.PermissionNotGiven => new(KeelErrorCode.Auth, "etcdserver: permission not given", "InvalidArgument"),
        Node.Auth.AuthStatus.Invalid => new(KeelErrorCode.Auth, "keel: invalid auth change", "InvalidArgument"),
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "not a failure"),
    };

    /// <summary>The gossip keyring's refusal (FailedPrecondition, or InvalidArgument for a malformed key).</summary>
    public static KeelError KeyringRefused(string message) =>
        new(KeelErrorCode.Keyring, message, message.Contains("bytes", StringComparison.Ordinal) || message.Contains("take one key", StringComparison.Ordinal) ? "InvalidArgument" : "FailedPrecondition");

    /// <summary>True when the request certainly had no effect (a write that may still commit answers false).</summary>
    public bool IsDefinite => Code is not (KeelErrorCode.LeaderChanged or KeelErrorCode.RequestTimedOut);
}

/// <summary>The answer to a lease grant (etcd LeaseGrantResponse) plus Keel's fencing token.</summary>
/// <param name="LeaseId">The lease granted (the requested id, or the one the node chose).</param>
/// <param name="TtlSeconds">The TTL granted, after raising it to the minimum (etcd: <c>grant 1</c> gives 2).</param>
/// <param name="FencingToken">Greater than every token issued before by any grant on this cluster: see docs/node.md.</param>
/// <param name="Revision">The store revision when the grant applied (etcd's header revision).</param>
public sealed record LeaseGrantResponse(long LeaseId, long TtlSeconds, ulong FencingToken, long Revision);

/// <summary>The answer to a lease revocation (etcd LeaseRevokeResponse).</summary>
/// <param name="Revision">The store revision after the attached keys were deleted (one revision for all of them).</param>
/// <param name="DeletedKeys">How many attached keys were deleted.</param>
public sealed record LeaseRevokeResponse(long Revision, long DeletedKeys);

/// <summary>The answer to one keep-alive (etcd LeaseKeepAliveResponse): TTL 0 when the lease is unknown, as etcd answers.</summary>
/// <param name="LeaseId">The lease.</param>
/// <param name="TtlSeconds">The renewed TTL in seconds; 0 when the lease does not exist (or had already expired).</param>
public sealed record LeaseKeepAliveResponse(long LeaseId, long TtlSeconds);

/// <summary>A lease's time to live as this replica's applied table knows it (etcd LeaseTimeToLiveResponse).</summary>
/// <param name="LeaseId">The lease asked about.</param>
/// <param name="TtlSeconds">Remaining seconds, truncated as etcd does; -1 when the lease is unknown.</param>
/// <param name="GrantedTtlSeconds">The TTL the lease was granted with; 0 when unknown.</param>
/// <param name="Keys">The attached keys in byte order, when asked for.</param>
/// <param name="FencingToken">The lease's fencing token; 0 when unknown.</param>
public sealed record LeaseTimeToLiveResult(long LeaseId, long TtlSeconds, long GrantedTtlSeconds, IReadOnlyList<byte[]> Keys, ulong FencingToken);

/// <summary>
/// The answer to one client request, matched by <see cref="RequestId"/>: exactly one of the typed responses, or
/// <see cref="Error"/>.
/// </summary>
public sealed record KvResult
{
    /// <summary>The id the client passed to <see cref="KeelNode.Submit(ulong, KvCommand, string?)"/> or <see cref="KeelNode.Read(ulong, RangeRequest, bool)"/>.</summary>
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

    /// <summary>A lease grant's answer.</summary>
    public LeaseGrantResponse? LeaseGrant { get; init; }

    /// <summary>A lease revocation's answer.</summary>
    public LeaseRevokeResponse? LeaseRevoke { get; init; }

    /// <summary>A keep-alive's answer.</summary>
    public LeaseKeepAliveResponse? LeaseKeepAlive { get; init; }

    /// <summary>The member list after a membership change or a publish (etcd MemberAdd/Remove/Update/Promote responses).</summary>
    public IReadOnlyList<MemberInfo>? Members { get; init; }

    /// <summary>The member a MemberAdd created (its id was chosen by the node).</summary>
    public MemberInfo? AddedMember { get; init; }

    /// <summary>
    /// True when this answer is the replay of the stored first response to an earlier request with the same
    /// idempotency key (the request did not execute again).
    /// </summary>
    public bool IsIdempotentReplay { get; init; }

    /// <summary>The alarms an alarm request listed, activated or deactivated.</summary>
    public IReadOnlyList<AlarmMember>? Alarms { get; init; }

    /// <summary>The auth revision after an applied auth change (etcd's auth store revision).</summary>
    public ulong? AuthRevision { get; init; }

    /// <summary>The failure, when the request did not succeed.</summary>
    public KeelError? Error { get; init; }

    /// <summary>True when <see cref="Error"/> is set.</summary>
    public bool IsError => Error is not null;

    /// <summary>A failed request.</summary>
    public static KvResult Failed(ulong requestId, KeelError error) => new() { RequestId = requestId, Error = error };
}
