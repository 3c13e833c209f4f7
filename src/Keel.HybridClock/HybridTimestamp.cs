using System.Runtime.CompilerServices;

namespace Keel.HybridClock;

/// <summary>
/// A hybrid logical clock timestamp: 48 bits of physical time (milliseconds since the Unix epoch, UTC) above a 16-bit
/// logical counter, packed into one <see cref="ulong"/> so that comparing two timestamps is one integer comparison.
/// </summary>
/// <remarks>
/// <para>
/// The layout is the one proposed in the HLC paper (Kulkarni, Demirbas, Madeppa, Avva, Leone: "Logical Physical Clocks
/// and Consistent Snapshots in Globally Distributed Databases", 2014, section 3.3): the physical part keeps timestamps
/// readable as wall time for audits, and the logical part orders events that share a millisecond or that happen while
/// the local wall clock lags a timestamp received from a peer. 48 bits of milliseconds reach the year 10889.
/// </para>
/// <para>
/// Because the logical part sits in the low bits, <c>Raw + 1</c> of a timestamp whose logical part is saturated
/// (0xFFFF) is the next millisecond with logical 0: the overflow rule of <see cref="HybridLogicalClock"/> is a plain increment.
/// </para>
/// </remarks>
public readonly partial struct HybridTimestamp : IEquatable<HybridTimestamp>, IComparable<HybridTimestamp>, IComparable
{
    /// <summary>Number of bits of the logical counter.</summary>
    public const int LogicalBits = 16;

    /// <summary>The largest logical counter value (0xFFFF).</summary>
    public const int MaxLogical = (1 << LogicalBits) - 1;

    /// <summary>The largest physical time that fits in 48 bits: 2^48 - 1 ms after the Unix epoch (year 10889).</summary>
    public const long MaxPhysicalMs = (1L << (64 - LogicalBits)) - 1;

    private readonly ulong _raw;

    /// <summary>The smallest timestamp: the Unix epoch with logical 0. Also the <c>default</c> value.</summary>
    public static HybridTimestamp MinValue => default;

    /// <summary>The largest timestamp: physical <see cref="MaxPhysicalMs"/>, logical <see cref="MaxLogical"/>.</summary>
    public static HybridTimestamp MaxValue => new(ulong.MaxValue);

    private HybridTimestamp(ulong raw) => _raw = raw;

    /// <summary>Creates a timestamp from its physical milliseconds and logical counter.</summary>
    /// <param name="physicalMs">Milliseconds since the Unix epoch, in [0, <see cref="MaxPhysicalMs"/>].</param>
    /// <param name="logical">The logical counter, in [0, <see cref="MaxLogical"/>].</param>
    /// <exception cref="ArgumentOutOfRangeException">A part is out of its range.</exception>
    public HybridTimestamp(long physicalMs, int logical)
    {
        if ((ulong)physicalMs > MaxPhysicalMs)
            throw new ArgumentOutOfRangeException(nameof(physicalMs), physicalMs,
                $"Physical time must be in [0, {MaxPhysicalMs}] ms since the Unix epoch.");
        if ((uint)logical > MaxLogical)
            throw new ArgumentOutOfRangeException(nameof(logical), logical, $"Logical counter must be in [0, {MaxLogical}].");
        _raw = ((ulong)physicalMs << LogicalBits) | (uint)logical;
    }

    /// <summary>Reinterprets a packed value (as produced by <see cref="Raw"/>, e.g. read from the wire) as a timestamp.</summary>
    public static HybridTimestamp FromRaw(ulong raw) => new(raw);

    /// <summary>The packed 64-bit representation: physical milliseconds in the high 48 bits, logical in the low 16.</summary>
    public ulong Raw
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _raw;
    }

    /// <summary>The physical part in milliseconds since the Unix epoch (UTC, no leap seconds, as Unix time).</summary>
    public long PhysicalMs
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (long)(_raw >> LogicalBits);
    }

    /// <summary>
    /// The physical part as a UTC <see cref="DateTimeOffset"/>. Physical times after 9999-12-31T23:59:59.999Z (which
    /// <see cref="DateTimeOffset"/> cannot represent) are clamped to <see cref="DateTimeOffset.MaxValue"/>.
    /// </summary>
    public DateTimeOffset Physical =>
        PhysicalMs > MaxDateTimeOffsetMs
            ? DateTimeOffset.MaxValue
            : DateTimeOffset.FromUnixTimeMilliseconds(PhysicalMs);

    /// <summary>The logical counter, in [0, <see cref="MaxLogical"/>].</summary>
    public int Logical
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (int)(_raw & MaxLogical);
    }

    private const long MaxDateTimeOffsetMs = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

    /// <inheritdoc />
    public bool Equals(HybridTimestamp other) => _raw == other._raw;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is HybridTimestamp other && _raw == other._raw;

    /// <inheritdoc />
    public override int GetHashCode() => _raw.GetHashCode();

    /// <summary>Orders by physical time, then by logical counter (one comparison of <see cref="Raw"/>).</summary>
    public int CompareTo(HybridTimestamp other) => _raw.CompareTo(other._raw);

    /// <inheritdoc />
    public int CompareTo(object? obj) => obj switch
    {
        null => 1,
        HybridTimestamp other => CompareTo(other),
        _ => throw new ArgumentException($"Object must be of type {nameof(HybridTimestamp)}.", nameof(obj)),
    };

    /// <summary>True when both timestamps are the same.</summary>
    public static bool operator ==(HybridTimestamp left, HybridTimestamp right) => left._raw == right._raw;

    /// <summary>True when the timestamps differ.</summary>
    public static bool operator !=(HybridTimestamp left, HybridTimestamp right) => left._raw != right._raw;

    /// <summary>True when <paramref name="left"/> is ordered before <paramref name="right"/>.</summary>
    public static bool operator <(HybridTimestamp left, HybridTimestamp right) => left._raw < right._raw;

    /// <summary>True when <paramref name="left"/> is ordered after <paramref name="right"/>.</summary>
    public static bool operator >(HybridTimestamp left, HybridTimestamp right) => left._raw > right._raw;

    /// <summary>True when <paramref name="left"/> is ordered before or equal to <paramref name="right"/>.</summary>
    public static bool operator <=(HybridTimestamp left, HybridTimestamp right) => left._raw <= right._raw;

    /// <summary>True when <paramref name="left"/> is ordered after or equal to <paramref name="right"/>.</summary>
    public static bool operator >=(HybridTimestamp left, HybridTimestamp right) => left._raw >= right._raw;

    /// <summary>The larger of two timestamps.</summary>
    public static HybridTimestamp Max(HybridTimestamp a, HybridTimestamp b) => a._raw >= b._raw ? a : b;

    /// <summary>The smaller of two timestamps.</summary>
    public static HybridTimestamp Min(HybridTimestamp a, HybridTimestamp b) => a._raw <= b._raw ? a : b;
}
