namespace Keel.HybridClock;

/// <summary>
/// An interval that contains true time with certainty, given the configured uncertainty: TrueTime's
/// <c>TT.now() = [earliest, latest]</c> (Corbett et al., "Spanner: Google's Globally-Distributed Database", OSDI 2012,
/// section 3) expressed in hybrid timestamps.
/// </summary>
/// <param name="Earliest">The earliest true time could be: (wall - uncertainty) ms with logical 0.</param>
/// <param name="Latest">The latest true time could be: (wall + uncertainty) ms with the largest logical counter.</param>
public readonly record struct UncertaintyInterval(HybridTimestamp Earliest, HybridTimestamp Latest)
{
    /// <summary>TrueTime's <c>TT.after(t)</c>: <paramref name="timestamp"/> is certainly in the past.</summary>
    public bool IsCertainlyAfter(HybridTimestamp timestamp) => Earliest > timestamp;

    /// <summary>TrueTime's <c>TT.before(t)</c>: <paramref name="timestamp"/> is certainly in the future.</summary>
    public bool IsCertainlyBefore(HybridTimestamp timestamp) => Latest < timestamp;

    /// <summary>True when <paramref name="timestamp"/> may be now: neither certainly past nor certainly future.</summary>
    public bool Contains(HybridTimestamp timestamp) => Earliest <= timestamp && timestamp <= Latest;

    /// <summary>The width of the interval in milliseconds (twice the uncertainty, unless clamped at the range ends).</summary>
    public long WidthMs => Latest.PhysicalMs - Earliest.PhysicalMs;
}
