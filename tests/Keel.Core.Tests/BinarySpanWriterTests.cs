using Keel.Core.Encoding;

namespace Keel.Core.Tests;

public class BinarySpanWriterTests
{
    [Fact]
    public void Fields_are_written_little_endian_in_order()
    {
        var buffer = new byte[1 + 4 + 4 + 8 + 8 + 2];
        var writer = new BinarySpanWriter(buffer);
        writer.U8(0xAB);
        writer.I32(-2);
        writer.U32(0x01020304);
        writer.I64(0x0102030405060708);
        writer.U64(ulong.MaxValue - 1);
        writer.Bytes([0x11, 0x22]);
        writer.AssertFull();
        Assert.Equal(buffer.Length, writer.Position);
        Assert.Equal(0, writer.Remaining);
        Assert.Equal(
            new byte[]
            {
                0xAB,
                0xFE, 0xFF, 0xFF, 0xFF,
                0x04, 0x03, 0x02, 0x01,
                0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
                0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                0x11, 0x22,
            },
            buffer);
    }

    [Fact]
    public void Take_hands_out_the_next_bytes_and_advances()
    {
        var buffer = new byte[6];
        var writer = new BinarySpanWriter(buffer);
        writer.U8(1);
        var slice = writer.Take(3);
        slice.Fill(9);
        Assert.Equal(4, writer.Position);
        Assert.Equal(2, writer.Remaining);
        Assert.Equal(new byte[] { 1, 9, 9, 9 }, writer.Written.ToArray());
        Assert.Equal(new byte[] { 1, 9, 9, 9, 0, 0 }, buffer);
    }

    [Fact]
    public void Writing_past_the_end_is_an_invariant_violation_naming_the_offset()
    {
        var error = Assert.Throws<InvariantViolationException>(() =>
        {
            var writer = new BinarySpanWriter(new byte[6]);
            writer.I32(1);
            writer.I32(2);
        });
        Assert.Contains("offset 4", error.Message);
        Assert.Contains("2 left", error.Message);
    }

    [Fact]
    public void A_failed_write_changes_nothing()
    {
        var buffer = new byte[3];
        var position = -1;
        Assert.Throws<InvariantViolationException>(() =>
        {
            var writer = new BinarySpanWriter(buffer);
            writer.U8(7);
            try { writer.I32(-1); }
            finally { position = writer.Position; }
        });
        Assert.Equal(1, position);
        Assert.Equal(new byte[] { 7, 0, 0 }, buffer);
    }

    [Fact]
    public void A_negative_take_is_refused()
    {
        Assert.Throws<InvariantViolationException>(() => new BinarySpanWriter(new byte[4]).Take(-1));
    }

    [Fact]
    public void AssertFull_fails_when_bytes_are_left()
    {
        Assert.Throws<InvariantViolationException>(() =>
        {
            var writer = new BinarySpanWriter(new byte[5]);
            writer.I32(1);
            writer.AssertFull();
        });
    }
}
