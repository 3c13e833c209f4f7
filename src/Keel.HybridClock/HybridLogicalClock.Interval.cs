namespace Keel.HybridClock;

/// <summary>TrueTime-style uncertainty intervals and commit wait.</summary>
/// <remarks>
/// Spanner (Corbett et al., OSDI 2012, sections 3 and 4.1.2) makes clock uncertainty explicit: <c>TT.now()</c> is an
/// interval certain to contain true time, and a transaction commits at timestamp <c>s</c> only after
/// <c>TT.after(s)</c>, so no node anywhere can later pick a timestamp below <c>s</c> for a transaction that started
/// after the commit. Spanner's epsilon is 1-7 ms with GPS and atomic clocks; with NTP the honest figure is the max
/// offset, which is the default of <see cref="HybridClockOptions.MaxUncertaintyMs"/>.
/// </remarks>
public sealed partial class HybridLogicalClock
{
    /// <summary>
    /// The interval that contains true time given the wall reading and <see cref="HybridClockOptions.MaxUncertaintyMs"/>:
    /// <c>[(wallMs - u, 0), (wallMs + u, 0xFFFF)]</c>, clamped to the 48-bit range. Does not change the clock.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="wallMs"/> is negative or beyond 48 bits.</exception>
    public UncertaintyInterval Interval(long wallMs)
    {
        if ((ulong)wallMs > HybridTimestamp.MaxPhysicalMs) ThrowWallOutOfRange(wallMs);
        var earliestMs = Math.Max(0, wallMs - _maxUncertaintyMs);
        var latestMs = Math.Min(HybridTimestamp.MaxPhysicalMs, wallMs + _maxUncertaintyMs);
        return new UncertaintyInterval(new HybridTimestamp(earliestMs, 0), new HybridTimestamp(latestMs, HybridTimestamp.MaxLogical));
    }

    /// <summary>
    /// How many milliseconds to wait, from the wall reading <paramref name="wallMs"/>, until <paramref name="commit"/>
    /// is certainly in the past on every node: the least <c>w</c> with <c>Interval(wallMs + w).Earliest &gt; commit</c>,
    /// i.e. <c>max(0, commit.PhysicalMs + u + 1 - wallMs)</c>. Spanner's commit wait.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="wallMs"/> is negative or beyond 48 bits.</exception>
    public long CommitWaitMs(HybridTimestamp commit, long wallMs)
    {
        if ((ulong)wallMs > HybridTimestamp.MaxPhysicalMs) ThrowWallOutOfRange(wallMs);
        return Math.Max(0, commit.PhysicalMs + _maxUncertaintyMs + 1 - wallMs);
    }
}
