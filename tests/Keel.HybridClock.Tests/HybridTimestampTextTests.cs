using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Keel.HybridClock.Tests;

public sealed class HybridTimestampTextTests
{
    [Fact]
    public void Formats_as_iso_8601_utc_with_milliseconds_and_hex_logical()
    {
        var ts = new HybridTimestamp(1_795_688_130_123, 4);
        Assert.Equal("2026-11-26T10:15:30.123Z+0004", ts.ToString());
        Assert.Equal("2026-11-26T10:15:30.123Z+0004", ts.ToString("O", null));
        Assert.Equal("2026-11-26T10:15:30.123Z+0004", $"{ts}");
    }

    [Fact]
    public void Formats_the_extremes()
    {
        Assert.Equal("1970-01-01T00:00:00.000Z+0000", HybridTimestamp.MinValue.ToString());
        Assert.Equal("+10889-08-02T05:31:50.655Z+FFFF", HybridTimestamp.MaxValue.ToString());
        Assert.Equal("9999-12-31T23:59:59.999Z+00FF", new HybridTimestamp(253_402_300_799_999, 0xFF).ToString());
        Assert.Equal("+10000-01-01T00:00:00.000Z+0000", new HybridTimestamp(253_402_300_800_000, 0).ToString());
    }

    [Fact]
    public void Parses_the_documented_example()
    {
        var ts = HybridTimestamp.Parse("2026-11-26T10:15:30.123Z+0004");
        Assert.Equal(1_795_688_130_123, ts.PhysicalMs);
        Assert.Equal(4, ts.Logical);
        Assert.Equal(new HybridTimestamp(1_795_688_130_123, 0xABCD), HybridTimestamp.Parse("2026-11-26T10:15:30.123Z+abcd"));
        Assert.Equal(HybridTimestamp.MaxValue, HybridTimestamp.Parse("+10889-08-02T05:31:50.655Z+FFFF"));
        Assert.Equal(HybridTimestamp.MaxValue, HybridTimestamp.Parse("+10889-08-02T05:31:50.655Z+FFFF".AsSpan(), null));
    }

    [Theory]
    [InlineData("", "expected 29 characters")]
    [InlineData("2026-11-26T10:15:30.123Z+00041", "expected 29 characters")]
    [InlineData("2026-11-26 10:15:30.123Z+0004", "layout")]
    [InlineData("2026-11-26T10:15:30.123+00004", "layout")]
    [InlineData("2026-11-26T10:15:30.123Z-0004", "layout")]
    [InlineData("2026-11-26T10:15:30.123Z+000G", "hex digits")]
    [InlineData("2026-13-26T10:15:30.123Z+0004", "month out of range")]
    [InlineData("2026-00-26T10:15:30.123Z+0004", "month out of range")]
    [InlineData("2026-02-29T10:15:30.123Z+0004", "day out of range")]
    [InlineData("2026-04-31T10:15:30.123Z+0004", "day out of range")]
    [InlineData("2026-04-00T10:15:30.123Z+0004", "day out of range")]
    [InlineData("2026-11-26T24:00:00.000Z+0004", "time of day")]
    [InlineData("2026-11-26T10:60:00.000Z+0004", "time of day")]
    [InlineData("2016-12-31T23:59:60.000Z+0000", "leap second")]
    [InlineData("1969-12-31T23:59:59.999Z+0000", "before the Unix epoch")]
    [InlineData("0000-01-01T00:00:00.000Z+0000", "before the Unix epoch")]
    [InlineData("+09999-12-31T23:59:59.999Z+0000", "expanded year")]
    [InlineData("+10889-08-02T05:31:50.656Z+0000", "48-bit range")]
    [InlineData("+99999-12-31T23:59:59.999Z+0000", "48-bit range")]
    public void Rejects_malformed_text_with_a_reason(string text, string reason)
    {
        var error = Assert.Throws<FormatException>(() => HybridTimestamp.Parse(text));
        Assert.Contains(reason, error.Message);
        Assert.StartsWith("Invalid hybrid timestamp:", error.Message);
        Assert.False(HybridTimestamp.TryParse(text, out var result));
        Assert.Equal(default, result);
    }

    [Fact]
    public void Leap_year_day_parses()
    {
        var ts = HybridTimestamp.Parse("2028-02-29T00:00:00.000Z+0000");
        Assert.Equal(new DateTimeOffset(2028, 2, 29, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds(), ts.PhysicalMs);
    }

    [Fact]
    public void Null_text_is_rejected()
    {
        Assert.False(HybridTimestamp.TryParse((string?)null, out _));
        Assert.False(HybridTimestamp.TryParse(null, null, out _));
        Assert.Throws<ArgumentNullException>(() => HybridTimestamp.Parse(null!));
    }

    [Fact]
    public void Unsupported_format_strings_are_rejected()
    {
        var ts = new HybridTimestamp(1, 1);
        Assert.Throws<FormatException>(() => ts.ToString("G", null));
        Assert.Throws<FormatException>(() => ts.TryFormat(new char[64], out _, "yyyy", null));
    }

    [Fact]
    public void TryFormat_reports_a_short_buffer_and_writes_nothing()
    {
        var buffer = new char[HybridTimestamp.FormattedLength - 1];
        Assert.False(new HybridTimestamp(1_795_688_130_123, 4).TryFormat(buffer, out var written));
        Assert.Equal(0, written);
        Assert.All(buffer, c => Assert.Equal('\0', c));
        Assert.False(HybridTimestamp.MaxValue.TryFormat(new char[HybridTimestamp.FormattedLength + 1], out _));
        Assert.True(HybridTimestamp.MaxValue.TryFormat(new char[HybridTimestamp.MaxFormattedLength], out written));
        Assert.Equal(HybridTimestamp.MaxFormattedLength, written);
    }

    [Property(Replay = "(1100,2101)", MaxTest = 500)]
    public Property Text_round_trips_for_every_timestamp() =>
        Prop.ForAll(Arb.From(Generators.Timestamp), ts =>
        {
            var text = ts.ToString();
            var spanOk = HybridTimestamp.TryParse(text.AsSpan(), out var fromSpan);
            return HybridTimestamp.Parse(text) == ts && spanOk && fromSpan == ts
                && HybridTimestamp.Parse(text, null) == ts;
        });

    [Property(Replay = "(1101,2101)", MaxTest = 500)]
    public Property Date_part_agrees_with_the_framework_up_to_year_9999() =>
        Prop.ForAll(Arb.From(Generators.Timestamp.Where(t => t.PhysicalMs <= 253_402_300_799_999)), ts =>
            ts.ToString()[..24] == DateTimeOffset.FromUnixTimeMilliseconds(ts.PhysicalMs)
                .ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture)
            && ts.ToString()[24..] == "+" + ts.Logical.ToString("X4", System.Globalization.CultureInfo.InvariantCulture));

    [Property(Replay = "(1102,2103)", MaxTest = 500)]
    public Property Text_sorts_like_the_timestamps_up_to_year_9999()
    {
        var gen = Generators.Timestamp.Where(t => t.PhysicalMs <= 253_402_300_799_999);
        return Prop.ForAll(Arb.From(gen), Arb.From(gen), (a, b) =>
            Math.Sign(string.CompareOrdinal(a.ToString(), b.ToString())) == Math.Sign(a.CompareTo(b)));
    }
}
