using Grpc.Core;
using Keel.Core;

namespace Keel.Protocol;

/// <summary>
/// etcd v3's server errors and request limits, as facts the Keel server must reproduce exactly for unmodified clients.
/// Error texts and codes are those of etcd-io/etcd <c>api/v3rpc/rpctypes/error.go</c> (v3.4 path
/// <c>etcdserver/api/v3rpc/rpctypes/error.go</c>); limits are from <c>embed/config.go</c> and
/// <c>etcdserver/api/v3rpc/grpc.go</c> (see shared/reference/etcd-api.md).
/// </summary>
public static class EtcdErrors
{
    /// <summary>Largest accepted request, 1.5 MiB: etcd's default <c>--max-request-bytes</c>.</summary>
    public const int MaxRequestBytes = 1_572_864;

    /// <summary>The gRPC receive limit: the request limit plus 512 KiB of slack for framing (etcd grpc.go).</summary>
    public const int MaxReceiveMessageBytes = MaxRequestBytes + 512 * 1024;

    /// <summary>Most operations (in success plus failure branches, counted per level) allowed in one Txn: etcd's default <c>--max-txn-ops</c>.</summary>
    public const int MaxTxnOperations = 128;

    /// <summary>Largest lease TTL etcd accepts, in seconds (<c>lease.MaxLeaseTTL</c>); larger is <see cref="LeaseTtlTooLarge"/>.</summary>
    public const long MaxLeaseTtlSeconds = 9_000_000_000;

    /// <summary>etcd's default election timeout, milliseconds (<c>--election-timeout</c>).</summary>
    public const long DefaultElectionTimeoutMs = 1000;

    /// <summary>
    /// The shortest lease TTL granted: ceil(1.5 × election timeout) in seconds, so a lease outlives one leader
    /// election (etcd <c>lessor.minLeaseTTL</c>). With the default 1 s election timeout this is 2 s: <c>grant 1</c> returns TTL 2.
    /// </summary>
    /// <param name="electionTimeoutMs">The cluster's election timeout in milliseconds; must be positive.</param>
    public static long MinimumLeaseTtlSeconds(long electionTimeoutMs)
    {
        if (electionTimeoutMs <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(electionTimeoutMs), electionTimeoutMs, "The election timeout must be positive.");
        }

