using Keel.Core.Encoding;

namespace Keel.Core.Tests;

public class BinarySpanReaderTests
{
    private static readonly byte[] Sample =
    [
        0xAB,
        0xFE, 0xFF, 0xFF, 0xFF,
        0x04, 0x03, 0x02, 0x01,
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
        0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0x11, 0x22,
    ];

    [Fact]
    public void Fields_are_read_little_endian_in_order()
    {
        var reader = new BinarySpanReader(Sample);
        Assert.Equal(0xAB, reader.U8());
        Assert.Equal(-2, reader.I32());
        Assert.Equal(0x01020304u, reader.U32());
        Assert.Equal(0x0102030405060708, reader.I64());
        Assert.Equal(ulong.MaxValue - 1, reader.U64());
        Assert.False(reader.IsAtEnd);
        Assert.Equal(2, reader.Remaining);
        Assert.Equal(new byte[] { 0x11, 0x22 }, reader.ReadBytes(2).ToArray());
        Assert.True(reader.IsAtEnd);
        Assert.Equal(Sample.Length, reader.Position);
    }

    [Fact]
    public void A_truncated_read_names_offset_need_and_what_is_left()
    {
        var error = Assert.Throws<EncodingFormatException>(() =>
        {
            var reader = new BinarySpanReader(Sample.AsSpan(0, 7));
            reader.U8();
            reader.I32();
            reader.I64();
        });
        Assert.Equal(EncodingProblem.Truncated, error.Problem);
        Assert.Equal(5, error.Offset);
        Assert.Equal(8, error.Value);
        Assert.Equal(2, error.AvailableBytes);
        Assert.Contains("offset 5", error.Message);
        Assert.IsAssignableFrom<FormatException>(error);
    }

    [Fact]
    public void A_failed_read_does_not_move_the_reader()
    {
        var position = -1;
        Assert.Throws<EncodingFormatException>(() =>
        {
            var reader = new BinarySpanReader(Sample.AsSpan(0, 3));
            reader.U8();
            try { reader.I32(); }
            finally { position = reader.Position; }
        });
        Assert.Equal(1, position);
    }

    [Fact]
    public void Negative_lengths_are_format_errors_not_crashes()
    {
        var error = Assert.Throws<EncodingFormatException>(() => new BinarySpanReader(Sample).ReadBytes(-1));
        Assert.Equal(EncodingProblem.Truncated, error.Problem);
    }

    [Fact]
    public void ReadCount_accepts_counts_the_remaining_bytes_can_hold()
    {
        var data = new byte[4 + 3 * 8];
        data[0] = 3;
        var reader = new BinarySpanReader(data);
        Assert.Equal(3, reader.ReadCount(8));
        Assert.Equal(24, reader.Remaining);
    }

    [Theory]
    [InlineData(4, 8)]          // 4 items of 8 bytes need 32, only 24 are left
    [InlineData(-1, 1)]         // negative
    [InlineData(int.MaxValue, 1)]
    [InlineData(int.MaxValue, int.MaxValue)] // the product must not overflow into "fits"
    [InlineData(-1, 0)]
    public void ReadCount_refuses_absurd_counts_at_the_count_offset(int count, int minBytesPerItem)
    {
        var data = new byte[2 + 4 + 24];
        BitConverter.TryWriteBytes(data.AsSpan(2), count);
        var error = Assert.Throws<EncodingFormatException>(() =>
        {
            var reader = new BinarySpanReader(data);
            reader.Skip(2);
            reader.ReadCount(minBytesPerItem);
        });
        Assert.Equal(EncodingProblem.CountOutOfRange, error.Problem);
        Assert.Equal(2, error.Offset);
        Assert.Equal(count, error.Value);
        Assert.Equal(24, error.AvailableBytes);
        Assert.Contains($"count {count}", error.Message);
    }

    [Fact]
    public void ReadCount_with_zero_item_size_only_checks_the_sign()
    {
        var data = new byte[4];
        BitConverter.TryWriteBytes(data, int.MaxValue);
        var reader = new BinarySpanReader(data);
        Assert.Equal(int.MaxValue, reader.ReadCount(0));
    }

    [Fact]
    public void ReadCount_rejects_a_negative_item_size_as_a_caller_bug()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new BinarySpanReader(new byte[4]).ReadCount(-1));
    }

    [Fact]
    public void ReadBytes_returns_a_view_not_a_copy()
    {
        var data = new byte[] { 1, 2, 3 };
        var reader = new BinarySpanReader(data);
        var view = reader.ReadBytes(3);
        data[1] = 42;
        Assert.Equal(42, view[1]);
    }
}
