using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Keel.Core;

namespace Keel.HybridClock;

/// <summary>
/// A hybrid logical clock (HLC): issues <see cref="HybridTimestamp"/>s that stay close to wall time, strictly increase
/// on this node, and are greater than every timestamp this node has received, so they respect happens-before.
/// </summary>
/// <remarks>
/// <para>
/// Sans-I/O: the clock owns no time source. The driver reads its wall clock and passes the reading in as
/// <c>wallMs</c> (milliseconds since the Unix epoch); nothing here blocks, allocates on the hot path, or reads ambient
/// time. Not thread-safe: one driver thread owns the clock, as with every Keel core.
/// </para>
/// <para>
/// The rules are those of Kulkarni et al. 2014 ("Logical Physical Clocks and Consistent Snapshots in Globally
/// Distributed Databases", Figure 5). With <c>l.c</c> the last issued timestamp, <c>m</c> a received one and
/// <c>pt</c> the wall reading: a send or local event issues <c>(pt, 0)</c> if <c>pt &gt; l</c>, else the successor
/// of <c>l.c</c>; a receive issues <c>(pt, 0)</c> if <c>pt</c> is above both <c>l</c> and <c>m</c>, else the successor
/// of <c>max(l.c, m)</c>. Because the logical part sits in the low 16 bits, "successor" is <c>Raw + 1</c>; when the
/// logical part is saturated that carries into the physical part (see <see cref="LogicalOverflowCount"/>).
/// </para>
/// <para>
/// Production defences, after CockroachDB's <c>pkg/util/hlc/hlc.go</c>: remote timestamps more than
/// <see cref="HybridClockOptions.MaxOffsetMs"/> ahead of the wall are rejected (<see cref="ClockOffsetException"/>);
/// backward wall-clock steps (NTP steps, a stepped leap second) are survived and counted; a persisted wall-time upper
/// bound keeps timestamps increasing across restarts (<see cref="Restore"/>). The TrueTime-style interval API is in
/// <c>HybridClock.Interval.cs</c>, the upper bound in <c>HybridClock.UpperBound.cs</c>.
/// </para>
/// </remarks>
public sealed partial class HybridLogicalClock
{
    private const ulong LogicalMask = HybridTimestamp.MaxLogical;

    private readonly long _maxOffsetMs;
    private readonly long _maxUncertaintyMs;

    private ulong _lastRaw;
    private long _lastWallMs = long.MinValue;
    private long _maxWallMs = long.MinValue;

    private long _rejectedRemoteCount;
    private long _backwardJumpCount;
    private long _largestBackwardJumpMs;
    private long _logicalOverflowCount;
    private long _largestAcceptedRemoteAheadMs;

    /// <summary>Creates a clock that has issued nothing yet.</summary>
    /// <param name="options">The configuration; <see cref="HybridClockOptions.Default"/> when null.</param>
    public HybridLogicalClock(HybridClockOptions? options = null)
    {
        Options = options ?? HybridClockOptions.Default;
        Options.Validate();
        _maxOffsetMs = Options.MaxOffsetMs;
        _maxUncertaintyMs = Options.MaxUncertaintyMs;
        _upperBoundLeadMs = Options.UpperBoundLeadMs;
        _requestedUpperBoundRaw = Options.PersistUpperBound ? LogicalMask : ulong.MaxValue;
    }

    /// <summary>The configuration this clock was created with.</summary>
    public HybridClockOptions Options { get; }

    /// <summary>The latest timestamp this clock has issued (after <see cref="Restore"/>: the restored fence).</summary>
    public HybridTimestamp LastIssued => HybridTimestamp.FromRaw(_lastRaw);

    /// <summary>Remote timestamps refused because they were more than the max offset ahead of the wall clock.</summary>
    public long RejectedRemoteCount => _rejectedRemoteCount;

    /// <summary>How many times the wall reading passed in was lower than the previous one (NTP step, leap second).</summary>
    public long BackwardJumpCount => _backwardJumpCount;

