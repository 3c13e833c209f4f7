namespace Keel.Heartbeat;

/// <summary>
/// Settings of <see cref="LocalHealth"/>. The score range 0..7 is Lifeguard's (hashicorp/memberlist
/// <c>awareness.go</c>, <c>AwarenessMaxMultiplier = 8</c>); the pause threshold is Keel's, kept well below Cassandra's
/// 5 s (<c>cassandra.max_local_pause_in_ms</c>) because with Akka's defaults a peer's phi reaches 8 after about 4.5 s.
/// </summary>
public sealed record LocalHealthOptions
{
    /// <summary>The highest score; timeouts are multiplied by at most <c>MaxScore + 1</c>.</summary>
    public int MaxScore { get; init; } = 7;

    /// <summary>A tick firing at least this late counts as a slow round and raises the score by one.</summary>
    public long LateThresholdMs { get; init; } = 200;

    /// <summary>
    /// A tick firing at least this late means this process was paused (GC, VM steal, swapping): the paused span is
    /// remembered so peers' silence during it is excused instead of convicted.
    /// </summary>
    public long PauseThresholdMs { get; init; } = 1000;

    /// <summary>
    /// After a pause, worsening verdicts are held back this long, giving the event loop time to drain the heartbeats
    /// queued during the pause (Cassandra's <c>FailureDetector.interpret</c> holds back for 5 s). 0 relies on the
    /// excused silence alone.
    /// </summary>
    public long ConvictionGraceAfterPauseMs { get; init; } = 0;

    /// <summary>How many recent pauses are remembered for excusing silence; older ones are forgotten.</summary>
    public int RememberedPauses { get; init; } = 8;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first setting that is out of range.</summary>
    public void Validate()
    {
        if (MaxScore < 0 || MaxScore > 63)
            throw new ArgumentOutOfRangeException(nameof(MaxScore), MaxScore, "The maximum local health score must be between 0 and 63 (Lifeguard uses 7).");
        if (LateThresholdMs < 1)
            throw new ArgumentOutOfRangeException(nameof(LateThresholdMs), LateThresholdMs, "The late-tick threshold must be at least 1 ms.");
        if (PauseThresholdMs < LateThresholdMs)
            throw new ArgumentOutOfRangeException(nameof(PauseThresholdMs), PauseThresholdMs, $"The pause threshold must be at least the late-tick threshold ({LateThresholdMs} ms).");
        if (ConvictionGraceAfterPauseMs < 0)
            throw new ArgumentOutOfRangeException(nameof(ConvictionGraceAfterPauseMs), ConvictionGraceAfterPauseMs, "The conviction grace after a pause cannot be negative.");
        if (RememberedPauses < 1 || RememberedPauses > 1024)
            throw new ArgumentOutOfRangeException(nameof(RememberedPauses), RememberedPauses, "Between 1 and 1024 pauses can be remembered.");
    }
}

/// <summary>How a tick of this node's own timer went, as judged by <see cref="LocalHealth.OnTick"/>.</summary>
public enum LocalTickOutcome
{
    /// <summary>Fired on time (or less than <see cref="LocalHealthOptions.LateThresholdMs"/> late): the score falls by one.</summary>
    Timely,

    /// <summary>Fired noticeably late: the score rises by one.</summary>
    Late,

    /// <summary>Fired so late that the process must have been paused: the score rises and the paused span is remembered.</summary>
    Paused,
}
