namespace Keel.HybridClock;

/// <summary>Configuration of a <see cref="HybridLogicalClock"/>. Immutable once built; <see cref="Validate"/> checks the ranges.</summary>
/// <remarks>
/// Defaults follow CockroachDB (<c>pkg/util/hlc</c>, <c>--max-offset</c> = 500 ms) for the offset, and Spanner's
/// TrueTime for the idea of an explicit uncertainty, which here defaults to the same 500 ms because an NTP-synchronised
/// fleet cannot promise better without measuring it.
/// </remarks>
public sealed class HybridClockOptions
{
    private readonly long? _maxUncertaintyMs;

    /// <summary>The default options: 500 ms max offset and uncertainty, upper-bound persistence on with a 1000 ms lead.</summary>
    public static HybridClockOptions Default { get; } = new();

    /// <summary>
    /// The largest amount a remote timestamp's physical part may be ahead of the local wall clock. A remote timestamp
    /// further ahead is rejected and never adopted, so one node with a clock running into the future cannot drag the
    /// whole cluster's timestamps with it. Default 500 ms, as CockroachDB's <c>--max-offset</c>.
    /// </summary>
    public long MaxOffsetMs { get; init; } = 500;

    /// <summary>
    /// The bound on how far the local wall clock may be from true time, used by <see cref="HybridLogicalClock.Interval"/> and
    /// <see cref="HybridLogicalClock.CommitWaitMs"/> (TrueTime's epsilon). Defaults to <see cref="MaxOffsetMs"/>.
    /// </summary>
    public long MaxUncertaintyMs
    {
        get => _maxUncertaintyMs ?? MaxOffsetMs;
        init => _maxUncertaintyMs = value;
    }

    /// <summary>
    /// Whether the clock asks its driver to persist a wall-time upper bound (CockroachDB's "wall time upper bound"),
    /// so that a restart never issues a timestamp at or below one issued before it. Default true.
    /// </summary>
    public bool PersistUpperBound { get; init; } = true;

    /// <summary>
    /// How far ahead of the physical time just issued a newly requested upper bound is placed. A persist is needed
    /// about once per this many milliseconds of physical time, and after a restart the driver waits up to this long for
    /// the wall clock to pass the bound. Default 1000 ms.
    /// </summary>
    public long UpperBoundLeadMs { get; init; } = 1000;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when a value is out of range.</summary>
    public void Validate()
    {
        if (MaxOffsetMs <= 0 || MaxOffsetMs > HybridTimestamp.MaxPhysicalMs)
            throw new ArgumentOutOfRangeException(nameof(MaxOffsetMs), MaxOffsetMs, "Max offset must be positive.");
        if (MaxUncertaintyMs < 0 || MaxUncertaintyMs > HybridTimestamp.MaxPhysicalMs)
            throw new ArgumentOutOfRangeException(nameof(MaxUncertaintyMs), MaxUncertaintyMs, "Max uncertainty must be non-negative.");
        if (UpperBoundLeadMs <= 0 || UpperBoundLeadMs > HybridTimestamp.MaxPhysicalMs)
            throw new ArgumentOutOfRangeException(nameof(UpperBoundLeadMs), UpperBoundLeadMs, "Upper bound lead must be positive.");
    }
}
