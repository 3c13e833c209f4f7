namespace Keel.Server.Observability;

/// <summary>
/// Counters the node host keeps for metrics and the dashboard, updated lock-free from the loop, the gRPC handlers and
/// the disk; read from any thread. One instance per server, so several servers in one process never mix.
/// </summary>
public sealed class NodeHostStatistics
{
    private long _leaderChanges;
    private long _writesFailed;
    private long _idempotentReplays;
    private long _idempotencyConflicts;
    private long _loopBusyTicks;
    private long _loopBatches;
    private long _loopItems;
    private long _slowBatches;
    private long _readsServedFromView;

    /// <summary>Called with every file or directory sync's duration in seconds (on the thread that synced).</summary>
    public event Action<double>? FsyncObserved;

    /// <summary>Called after each loop batch with its duration in seconds (on the loop thread).</summary>
    public event Action<double>? BatchObserved;

    /// <summary>Times the leader this member knows changed to another member (etcd counts the same).</summary>
    public long LeaderChanges => Interlocked.Read(ref _leaderChanges);

    /// <summary>Writes answered with an error (etcd's <c>proposals_failed_total</c>).</summary>
    public long WritesFailed => Interlocked.Read(ref _writesFailed);

    /// <summary>Writes answered from the idempotency table (a retry of a write that already applied).</summary>
    public long IdempotentReplays => Interlocked.Read(ref _idempotentReplays);

    /// <summary>Writes refused because their idempotency key was in flight or used for another command.</summary>
    public long IdempotencyConflicts => Interlocked.Read(ref _idempotencyConflicts);

    /// <summary>Stopwatch ticks the loop spent running batches (utilization = its growth over wall time).</summary>
    public long LoopBusyTicks => Interlocked.Read(ref _loopBusyTicks);

    /// <summary>Batches the loop ran.</summary>
    public long LoopBatches => Interlocked.Read(ref _loopBatches);

    /// <summary>Work items the loop ran.</summary>
    public long LoopItems => Interlocked.Read(ref _loopItems);

    /// <summary>Batches that took 100 ms or more (etcd's <c>slow_apply_total</c> threshold).</summary>
    public long SlowBatches => Interlocked.Read(ref _slowBatches);

    /// <summary>Serializable reads served on the RPC's thread from the loop's latest store view, not queued for the loop.</summary>
    public long ReadsServedFromView => Interlocked.Read(ref _readsServedFromView);

    internal void ReadServedFromView() => Interlocked.Increment(ref _readsServedFromView);

    internal void LeaderChanged() => Interlocked.Increment(ref _leaderChanges);

    internal void RecordFsync(double seconds) => FsyncObserved?.Invoke(seconds);

    internal void RecordBatch(int items, long elapsedTicks)
    {
        Interlocked.Add(ref _loopBusyTicks, elapsedTicks);
        Interlocked.Increment(ref _loopBatches);
        Interlocked.Add(ref _loopItems, items);
        var seconds = (double)elapsedTicks / System.Diagnostics.Stopwatch.Frequency;
        if (seconds >= 0.1) Interlocked.Increment(ref _slowBatches);
        BatchObserved?.Invoke(seconds);
    }

    /// <summary>Counts a write's outcome: failures, idempotent replays and idempotency-key conflicts.</summary>
    internal async Task<Keel.Node.KvResult> CountWrite(Task<Keel.Node.KvResult> pending)
    {
        var result = await pending.ConfigureAwait(false);
        if (result.IsIdempotentReplay) Interlocked.Increment(ref _idempotentReplays);
        if (result.IsError)
        {
            Interlocked.Increment(ref _writesFailed);
            if (result.Error?.Code is Keel.Node.KeelErrorCode.IdempotencyKeyInFlight or Keel.Node.KeelErrorCode.IdempotencyKeyMismatch)
                Interlocked.Increment(ref _idempotencyConflicts);
        }
        return result;
    }
}