        // 3/2 of the timeout, rounded up to whole seconds, in integers so no floating-point rounding can shorten it.
        long minimumTtlMs = (3 * electionTimeoutMs + 1) / 2;
        return (minimumTtlMs + 999) / 1000;
    }

    /// <summary>The TTL etcd grants for a requested TTL: raised to the minimum; a request over the maximum is an error the caller reports as <see cref="LeaseTtlTooLarge"/>.</summary>
    /// <param name="requestedTtlSeconds">The TTL in the LeaseGrant request.</param>
    /// <param name="electionTimeoutMs">The cluster's election timeout in milliseconds.</param>
    /// <returns>The granted TTL, or null when the request exceeds <see cref="MaxLeaseTtlSeconds"/>.</returns>
    public static long? GrantedLeaseTtlSeconds(long requestedTtlSeconds, long electionTimeoutMs)
    {
        if (requestedTtlSeconds > MaxLeaseTtlSeconds)
        {
            return null;
        }

        return Math.Max(requestedTtlSeconds, MinimumLeaseTtlSeconds(electionTimeoutMs));
    }

    /// <summary>A Put, Range or DeleteRange with an empty key.</summary>
    public static readonly EtcdError KeyNotProvided = new(StatusCode.InvalidArgument, "etcdserver: key is not provided");

    /// <summary>A Put with ignore_value or ignore_lease on a key that does not exist.</summary>
    public static readonly EtcdError KeyNotFound = new(StatusCode.InvalidArgument, "etcdserver: key not found");

    /// <summary>A Put with ignore_value that also carries a value.</summary>
    public static readonly EtcdError ValueProvided = new(StatusCode.InvalidArgument, "etcdserver: value is provided");

    /// <summary>A Put with ignore_lease that also carries a lease.</summary>
    public static readonly EtcdError LeaseProvided = new(StatusCode.InvalidArgument, "etcdserver: lease is provided");

    /// <summary>A lease request with TTL 0 where one is required.</summary>
    public static readonly EtcdError TtlZero = new(StatusCode.InvalidArgument, "etcdserver: ttl is 0");

    /// <summary>A Txn with more than <see cref="MaxTxnOperations"/> operations in a branch.</summary>
    public static readonly EtcdError TooManyOperations = new(StatusCode.InvalidArgument, "etcdserver: too many operations in txn request");

    /// <summary>A Txn branch that writes the same key twice.</summary>
    public static readonly EtcdError DuplicateKey = new(StatusCode.InvalidArgument, "etcdserver: duplicate key given in txn request");

    /// <summary>A read or watch at a revision at or below the compaction point.</summary>
    public static readonly EtcdError Compacted = new(StatusCode.OutOfRange, "etcdserver: mvcc: required revision has been compacted");

    /// <summary>A read at a revision above the current store revision.</summary>
    public static readonly EtcdError FutureRevision = new(StatusCode.OutOfRange, "etcdserver: mvcc: required revision is a future revision");

    /// <summary>A write refused because the NOSPACE alarm is raised.</summary>
    public static readonly EtcdError NoSpace = new(StatusCode.ResourceExhausted, "etcdserver: mvcc: database space exceeded");

    /// <summary>A Revoke, Put or TimeToLive naming a lease that does not exist (KeepAlive answers TTL 0 instead).</summary>
    public static readonly EtcdError LeaseNotFound = new(StatusCode.NotFound, "etcdserver: requested lease not found");

    /// <summary>A LeaseGrant with an explicit ID that is already in use.</summary>
    public static readonly EtcdError LeaseExists = new(StatusCode.FailedPrecondition, "etcdserver: lease already exists");

    /// <summary>A LeaseGrant above <see cref="MaxLeaseTtlSeconds"/>.</summary>
    public static readonly EtcdError LeaseTtlTooLarge = new(StatusCode.OutOfRange, "etcdserver: too large lease TTL");

    /// <summary>A MemberAdd with an ID already in the cluster.</summary>
    public static readonly EtcdError MemberExists = new(StatusCode.FailedPrecondition, "etcdserver: member ID already exist");

    /// <summary>A MemberAdd or MemberUpdate with peer URLs another member already uses.</summary>
    public static readonly EtcdError PeerUrlExists = new(StatusCode.FailedPrecondition, "etcdserver: Peer URLs already exists");

    /// <summary>A reconfiguration that would leave too few started members for a quorum.</summary>
    public static readonly EtcdError MemberNotEnoughStarted = new(StatusCode.FailedPrecondition, "etcdserver: re-configuration failed due to not enough started members");

    /// <summary>Member URLs that do not parse.</summary>
    public static readonly EtcdError MemberBadUrls = new(StatusCode.InvalidArgument, "etcdserver: given member URLs are invalid");

    /// <summary>A member operation naming an unknown member ID.</summary>
    public static readonly EtcdError MemberNotFound = new(StatusCode.NotFound, "etcdserver: member not found");

    /// <summary>A MemberPromote of a voting member.</summary>
    public static readonly EtcdError MemberNotLearner = new(StatusCode.FailedPrecondition, "etcdserver: can only promote a learner member");

    /// <summary>A MemberPromote of a learner whose log lags the leader's.</summary>
    public static readonly EtcdError LearnerNotReady = new(StatusCode.FailedPrecondition, "etcdserver: can only promote a learner member which is in sync with leader");

    /// <summary>A MemberAdd of a learner when the learner limit is reached.</summary>
    public static readonly EtcdError TooManyLearners = new(StatusCode.FailedPrecondition, "etcdserver: too many learner members in cluster");

    /// <summary>A request larger than <see cref="MaxRequestBytes"/>.</summary>
    public static readonly EtcdError RequestTooLarge = new(StatusCode.InvalidArgument, "etcdserver: request is too large");

    /// <summary>Back-pressure: the applied index lags the committed index too far.</summary>
    public static readonly EtcdError TooManyRequests = new(StatusCode.ResourceExhausted, "etcdserver: too many requests");

    /// <summary>The request needs a permission the caller lacks. etcdctl endpoint health also treats this as healthy.</summary>
    public static readonly EtcdError PermissionDenied = new(StatusCode.PermissionDenied, "etcdserver: permission denied");

    /// <summary>A request with an unknown or expired auth token.</summary>
    public static readonly EtcdError InvalidAuthToken = new(StatusCode.Unauthenticated, "etcdserver: invalid auth token");

    /// <summary>Authenticate with a wrong user or password.</summary>
    public static readonly EtcdError AuthFailed = new(StatusCode.InvalidArgument, "etcdserver: authentication failed, invalid user ID or password");

    /// <summary>
    /// Authenticate with a password for a user added with <c>--no-password</c> (a certificate user). etcd 3.4 has no
    /// gRPC mapping for this error, so it reaches clients as code Unknown with the auth store's own text (no
    /// "etcdserver: " prefix, hence not in <see cref="All"/>).
    /// </summary>
    public static readonly EtcdError NoPasswordUser = new(StatusCode.Unknown, "auth: authentication failed, password was given for no password user");

    /// <summary>An auth call while authentication is disabled.</summary>
    public static readonly EtcdError AuthNotEnabled = new(StatusCode.FailedPrecondition, "etcdserver: authentication is not enabled");

    /// <summary>The member knows no leader, so it cannot propose or serve a linearizable read.</summary>
    public static readonly EtcdError NoLeader = new(StatusCode.Unavailable, "etcdserver: no leader");

    /// <summary>A leader-only operation (for example MoveLeader) sent to a follower.</summary>
    public static readonly EtcdError NotLeader = new(StatusCode.FailedPrecondition, "etcdserver: not leader");

    /// <summary>The leader changed while the request was in flight; its outcome is unknown to this member.</summary>
    public static readonly EtcdError LeaderChanged = new(StatusCode.Unavailable, "etcdserver: leader changed");

    /// <summary>The cluster version does not support the request yet.</summary>
    public static readonly EtcdError NotCapable = new(StatusCode.Unavailable, "etcdserver: not capable");

    /// <summary>The member is shutting down.</summary>
    public static readonly EtcdError Stopped = new(StatusCode.Unavailable, "etcdserver: server stopped");

    /// <summary>The request was not committed or applied within the request timeout.</summary>
    public static readonly EtcdError Timeout = new(StatusCode.Unavailable, "etcdserver: request timed out");

    /// <summary>Timed out, and the previous leader is believed to have failed.</summary>
    public static readonly EtcdError TimeoutDueToLeaderFail = new(StatusCode.Unavailable, "etcdserver: request timed out, possibly due to previous leader failure");

    /// <summary>Timed out, and the connection to the leader is believed lost.</summary>
    public static readonly EtcdError TimeoutDueToConnectionLost = new(StatusCode.Unavailable, "etcdserver: request timed out, possibly due to connection lost");

    /// <summary>A reconfiguration refused because the cluster is not healthy enough to survive it.</summary>
    public static readonly EtcdError Unhealthy = new(StatusCode.Unavailable, "etcdserver: unhealthy cluster");

    /// <summary>The CORRUPT alarm is raised: member states diverged.</summary>
    public static readonly EtcdError Corrupt = new(StatusCode.DataLoss, "etcdserver: corrupt cluster");

    /// <summary>A request a learner cannot serve (learners only serve serializable reads and status).</summary>
    public static readonly EtcdError NotSupportedForLearner = new(StatusCode.Unavailable, "etcdserver: rpc not supported for learner");

    /// <summary>A MoveLeader to a member that cannot become leader.</summary>
    public static readonly EtcdError BadLeaderTransferee = new(StatusCode.FailedPrecondition, "etcdserver: bad leader transferee");

    /// <summary>Every error above, for lookups by message text (as clients do) and for tests.</summary>
    public static IReadOnlyList<EtcdError> All { get; } =
    [
        KeyNotProvided, KeyNotFound, ValueProvided, LeaseProvided, TtlZero, TooManyOperations, DuplicateKey,
        Compacted, FutureRevision, NoSpace, LeaseNotFound, LeaseExists, LeaseTtlTooLarge,
        MemberExists, PeerUrlExists, MemberNotEnoughStarted, MemberBadUrls, MemberNotFound, MemberNotLearner,
        LearnerNotReady, TooManyLearners, RequestTooLarge, TooManyRequests, PermissionDenied, InvalidAuthToken,
        AuthFailed, AuthNotEnabled, NoLeader, NotLeader, LeaderChanged, NotCapable, Stopped, Timeout,
        TimeoutDueToLeaderFail, TimeoutDueToConnectionLost, Unhealthy, Corrupt, NotSupportedForLearner,
        BadLeaderTransferee,
    ];

    /// <summary>
    /// Checks the table's own laws: every message is distinct (clients map text back to an error, so a duplicate would
    /// be ambiguous), carries etcd's prefix, and no error uses OK; the limits keep their relations.
    /// </summary>
    public static void AssertInvariants()
    {
        for (int i = 0; i < All.Count; i++)
        {
            EtcdError error = All[i];
            Invariant.Check(error.Code != StatusCode.OK, error, static e => $"{e.Message} must not use status OK");
            Invariant.Check(error.Message.StartsWith("etcdserver: ", StringComparison.Ordinal), error, static e => $"'{e.Message}' lacks the etcdserver: prefix");
            for (int j = i + 1; j < All.Count; j++)
            {
                Invariant.Check(!string.Equals(error.Message, All[j].Message, StringComparison.Ordinal), error, static e => $"'{e.Message}' is listed twice");
            }
        }

        Invariant.Check(MaxReceiveMessageBytes > MaxRequestBytes, "the gRPC receive limit must exceed the request limit");
        Invariant.Check(MinimumLeaseTtlSeconds(DefaultElectionTimeoutMs) == 2, "the default minimum lease TTL must be 2 s, as etcd's");
    }

    /// <summary>The etcd error whose exact text is <paramref name="message"/>, or null: how etcd clients map a status back to an error.</summary>
    /// <param name="message">A gRPC status detail.</param>
    public static EtcdError? FromMessage(string message)
    {
        // A linear scan over ~40 entries: no string-keyed hash collection decides anything, and this is not a hot path.
        foreach (EtcdError error in All)
        {
            if (string.Equals(error.Message, message, StringComparison.Ordinal))
            {
                return error;
            }
        }

        return null;
    }
}
