using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Keel.HybridClock.Tests;

public sealed class HybridTimestampTests
{
    [Fact]
    public void Packs_physical_in_the_high_48_bits_and_logical_in_the_low_16()
    {
        var ts = new HybridTimestamp(0x0000_1234_5678_9ABC, 0xDEF0);

        Assert.Equal(0x1234_5678_9ABC_DEF0UL, ts.Raw);
        Assert.Equal(0x0000_1234_5678_9ABC, ts.PhysicalMs);
        Assert.Equal(0xDEF0, ts.Logical);
        Assert.Equal(ts, HybridTimestamp.FromRaw(ts.Raw));
    }

    [Fact]
    public void Min_and_max_values_span_the_48_bit_range()
    {
        Assert.Equal(0UL, HybridTimestamp.MinValue.Raw);
        Assert.Equal(default, HybridTimestamp.MinValue);
        Assert.Equal(ulong.MaxValue, HybridTimestamp.MaxValue.Raw);
        Assert.Equal(HybridTimestamp.MaxPhysicalMs, HybridTimestamp.MaxValue.PhysicalMs);
        Assert.Equal(HybridTimestamp.MaxLogical, HybridTimestamp.MaxValue.Logical);
        Assert.Equal((1L << 48) - 1, HybridTimestamp.MaxPhysicalMs);
        Assert.Equal(0xFFFF, HybridTimestamp.MaxLogical);
    }

    [Theory]
    [InlineData(-1L, 0)]
    [InlineData((1L << 48), 0)]
    [InlineData(0L, -1)]
    [InlineData(0L, 0x10000)]
    public void Constructor_rejects_parts_out_of_range(long physicalMs, int logical) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new HybridTimestamp(physicalMs, logical));

    [Fact]
    public void Orders_by_physical_then_logical()
    {
        var a = new HybridTimestamp(1000, 5);
        var b = new HybridTimestamp(1000, 6);
        var c = new HybridTimestamp(1001, 0);

        Assert.True(a < b && b < c && a < c);
        var sameAsB = b;
        Assert.True(c > b && b >= sameAsB && a <= new HybridTimestamp(1000, 5));
        Assert.True(a != b && a == new HybridTimestamp(1000, 5));
        Assert.Equal(-1, a.CompareTo(b));
        Assert.Equal(1, c.CompareTo((object)b));
        Assert.Equal(0, a.CompareTo((object)new HybridTimestamp(1000, 5)));
        Assert.Equal(1, a.CompareTo(null));
        Assert.Throws<ArgumentException>(() => a.CompareTo("not a timestamp"));
        Assert.Equal(c, HybridTimestamp.Max(a, c));
        Assert.Equal(a, HybridTimestamp.Min(c, a));
        Assert.False(a.Equals((object)"x"));
        Assert.True(a.Equals((object)new HybridTimestamp(1000, 5)));
    }

    [Fact]
    public void Physical_is_the_utc_wall_time_and_clamps_beyond_year_9999()
    {
        var ts = new HybridTimestamp(1_795_688_130_123, 4);
        Assert.Equal(new DateTimeOffset(2026, 11, 26, 10, 15, 30, 123, TimeSpan.Zero), ts.Physical);
        Assert.Equal(DateTimeOffset.MaxValue, HybridTimestamp.MaxValue.Physical);
    }

    [Property(Replay = "(1000,2001)", MaxTest = 300)]
    public Property Order_of_timestamps_is_order_of_raw_and_of_parts() =>
        Prop.ForAll(Arb.From(Generators.Timestamp), Arb.From(Generators.Timestamp), (a, b) =>
        {
            var byParts = a.PhysicalMs != b.PhysicalMs ? a.PhysicalMs.CompareTo(b.PhysicalMs) : a.Logical.CompareTo(b.Logical);
            return Math.Sign(a.CompareTo(b)) == Math.Sign(byParts)
                && (a < b) == (byParts < 0)
                && (a == b) == (byParts == 0)
                && (a.GetHashCode() == b.GetHashCode() || a != b);
        });

    [Property(Replay = "(1001,2001)", MaxTest = 300)]
    public Property Parts_round_trip_through_the_constructor() =>
        Prop.ForAll(Arb.From(Generators.Timestamp), ts =>
            new HybridTimestamp(ts.PhysicalMs, ts.Logical) == ts && HybridTimestamp.FromRaw(ts.Raw) == ts);
}
