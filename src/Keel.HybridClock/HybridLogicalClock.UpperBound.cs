using System.Runtime.CompilerServices;
using Keel.Core;

namespace Keel.HybridClock;

/// <summary>The persisted wall-time upper bound: monotonic timestamps across restarts.</summary>
/// <remarks>
/// <para>
/// After CockroachDB's <c>hlc.Clock</c> "wall time upper bound" (<c>RefreshHLCUpperBound</c>, and
/// <c>ensureClockMonotonicity</c> in <c>pkg/server</c>): a process that restarts with its wall clock behind where it was
/// (an NTP step while it was down, a VM restored on another host) would otherwise issue timestamps it has issued
/// before. So before a timestamp whose physical part is above the last persisted bound is used, a new bound (that
/// physical time plus <see cref="HybridClockOptions.UpperBoundLeadMs"/>) is written to durable storage; after a restart,
/// <see cref="Restore"/> starts the clock above that bound.
/// </para>
/// <para>
/// Protocol for a synchronous driver: after <see cref="Now"/> or <see cref="Update"/>, if
/// <see cref="IsUpperBoundPersistPending"/> is true, write <see cref="UpperBoundMs"/> durably (fsync), call
/// <see cref="UpperBoundPersisted"/>, then use the timestamp. With the default 1000 ms lead this happens about once a
/// second. A driver may also persist ahead of time in the background (write <c>wall + lead</c> every half lead and
/// acknowledge it), in which case the hot path never sees a pending bound. Timestamps issued while a bound is pending
/// must all wait for that write.
/// </para>
/// </remarks>
public sealed partial class HybridLogicalClock
{
    private readonly long _upperBoundLeadMs;
    private ulong _requestedUpperBoundRaw;
    private long _upperBoundMs;
    private long _persistedUpperBoundMs;
    private long _upperBoundRequestCount;
    private ulong _restoredFenceRaw;
    private long _restoredUpperBoundMs = -1;

    /// <summary>
    /// Creates a clock after a restart from the upper bound the previous incarnation persisted. Every timestamp it
    /// issues is greater than <c>(persistedUpperBoundMs, 0xFFFF)</c>, hence greater than anything issued before the
    /// restart, even if the wall clock went backwards across it.
    /// </summary>
    /// <param name="options">The configuration; <see cref="HybridClockOptions.Default"/> when null.</param>
    /// <param name="persistedUpperBoundMs">The last bound the previous incarnation acknowledged with <see cref="UpperBoundPersisted"/>.</param>
    /// <remarks>
    /// Until the wall clock passes the bound, the restored clock's timestamps run ahead of the wall (by up to the lead
    /// plus any backward step), and peers may reject them as too far ahead. Like CockroachDB, which sleeps in
    /// <c>ensureClockMonotonicity</c>, the driver should wait <see cref="RestoreWaitMs"/> before serving.
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException">The bound is negative or leaves no room for a later timestamp.</exception>
    public static HybridLogicalClock Restore(HybridClockOptions? options, long persistedUpperBoundMs)
    {
        if (persistedUpperBoundMs < 0 || persistedUpperBoundMs >= HybridTimestamp.MaxPhysicalMs)
            throw new ArgumentOutOfRangeException(nameof(persistedUpperBoundMs), persistedUpperBoundMs,
                $"A persisted upper bound must be in [0, {HybridTimestamp.MaxPhysicalMs - 1}] ms.");
        var clock = new HybridLogicalClock(options);
        var fence = new HybridTimestamp(persistedUpperBoundMs, HybridTimestamp.MaxLogical).Raw;
        clock._lastRaw = fence;
        clock._restoredFenceRaw = fence;
        clock._restoredUpperBoundMs = persistedUpperBoundMs;
        clock._upperBoundMs = persistedUpperBoundMs;
        clock._persistedUpperBoundMs = persistedUpperBoundMs;
        if (clock.Options.PersistUpperBound) clock._requestedUpperBoundRaw = fence;
        return clock;
    }

