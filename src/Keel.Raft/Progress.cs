using Keel.Core;

namespace Keel.Raft;

/// <summary>How the leader replicates to one follower (etcd <c>tracker/state.go</c>).</summary>
public enum ProgressState
{
    /// <summary>The follower's log position is unknown: one append at a time until it acks.</summary>
    Probe,

    /// <summary>Steady state: appends are pipelined optimistically, bounded by <see cref="Inflights"/>.</summary>
    Replicate,

    /// <summary>The follower needs entries that were compacted: a snapshot is being sent.</summary>
    Snapshot,
}

/// <summary>
/// The leader's view of one follower (etcd <c>tracker/progress.go</c>): what it is known to hold
/// (<see cref="Match"/>), what to send next (<see cref="Next"/>), and the flow-control state.
/// </summary>
public sealed class Progress
{
    internal Progress(ulong next, int maxInflightMessages, long maxInflightBytes, bool isLearner)
    {
        Next = next;
        Inflights = new Inflights(maxInflightMessages, maxInflightBytes);
        IsLearner = isLearner;
    }

    /// <summary>The highest index known to be replicated (and durable) on the follower.</summary>
    public ulong Match { get; internal set; }

    /// <summary>The next index to send.</summary>
    public ulong Next { get; internal set; }

    /// <summary>Flow-control state.</summary>
    public ProgressState State { get; private set; }

    /// <summary>In <see cref="ProgressState.Snapshot"/>: the index of the snapshot being sent.</summary>
    public ulong PendingSnapshot { get; private set; }

    /// <summary>True when the follower was heard from since the last check-quorum round.</summary>
    public bool RecentActive { get; internal set; }

    /// <summary>The leader's tick count when the follower was last heard from.</summary>
    public long LastActiveTick { get; internal set; }

    /// <summary>In <see cref="ProgressState.Probe"/>: an append was sent and its answer is awaited.</summary>
    public bool ProbeSent { get; internal set; }

    /// <summary>True for a non-voting member.</summary>
    public bool IsLearner { get; internal set; }

    /// <summary>Appends in flight (Replicate state).</summary>
    public Inflights Inflights { get; }

    /// <summary>Highest heartbeat round the follower acknowledged in the current term (ReadIndex and lease).</summary>
    public ulong AckedRound { get; internal set; }

    internal SnapshotTransfer? Transfer { get; set; }

    /// <summary>True when no append may be sent now.</summary>
    public bool IsPaused => State switch
    {
        ProgressState.Probe => ProbeSent,
        ProgressState.Replicate => Inflights.Full,
        _ => true,
    };

    private void ResetState(ProgressState state)
    {
        ProbeSent = false;
        PendingSnapshot = 0;
        State = state;
        Inflights.Reset();
        Transfer = null;
    }

    /// <summary>Back to probing from just after <see cref="Match"/> (or after a snapshot that was sent).</summary>
    internal void BecomeProbe()
    {
        if (State == ProgressState.Snapshot)
        {
            var pending = PendingSnapshot;
            ResetState(ProgressState.Probe);
            Next = Math.Max(Match + 1, pending + 1);
        }
        else
        {
            ResetState(ProgressState.Probe);
            Next = Match + 1;
        }
    }

    /// <summary>
    /// Gives up a snapshot transfer that cannot go on (its stored image is gone): probe again from just after
    /// <see cref="Match"/>, which finds the log compacted there and starts the newest snapshot.
    /// </summary>
    internal void AbandonSnapshot()
    {
        ResetState(ProgressState.Probe);
        Next = Match + 1;
    }

    /// <summary>Start pipelining from just after <see cref="Match"/>.</summary>
    internal void BecomeReplicate()
    {
        ResetState(ProgressState.Replicate);
        Next = Match + 1;
    }

    /// <summary>Start sending the snapshot at <paramref name="snapshotIndex"/>.</summary>
    internal void BecomeSnapshot(ulong snapshotIndex)
    {
        ResetState(ProgressState.Snapshot);
        PendingSnapshot = snapshotIndex;
        Next = snapshotIndex + 1;
    }

    /// <summary>Records an append of <paramref name="entryCount"/> entries ending at <paramref name="lastIndex"/>.</summary>
    internal void SentEntries(int entryCount, long bytes, ulong lastIndex)
    {
        switch (State)
        {
            case ProgressState.Replicate:
                if (entryCount > 0)
                {
                    Next = lastIndex + 1;
                    Inflights.Add(lastIndex, bytes);
                }
                break;
            case ProgressState.Probe:
                ProbeSent = true;
                break;
        }
    }

    /// <summary>An ack up to <paramref name="index"/>: raises Match (never lowers it).</summary>
    /// <returns>True when Match increased.</returns>
    internal bool MaybeUpdate(ulong index)
    {
        var updated = false;
        if (Match < index)
        {
            Match = index;
            updated = true;
            ProbeSent = false;
        }
        Next = Math.Max(Next, index + 1);
        return updated;
    }

    /// <summary>
    /// A rejection of the append after <paramref name="rejected"/>; <paramref name="matchHint"/> is the follower's (or
    /// the leader's refined) guess of the last matching index. etcd <c>MaybeDecrTo</c>: stale rejections are ignored.
    /// </summary>
    /// <returns>True when Next moved back and a new probe should be sent.</returns>
    internal bool MaybeDecreaseTo(ulong rejected, ulong matchHint)
    {
        if (State == ProgressState.Replicate)
        {
            if (rejected <= Match) return false; // stale: it concerns entries already acked
            Next = Match + 1;
            return true;
        }
        if (Next == 0 || Next - 1 != rejected) return false; // stale: we already probed elsewhere
        Next = Math.Max(Math.Min(rejected, matchHint + 1), Match + 1);
        ProbeSent = false;
        return true;
    }

    /// <summary>Checks Match/Next and the state.</summary>
    public void AssertInvariants()
    {
        Invariant.Check(Next > Match, "progress Next must be above Match");
        if (State != ProgressState.Replicate) Invariant.Check(Inflights.Count == 0, "only a replicating follower has appends in flight");
        Inflights.AssertInvariants();
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{State} match={Match} next={Next}" + (IsLearner ? " learner" : "") +
        (State == ProgressState.Snapshot ? $" pendingSnap={PendingSnapshot}" : "") + (IsPaused ? " paused" : "") +
        (Inflights.Count > 0 ? $" inflight={Inflights.Count}" : "");
}

/// <summary>The state of a chunked snapshot transfer to one follower.</summary>
internal sealed class SnapshotTransfer(Snapshot snapshot)
{
    public Snapshot Snapshot { get; } = snapshot;

    /// <summary>This transfer's reader of the image (its own position and checksum state).</summary>
    public ISnapshotReader Reader { get; } = snapshot.OpenReader();

    /// <summary>Bytes the follower confirmed.</summary>
    public ulong AckedOffset { get; set; }

    /// <summary>Tick at which the last chunk was sent, -1 when none is outstanding.</summary>
    public long ChunkSentAtTick { get; set; } = -1;
}
