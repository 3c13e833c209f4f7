using Keel.Core;
using Keel.Mvcc;

namespace Keel.Node;

// Requests that find no leader wait for one (etcd 3.4 parks them the same way: a proposal blocks in raft's stepWait
// until a leader is known, a ReadIndex waits for its answer), so a client whose member is between leaders sees a late
// success rather than a fast "no leader". Nothing is proposed or read while a request waits, so a request that gives up
// is refused definitely; one that proceeds goes through the normal path again (every check repeated), once.
public sealed partial class KeelNode
{
    // Command is set for a write, Read for a linearizable read; UntilMs is the node's monotonic time at which it gives up.
    private readonly record struct AwaitingLeader(ulong RequestId, long UntilMs, KvCommand? Command, string? IdempotencyKey, RangeRequest? Read);

    private readonly List<AwaitingLeader> _awaitingLeader = [];
    private bool _resumingAwaitingLeader;

    /// <summary>
    /// Use as the leader-wait bound of <see cref="Submit(ulong, KvCommand, string?, long)"/> and
    /// <see cref="Read(ulong, RangeRequest, bool, long)"/> when the caller has no deadline of its own: the request waits
    /// at most <see cref="KeelNodeOptions.LeaderWaitMs"/>.
    /// </summary>
    public const long NoCallerDeadline = long.MaxValue;

    /// <summary>Requests waiting for a leader right now (bounded by <see cref="KeelNodeOptions.MaxRequestsAwaitingLeader"/>).</summary>
    public int RequestsAwaitingLeader => _awaitingLeader.Count;

    /// <summary>Requests that waited for a leader and went on when one was known (since start).</summary>
    public long RequestsResumedAfterLeaderWait { get; private set; }

    /// <summary>Requests that waited for a leader and failed with "no leader" because none was known in time (since start).</summary>
    public long RequestsExpiredAwaitingLeader { get; private set; }

    // A leader handing over leadership refuses proposals until the transfer ends: wait for it like for an election.
    private bool HasKnownLeader => IsLeader ? _raft.LeadTransferee == 0 : _raft.Role == Keel.Raft.RaftRole.Follower && _raft.Leader != 0;

    /// <summary>The moment a request that finds no leader gives up: the caller's bound or the node's, whichever is first.</summary>
    private long LeaderWaitUntil(long callerUntilMs)
    {
        var nowMs = _nowMs == long.MinValue ? 0 : _nowMs;
        if (_options.LeaderWaitMs <= 0) return nowMs;
        return Math.Min(callerUntilMs, nowMs + _options.LeaderWaitMs);
    }

    /// <summary>
    /// Parks a request that found no leader, or refuses it: "no leader" when its bound has passed (or waiting is off),
    /// "too many requests" when <see cref="KeelNodeOptions.MaxRequestsAwaitingLeader"/> requests already wait.
    /// </summary>
    private void AwaitLeaderOrRefuse(AwaitingLeader request)
    {
        var nowMs = _nowMs == long.MinValue ? 0 : _nowMs;
        if (request.UntilMs <= nowMs)
        {
            Respond(KvResult.Failed(request.RequestId, KeelError.NoLeader));
            return;
        }
        if (_awaitingLeader.Count >= _options.MaxRequestsAwaitingLeader)
        {
            Respond(KvResult.Failed(request.RequestId, KeelError.TooManyAwaitingLeader));
            return;
        }
        _awaitingLeader.Add(request);
    }

    /// <summary>
    /// Once a leader is known, every waiting request goes on in arrival order through the normal path (a write is
    /// proposed or forwarded, a read asks for a read index); called when a Ready has been handled, never inside one.
    /// </summary>
    private void ResumeAwaitingLeader()
    {
        if (_awaitingLeader.Count == 0 || _resumingAwaitingLeader || !HasKnownLeader) return;
        _resumingAwaitingLeader = true;
        try
        {
            var resumed = _awaitingLeader.ToArray();
            _awaitingLeader.Clear();
            RequestsResumedAfterLeaderWait += resumed.Length;
            BeginBatch();
            foreach (var request in resumed)
            {
                if (request.Read is { } read) Read(request.RequestId, read, linearizable: true, request.UntilMs);
                else Submit(request.RequestId, request.Command!, request.IdempotencyKey, request.UntilMs);
            }
            EndBatch();
        }
        finally
        {
            _resumingAwaitingLeader = false;
        }
    }

    private void ExpireAwaitingLeader()
    {
        if (_awaitingLeader.Count == 0) return;
        var kept = 0;
        for (var i = 0; i < _awaitingLeader.Count; i++)
        {
            var request = _awaitingLeader[i];
            if (request.UntilMs <= _nowMs)
            {
                RequestsExpiredAwaitingLeader++;
                Respond(KvResult.Failed(request.RequestId, KeelError.NoLeader));
            }
            else
            {
                _awaitingLeader[kept++] = request;
            }
        }
        _awaitingLeader.RemoveRange(kept, _awaitingLeader.Count - kept);
    }

    private void AssertAwaitingLeaderInvariants() =>
        Invariant.Check(_awaitingLeader.Count <= _options.MaxRequestsAwaitingLeader, "requests waiting for a leader are bounded");
}
