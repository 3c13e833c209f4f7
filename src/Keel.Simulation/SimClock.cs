namespace Keel.Simulation;

/// <summary>How a node's clock differs from true time.</summary>
/// <param name="WallOffsetMs">Initial wall-clock offset from true time.</param>
/// <param name="DriftPpm">Rate error in parts per million (positive = runs fast); affects wall and monotonic time.</param>
/// <param name="EpochUnixMs">The Unix time at which the simulation starts, so wall clocks read like real dates.</param>
public sealed record ClockOptions(long WallOffsetMs = 0, double DriftPpm = 0, long EpochUnixMs = 1_767_225_600_000 /* 2026-01-01 */);

/// <summary>
/// A node's clocks. Wall time = true time x (1 + drift) + offset + steps: it can jump backwards (an NTP correction, a
/// leap second smeared badly). Monotonic time = true time x (1 + drift): it drifts but never jumps. Code that measures
/// durations must use the monotonic one, which is exactly the lesson of the seed's Lease section.
/// </summary>
public sealed class SimClock
{
    private readonly Simulation _simulation;
    private long _wallStepUs;

    internal SimClock(Simulation simulation, ClockOptions options)
    {
        _simulation = simulation;
        DriftPpm = options.DriftPpm;
        _wallStepUs = options.WallOffsetMs * 1000;
        EpochUnixUs = options.EpochUnixMs * 1000;
    }

    /// <summary>Rate error in parts per million.</summary>
    public double DriftPpm { get; }

    /// <summary>The Unix time, in microseconds, at true time zero.</summary>
    public long EpochUnixUs { get; }

    /// <summary>Total wall-clock steps and initial offset applied, in microseconds.</summary>
    public long WallOffsetUs => _wallStepUs;

    /// <summary>How many steps were applied.</summary>
    public int StepCount { get; private set; }

    /// <summary>Monotonic time in microseconds since the simulation started.</summary>
    public long MonotonicUs => _simulation.NowUs + (long)(_simulation.NowUs * DriftPpm / 1_000_000);

    /// <summary>Wall time in Unix microseconds.</summary>
    public long WallUs => EpochUnixUs + MonotonicUs + _wallStepUs;

    /// <summary>Steps the wall clock by <paramref name="deltaMs"/> (negative = backwards), as an NTP correction does.</summary>
    public void Step(long deltaMs)
    {
        _wallStepUs += deltaMs * 1000;
        StepCount++;
    }

    /// <summary>The true duration that this clock measures as <paramref name="localUs"/>.</summary>
    public long TrueDurationUs(long localUs) => DriftPpm == 0 ? localUs : (long)Math.Ceiling(localUs / (1 + DriftPpm / 1_000_000));
}