    /// <summary>The largest backward wall-clock step seen, in milliseconds (0 when none).</summary>
    public long LargestBackwardJumpMs => _largestBackwardJumpMs;

    /// <summary>
    /// How many times the logical counter was saturated (0xFFFF) and the clock moved its physical part one millisecond
    /// ahead instead of wrapping.
    /// </summary>
    /// <remarks>
    /// Why this is safe: wrapping would issue a smaller timestamp, which breaks monotonicity; stepping the physical part
    /// forward keeps every rule (the result is still the successor of everything seen). It can only happen while the
    /// physical part is pinned above the wall clock, i.e. after a backward step or after adopting a remote timestamp,
    /// which the max offset check bounds to <see cref="HybridClockOptions.MaxOffsetMs"/> ahead. Each extra millisecond
    /// costs 65,536 events, so even at a million events per second the clock gains about 15 ms per second of stall and
    /// stops gaining as soon as the wall catches up. Peers re-check every timestamp against their own wall, so a node
    /// that ran ahead this way cannot drag others along further than the max offset.
    /// </remarks>
    public long LogicalOverflowCount => _logicalOverflowCount;

    /// <summary>The largest amount, in milliseconds, by which an accepted remote timestamp was ahead of the wall (skew gauge).</summary>
    public long LargestAcceptedRemoteAheadMs => _largestAcceptedRemoteAheadMs;

    /// <summary>The highest wall reading passed in so far (<see cref="long.MinValue"/> before the first).</summary>
    public long MaxWallMs => _maxWallMs;

    /// <summary>
    /// A local or send event: returns a timestamp greater than every timestamp issued or received before, equal to
    /// <c>(wallMs, 0)</c> whenever the wall clock is ahead of them.
    /// </summary>
    /// <param name="wallMs">The current wall-clock reading, ms since the Unix epoch (may have gone backwards).</param>
    /// <remarks>
    /// If <see cref="IsUpperBoundPersistPending"/> is true afterwards, the returned timestamp may be used only once
    /// <see cref="UpperBoundMs"/> has been persisted (see <see cref="UpperBoundPersisted"/>).
    /// </remarks>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="wallMs"/> is negative or beyond 48 bits.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public HybridTimestamp Now(long wallMs)
    {
        ObserveWall(wallMs);
        return Issue(_lastRaw, wallMs);
    }

    /// <summary>
    /// A receive event: returns a timestamp greater than <paramref name="remote"/> and than every timestamp issued
    /// or received before. Throws when <paramref name="remote"/> is too far ahead; see <see cref="TryUpdate"/> for the
    /// non-throwing form.
    /// </summary>
    /// <param name="remote">The timestamp carried by the received message.</param>
    /// <param name="wallMs">The current wall-clock reading, ms since the Unix epoch.</param>
    /// <exception cref="ClockOffsetException">
    /// <paramref name="remote"/> is more than <see cref="HybridClockOptions.MaxOffsetMs"/> ahead of
    /// <paramref name="wallMs"/>; the clock is unchanged apart from <see cref="RejectedRemoteCount"/>.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="wallMs"/> is negative or beyond 48 bits.</exception>
    public HybridTimestamp Update(HybridTimestamp remote, long wallMs)
    {
        if (!TryUpdate(remote, wallMs, out var result)) ThrowClockOffset(remote, wallMs);
        return result;
    }

    /// <summary>
    /// A receive event without exceptions: false (and <paramref name="result"/> = default) when
    /// <paramref name="remote"/> is more than the max offset ahead of <paramref name="wallMs"/>, in which case the
    /// remote time is not adopted and <see cref="RejectedRemoteCount"/> goes up; otherwise as <see cref="Update"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="wallMs"/> is negative or beyond 48 bits.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryUpdate(HybridTimestamp remote, long wallMs, out HybridTimestamp result)
    {
        ObserveWall(wallMs);
        var remoteAheadMs = remote.PhysicalMs - wallMs;
        if (remoteAheadMs > _maxOffsetMs)
        {
            _rejectedRemoteCount++;
            result = default;
            return false;
        }
        if (remoteAheadMs > _largestAcceptedRemoteAheadMs) _largestAcceptedRemoteAheadMs = remoteAheadMs;
        var last = _lastRaw;
        var remoteRaw = remote.Raw;
        result = Issue(remoteRaw > last ? remoteRaw : last, wallMs);
        return true;
    }

