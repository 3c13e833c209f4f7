using System.Diagnostics;
using System.Net.Sockets;
using Grpc.Core;
using Grpc.Net.Client;

namespace Keel.Client;

/// <summary>
/// One gRPC channel per member and the choice of member for each attempt: round-robin over the members not recently
/// failed, so load is spread and a dead or leaderless member is passed over for a while (1 s, doubling per failure in
/// a row up to 8 s) instead of being asked again at once.
/// </summary>
internal sealed class Endpoints : IDisposable
{
    private static readonly TimeSpan MinPenalty = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxPenalty = TimeSpan.FromSeconds(8);
    private readonly Member[] _members;
    private int _next = -1;

    public Endpoints(KeelClientOptions options)
    {
        _members = options.Endpoints.Select(url => new Member(url, GrpcChannel.ForAddress(url, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                ConnectTimeout = options.DialTimeout,
                EnableMultipleHttp2Connections = true,
                // Notices a member that vanished without closing its connections (power loss, SIGKILL behind NAT).
                KeepAlivePingDelay = TimeSpan.FromSeconds(10),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(5),
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            },
            DisposeHttpClient = true,
        }))).ToArray();
    }

    public int Count => _members.Length;

    public string Url(int index) => _members[index].Url;

    public CallInvoker Invoker(int index) => _members[index].Channel.CreateCallInvoker();

    /// <summary>The member for the next attempt: the next in turn that is not sitting out a penalty, else the one whose penalty ends first.</summary>
    public int Pick()
    {
        var start = Interlocked.Increment(ref _next);
        var now = Stopwatch.GetTimestamp();
        var best = -1;
        long bestUntil = long.MaxValue;
        for (var i = 0; i < _members.Length; i++)
        {
            var index = (int)((uint)(start + i) % (uint)_members.Length);
            var until = Volatile.Read(ref _members[index].PenaltyUntil);
            if (until <= now) return index;
            if (until < bestUntil) (best, bestUntil) = (index, until);
        }
        return best;
    }

    /// <summary>The member answered: it is no longer passed over.</summary>
    public void Succeeded(int index)
    {
        Volatile.Write(ref _members[index].PenaltyUntil, 0);
        Volatile.Write(ref _members[index].FailuresInARow, 0);
    }

    /// <summary>The member failed in a way another member may not: pass it over for a while.</summary>
    public void Failed(int index)
    {
        var failures = Math.Min(Interlocked.Increment(ref _members[index].FailuresInARow), 4);
        var penalty = TimeSpan.FromTicks(Math.Min(MaxPenalty.Ticks, MinPenalty.Ticks << (failures - 1)));
        Volatile.Write(ref _members[index].PenaltyUntil, Stopwatch.GetTimestamp() + (long)(penalty.TotalSeconds * Stopwatch.Frequency));
    }

    public void Dispose()
    {
        foreach (var member in _members) member.Channel.Dispose();
    }

    private sealed class Member(string url, GrpcChannel channel)
    {
        public readonly string Url = url;
        public readonly GrpcChannel Channel = channel;
        public long PenaltyUntil;
        public int FailuresInARow;
    }
}

/// <summary>How a failed attempt may be retried.</summary>
internal enum Retry
{
    /// <summary>Not at all: the answer is final (bad request, failed precondition, ...).</summary>
    Never,

    /// <summary>On another member: this one is down, has no leader, or is overloaded.</summary>
    OtherMember,
}

/// <summary>Which failures are worth another attempt, and which are safe to retry for a given call.</summary>
internal static class Failures
{
    /// <summary>
    /// Whether <paramref name="failure"/> may be retried for a call that is <paramref name="safeToRepeat"/> (a read,
    /// a write carrying an idempotency key, or a naturally idempotent recipe call). A call that is not safe to repeat is
    /// retried only when the server certainly did not act on it (refused for want of a leader, overloaded, or the
    /// connection was never made).
    /// </summary>
    public static Retry Classify(RpcException failure, bool safeToRepeat)
    {
        var detail = failure.Status.Detail ?? "";
        if (CertainlyNotApplied(failure)) return Retry.OtherMember;
        if (!safeToRepeat) return Retry.Never;
        return failure.StatusCode switch
        {
            StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal => Retry.OtherMember,
            // Our own key is still being applied on that member (an earlier attempt): ask again, it answers once done.
            StatusCode.Aborted => Retry.OtherMember,
            StatusCode.Unknown when detail.Contains("leader", StringComparison.Ordinal) => Retry.OtherMember,
            _ => Retry.Never,
        };
    }

    /// <summary>The server refused the call before acting on it, or it was never sent.</summary>
    public static bool CertainlyNotApplied(RpcException failure)
    {
        var detail = failure.Status.Detail ?? "";
        if (detail is "etcdserver: no leader" or "etcdserver: too many requests" or "etcdserver: not capable"
            or "etcdserver: rpc not supported for learner" or "etcdserver: server stopped")
            return true;
        // Refused at connect: nothing was sent.
        for (var e = failure.Status.DebugException; e is not null; e = e.InnerException)
            if (e is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable })
                return true;
        return false;
    }
}