    /// <summary>
    /// The wall-time upper bound that must be durable before the timestamps issued so far may be used: every issued
    /// physical time is at or below it. Only meaningful when <see cref="HybridClockOptions.PersistUpperBound"/> is on.
    /// </summary>
    public long UpperBoundMs => _upperBoundMs;

    /// <summary>The highest bound the driver has acknowledged as durable with <see cref="UpperBoundPersisted"/>.</summary>
    public long PersistedUpperBoundMs => _persistedUpperBoundMs;

    /// <summary>
    /// True when <see cref="UpperBoundMs"/> is above <see cref="PersistedUpperBoundMs"/>: the driver must persist
    /// <see cref="UpperBoundMs"/> before using any timestamp issued since the last acknowledgement.
    /// </summary>
    public bool IsUpperBoundPersistPending => _upperBoundMs > _persistedUpperBoundMs;

    /// <summary>How many times a new upper bound was requested (a persist was needed on the hot path).</summary>
    public long UpperBoundRequestCount => _upperBoundRequestCount;

    /// <summary>The upper bound this clock was restored from, or -1 when it was created fresh.</summary>
    public long RestoredUpperBoundMs => _restoredUpperBoundMs;

    /// <summary>
    /// The driver has durably written <paramref name="upperBoundMs"/>. Acknowledging a bound above
    /// <see cref="UpperBoundMs"/> (persisting ahead of time) raises it; acknowledging an older one is harmless.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The bound is negative or beyond 48 bits.</exception>
    public void UpperBoundPersisted(long upperBoundMs)
    {
        if ((ulong)upperBoundMs > HybridTimestamp.MaxPhysicalMs)
            throw new ArgumentOutOfRangeException(nameof(upperBoundMs), upperBoundMs,
                $"An upper bound must be in [0, {HybridTimestamp.MaxPhysicalMs}] ms.");
        if (upperBoundMs > _persistedUpperBoundMs) _persistedUpperBoundMs = upperBoundMs;
        if (upperBoundMs > _upperBoundMs)
        {
            _upperBoundMs = upperBoundMs;
            if (Options.PersistUpperBound) _requestedUpperBoundRaw = UpperBoundRaw(upperBoundMs);
        }
    }

    /// <summary>
    /// How long, in milliseconds, the driver should wait after <see cref="Restore"/> before serving, so that the wall
    /// clock is past the restored bound and timestamps are again close to wall time; 0 once it is (or when the clock
    /// was not restored).
    /// </summary>
    public long RestoreWaitMs(long wallMs) =>
        _restoredUpperBoundMs < 0 ? 0 : Math.Max(0, _restoredUpperBoundMs + 1 - wallMs);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RequestUpperBound(ulong issuedRaw)
    {
        var physicalMs = (long)(issuedRaw >> HybridTimestamp.LogicalBits);
        _upperBoundMs = Math.Min(physicalMs + _upperBoundLeadMs, HybridTimestamp.MaxPhysicalMs);
        _requestedUpperBoundRaw = UpperBoundRaw(_upperBoundMs);
        _upperBoundRequestCount++;
    }

    private static ulong UpperBoundRaw(long upperBoundMs) =>
        new HybridTimestamp(upperBoundMs, HybridTimestamp.MaxLogical).Raw;

    private void AssertUpperBoundInvariants()
    {
        Invariant.Check(_persistedUpperBoundMs <= _upperBoundMs, "the persisted bound never exceeds the requested bound");
        if (Options.PersistUpperBound)
        {
            Invariant.Check(LastIssued.PhysicalMs <= _upperBoundMs, "every issued timestamp is covered by the requested upper bound");
            Invariant.Check(_requestedUpperBoundRaw == UpperBoundRaw(_upperBoundMs), "the hot-path bound mirrors the requested bound");
        }
        if (_restoredUpperBoundMs >= 0)
            Invariant.Check(_lastRaw >= _restoredFenceRaw, "a restored clock never issues at or below the restored bound");
    }
}