    /// <summary>
    /// Checks the clock's safety invariants and throws <see cref="InvariantViolationException"/> when one fails.
    /// Tests call this after every step; it is cheap enough for a driver to call periodically in production.
    /// </summary>
    public void AssertInvariants()
    {
        Invariant.Check(_rejectedRemoteCount >= 0 && _backwardJumpCount >= 0 && _logicalOverflowCount >= 0,
            "counters never go negative");
        Invariant.Check((_backwardJumpCount == 0) == (_largestBackwardJumpMs == 0),
            "a largest backward jump is remembered exactly when a backward jump was counted");
        Invariant.Check(_lastWallMs <= _maxWallMs, "the max wall reading is at least the last one");
        Invariant.Check(_largestAcceptedRemoteAheadMs <= _maxOffsetMs, "no remote beyond the max offset was adopted");
        if (_maxWallMs != long.MinValue)
        {
            // HLC paper theorem: l - pt <= epsilon. Ours: the physical part exceeds the highest wall reading by at most
            // the max offset (adopted remotes), plus one ms per overflow, or sits just above a restored upper bound.
            var ceilingMs = Math.Max(_maxWallMs + _maxOffsetMs, _restoredUpperBoundMs + 1) + _logicalOverflowCount;
            Invariant.Check(LastIssued.PhysicalMs <= ceilingMs,
                "the physical part stays within max offset of the highest wall reading");
        }
        AssertUpperBoundInvariants();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void ObserveWall(long wallMs)
    {
        if ((ulong)wallMs > HybridTimestamp.MaxPhysicalMs) ThrowWallOutOfRange(wallMs);
        if (wallMs < _lastWallMs) RecordBackwardJump(wallMs);
        else if (wallMs > _maxWallMs) _maxWallMs = wallMs;
        _lastWallMs = wallMs;
    }

    /// <summary>Issues <c>(wallMs, 0)</c> if the wall is ahead of <paramref name="floorRaw"/>, else its successor.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private HybridTimestamp Issue(ulong floorRaw, long wallMs)
    {
        var wallRaw = (ulong)wallMs << HybridTimestamp.LogicalBits;
        ulong next;
        if (wallRaw > floorRaw) next = wallRaw;
        else if ((floorRaw & LogicalMask) != LogicalMask) next = floorRaw + 1;
        else next = OverflowSuccessor(floorRaw);
        _lastRaw = next;
        if (next > _requestedUpperBoundRaw) RequestUpperBound(next);
        return HybridTimestamp.FromRaw(next);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong OverflowSuccessor(ulong saturatedRaw)
    {
        if (saturatedRaw == ulong.MaxValue)
            throw new InvalidOperationException(
                $"The hybrid clock is exhausted: {HybridTimestamp.MaxValue} has been issued and nothing is greater.");
        // The restored fence (bound, 0xFFFF) is not a real overflow: it is how Restore says "everything up to the
        // bound may have been issued", so stepping past it is the intended first timestamp after a restart.
        if (saturatedRaw != _restoredFenceRaw) _logicalOverflowCount++;
        return saturatedRaw + 1;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void RecordBackwardJump(long wallMs)
    {
        var jumpMs = _lastWallMs - wallMs;
        _backwardJumpCount++;
        if (jumpMs > _largestBackwardJumpMs) _largestBackwardJumpMs = jumpMs;
    }

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowClockOffset(HybridTimestamp remote, long wallMs) =>
        throw new ClockOffsetException(remote, wallMs, _maxOffsetMs);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowWallOutOfRange(long wallMs) =>
        throw new ArgumentOutOfRangeException(nameof(wallMs), wallMs,
            $"Wall time must be in [0, {HybridTimestamp.MaxPhysicalMs}] ms since the Unix epoch.");
}
