namespace Keel.Heartbeat;

/// <summary>
/// Settings of <see cref="PhiAccrualFailureDetector"/>. The defaults are Akka's
/// (akka-remote reference.conf, <c>akka.remote.watch-failure-detector</c> / cluster failure detector): threshold 8,
/// 1000 samples, minimum standard deviation 100 ms, acceptable heartbeat pause 3 s, first heartbeat estimate 1 s.
/// </summary>
/// <remarks>
/// <see cref="MinIntervalMs"/> and <see cref="MinIntervalFractionOfMean"/> are Keel's additions against duplicate
/// heartbeats shrinking the mean (scylladb/scylladb#2861); set both to 0 to reproduce Akka exactly.
/// </remarks>
public sealed record PhiAccrualOptions
{
    /// <summary>Phi at or above which the peer is considered unavailable. Phi 8 means a false-positive probability of about 10^-8 under the model.</summary>
    public double Threshold { get; init; } = 8.0;

    /// <summary>How many of the most recent intervals the statistics are computed over.</summary>
    public int MaxSampleSize { get; init; } = 1000;

    /// <summary>Floor for the standard deviation: with perfectly regular heartbeats phi would otherwise jump to infinity on the slightest delay.</summary>
    public double MinStdDeviationMs { get; init; } = 100;

    /// <summary>Silence tolerated on top of the mean interval before suspicion rises: absorbs GC pauses and network hiccups.</summary>
    public long AcceptableHeartbeatPauseMs { get; init; } = 3000;

    /// <summary>The interval assumed before any has been measured; the history starts with two intervals of this mean -/+ a quarter of it.</summary>
    public long FirstHeartbeatEstimateMs { get; init; } = 1000;

    /// <summary>Intervals shorter than this are not recorded (a duplicate delivered at the same millisecond has interval 0).</summary>
    public long MinIntervalMs { get; init; } = 1;

    /// <summary>
    /// Intervals shorter than this fraction of the current mean are not recorded: a periodic sender never produces
    /// them, duplicates and bursts do. The arrival still counts as proof of life.
    /// </summary>
    public double MinIntervalFractionOfMean { get; init; } = 0.1;

    /// <summary>
    /// Intervals longer than this are not recorded (0 = record all, as Akka does). A gap that long is a pause or an
    /// outage, which <see cref="AcceptableHeartbeatPauseMs"/> already budgets for; recording it too would count the
    /// pause twice, inflate the standard deviation and delay the detection of a real crash for the whole window.
    /// Cassandra's failure detector drops intervals above its MAX_INTERVAL for the same reason.
    /// </summary>
    public long MaxRecordedIntervalMs { get; init; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first setting that is out of range.</summary>
    public void Validate()
    {
        if (!(Threshold > 0) || double.IsInfinity(Threshold))
            throw new ArgumentOutOfRangeException(nameof(Threshold), Threshold, "The phi threshold must be a positive finite number (Akka's default is 8).");
        if (MaxSampleSize < 1 || MaxSampleSize > HeartbeatHistory.MaxCapacity)
            throw new ArgumentOutOfRangeException(nameof(MaxSampleSize), MaxSampleSize, $"The sample size must be between 1 and {HeartbeatHistory.MaxCapacity}.");
        if (!(MinStdDeviationMs > 0) || double.IsInfinity(MinStdDeviationMs))
            throw new ArgumentOutOfRangeException(nameof(MinStdDeviationMs), MinStdDeviationMs, "The minimum standard deviation must be positive and finite, or phi divides by zero.");
        if (AcceptableHeartbeatPauseMs < 0 || AcceptableHeartbeatPauseMs > HeartbeatHistory.MaxIntervalMs)
            throw new ArgumentOutOfRangeException(nameof(AcceptableHeartbeatPauseMs), AcceptableHeartbeatPauseMs, $"The acceptable heartbeat pause must be between 0 and {HeartbeatHistory.MaxIntervalMs} ms.");
        if (FirstHeartbeatEstimateMs < 1 || FirstHeartbeatEstimateMs > HeartbeatHistory.MaxIntervalMs / 2)
            throw new ArgumentOutOfRangeException(nameof(FirstHeartbeatEstimateMs), FirstHeartbeatEstimateMs, $"The first heartbeat estimate must be between 1 and {HeartbeatHistory.MaxIntervalMs / 2} ms.");
        if (MinIntervalMs < 0 || MinIntervalMs > HeartbeatHistory.MaxIntervalMs)
            throw new ArgumentOutOfRangeException(nameof(MinIntervalMs), MinIntervalMs, $"The minimum interval must be between 0 and {HeartbeatHistory.MaxIntervalMs} ms.");
        if (!(MinIntervalFractionOfMean >= 0 && MinIntervalFractionOfMean < 1))
            throw new ArgumentOutOfRangeException(nameof(MinIntervalFractionOfMean), MinIntervalFractionOfMean, "The minimum interval fraction of the mean must be in [0, 1).");
        if (MaxRecordedIntervalMs < 0 || (MaxRecordedIntervalMs > 0 && MaxRecordedIntervalMs <= MinIntervalMs))
            throw new ArgumentOutOfRangeException(nameof(MaxRecordedIntervalMs), MaxRecordedIntervalMs, "The maximum recorded interval must be 0 (record all) or above the minimum interval.");
    }
}
