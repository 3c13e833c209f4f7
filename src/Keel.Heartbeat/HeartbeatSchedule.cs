using Keel.Core;

namespace Keel.Heartbeat;

/// <summary>Settings of <see cref="HeartbeatSchedule"/>.</summary>
public sealed record HeartbeatScheduleOptions
{
    /// <summary>The mean time between heartbeats sent (Akka and memberlist: 1 s).</summary>
    public long IntervalMs { get; init; } = 1000;

    /// <summary>
    /// Each delay is drawn uniformly from <c>IntervalMs * (1 -/+ JitterFraction)</c>: 0.1 spreads sends over a window
    /// 20% of the interval wide, the 10-20% commonly used. The mean stays <see cref="IntervalMs"/>, so the receivers'
    /// interval statistics are unbiased.
    /// </summary>
    public double JitterFraction { get; init; } = 0.1;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first setting that is out of range.</summary>
    public void Validate()
    {
        if (IntervalMs < 1 || IntervalMs > HeartbeatHistory.MaxIntervalMs)
            throw new ArgumentOutOfRangeException(nameof(IntervalMs), IntervalMs, $"The heartbeat interval must be between 1 and {HeartbeatHistory.MaxIntervalMs} ms.");
        if (!(JitterFraction >= 0 && JitterFraction <= 0.5))
            throw new ArgumentOutOfRangeException(nameof(JitterFraction), JitterFraction, "The jitter fraction must be between 0 and 0.5 of the interval.");
    }
}

/// <summary>
/// When to send the next heartbeat: every <see cref="HeartbeatScheduleOptions.IntervalMs"/> with uniform random
/// jitter, so that nodes started together do not heartbeat in lockstep and create synchronized traffic spikes that
/// trip rate limiters. The randomness comes from a <see cref="DeterministicRandom"/> passed in, so a simulation seed
/// replays the exact send times.
/// </summary>
/// <remarks>
/// The first send is placed uniformly in [start, start + interval) to de-synchronize nodes from the start. Later sends
/// are scheduled from the time the previous one actually went out, so a late tick does not cause a burst of catch-up
/// heartbeats. Sans-I/O, allocation-free, not thread-safe.
/// </remarks>
public sealed class HeartbeatSchedule
{
    private readonly DeterministicRandom _random;
    private readonly long _jitterSpanMs;

    /// <summary>Creates a schedule starting at <paramref name="startMs"/>, drawing jitter from <paramref name="random"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When a setting is out of range.</exception>
    public HeartbeatSchedule(HeartbeatScheduleOptions options, DeterministicRandom random, long startMs)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(random);
        options.Validate();
        Options = options;
        _random = random;
        _jitterSpanMs = (long)Math.Round(options.IntervalMs * options.JitterFraction);
        NextSendMs = startMs + random.NextInt64(options.IntervalMs);
    }

    /// <summary>The settings in use.</summary>
    public HeartbeatScheduleOptions Options { get; }

    /// <summary>The shortest delay <see cref="NextDelayMs"/> can return.</summary>
    public long MinDelayMs => Options.IntervalMs - _jitterSpanMs;

    /// <summary>The longest delay <see cref="NextDelayMs"/> can return.</summary>
    public long MaxDelayMs => Options.IntervalMs + _jitterSpanMs;

    /// <summary>When the next heartbeat is due.</summary>
    public long NextSendMs { get; private set; }

    /// <summary>True when the next heartbeat is due at <paramref name="nowMs"/>.</summary>
    public bool IsDue(long nowMs) => nowMs >= NextSendMs;

    /// <summary>How late a send at <paramref name="nowMs"/> is (0 if not late); feed it to <see cref="LocalHealth.OnTick"/>.</summary>
    public long LatenessMs(long nowMs) => Math.Max(0, nowMs - NextSendMs);

    /// <summary>A jittered delay, uniform in [<see cref="MinDelayMs"/>, <see cref="MaxDelayMs"/>].</summary>
    public long NextDelayMs() => MinDelayMs + _random.NextInt64(2 * _jitterSpanMs + 1);

    /// <summary>Call after sending a heartbeat at <paramref name="nowMs"/>: schedules and returns the next send time.</summary>
    public long ScheduleNext(long nowMs)
    {
        NextSendMs = nowMs + NextDelayMs();
        return NextSendMs;
    }

    /// <summary>Checks the schedule's invariants; throws <see cref="InvariantViolationException"/> when broken.</summary>
    public void AssertInvariants()
    {
        Invariant.Check(_jitterSpanMs >= 0 && _jitterSpanMs <= Options.IntervalMs / 2 + 1, "jitter span within half the interval");
        Invariant.Check(MinDelayMs >= 1, "the minimum delay is positive");
    }
}
