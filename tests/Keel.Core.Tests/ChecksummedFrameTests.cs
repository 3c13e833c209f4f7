using System.Buffers.Binary;
using System.IO.Hashing;
using Keel.Core.Encoding;

namespace Keel.Core.Tests;

public class ChecksummedFrameTests
{
    private static ReadOnlySpan<byte> Magic => "KTST"u8;

    private static byte[] Frame(byte version = 3, long payload = 0x0102030405060708)
    {
        var buffer = new byte[ChecksummedFrame.OverheadBytes(Magic) + 8];
        var writer = new BinarySpanWriter(buffer);
        ChecksummedFrame.WriteHeader(ref writer, Magic, version);
        writer.I64(payload);
        ChecksummedFrame.WriteChecksum(ref writer);
        writer.AssertFull();
        return buffer;
    }

    private static void Reseal(byte[] frame) =>
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(frame.Length - 4), Crc32.HashToUInt32(frame.AsSpan(0, frame.Length - 4)));

    private static EncodingFormatException Refusal(byte[] frame) =>
        Assert.Throws<EncodingFormatException>(() => ChecksummedFrame.Open(frame, Magic, 3));

    [Fact]
    public void The_layout_is_magic_version_payload_and_a_little_endian_crc32_of_everything_before()
    {
        var frame = Frame();
        Assert.Equal("KTST"u8.ToArray(), frame[..4]);
        Assert.Equal(3, frame[4]);
        Assert.Equal(0x0102030405060708, BinaryPrimitives.ReadInt64LittleEndian(frame.AsSpan(5)));
        Assert.Equal(Crc32.HashToUInt32(frame.AsSpan(0, 13)), BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(13)));
        Assert.Equal(5, ChecksummedFrame.HeaderBytes(Magic));
        Assert.Equal(9, ChecksummedFrame.OverheadBytes(Magic));
    }

    [Fact]
    public void The_checksum_is_the_standard_crc32()
    {
        // The check value of CRC-32/ISO-HDLC (zlib's crc32), from the CRC catalogue.
        Assert.Equal(0xCBF43926u, ChecksummedFrame.Checksum("123456789"u8));
    }

    [Fact]
    public void Open_returns_a_reader_at_the_payload_with_frame_offsets()
    {
        var frame = Frame();
        var reader = ChecksummedFrame.Open(frame, Magic, 3);
        Assert.Equal(5, reader.Position);
        Assert.Equal(0x0102030405060708, reader.I64());
        Assert.True(reader.IsAtEnd); // the trailer is not part of the payload
    }

    [Fact]
    public void A_frame_shorter_than_its_overhead_is_refused()
    {
        for (var length = 0; length < 9; length++)
        {
            var error = Refusal(new byte[length]);
            Assert.Equal(EncodingProblem.FrameTooShort, error.Problem);
            Assert.Equal(length, error.Value);
        }
    }

    [Fact]
    public void An_empty_payload_is_a_valid_frame()
    {
        var buffer = new byte[ChecksummedFrame.OverheadBytes(Magic)];
        var writer = new BinarySpanWriter(buffer);
        ChecksummedFrame.WriteHeader(ref writer, Magic, 3);
        ChecksummedFrame.WriteChecksum(ref writer);
        writer.AssertFull();
        Assert.True(ChecksummedFrame.Open(buffer, Magic, 3).IsAtEnd);
    }

    [Fact]
    public void Wrong_magic_is_reported_before_version_and_checksum()
    {
        var frame = Frame();
        frame[0] = (byte)'X';
        frame[4] = 9;
        Assert.Equal(EncodingProblem.WrongMagic, Refusal(frame).Problem);
    }

    [Fact]
    public void An_unknown_version_is_reported_with_both_versions()
    {
        var frame = Frame(version: 4);
        var error = Refusal(frame);
        Assert.Equal(EncodingProblem.UnsupportedVersion, error.Problem);
        Assert.Equal(4, error.Value);
        Assert.Contains("version 4", error.Message);
        Assert.Contains("version 3", error.Message);
    }

    [Fact]
    public void A_damaged_payload_or_trailer_fails_the_checksum()
    {
        foreach (var index in new[] { 5, 12, 13, 16 })
        {
            var frame = Frame();
            frame[index] ^= 0x10;
            var error = Refusal(frame);
            Assert.Equal(EncodingProblem.ChecksumMismatch, error.Problem);
            Assert.Equal(13, error.Offset);
            Assert.Contains("checksum", error.Message);
        }
    }

    [Fact]
    public void A_resealed_frame_passes_the_checksum()
    {
        var frame = Frame();
        frame[6] ^= 0xFF;
        Reseal(frame);
        var reader = ChecksummedFrame.Open(frame, Magic, 3);
        Assert.NotEqual(0x0102030405060708, reader.I64());
    }

    [Fact]
    public void Inspect_reports_every_part_without_judging()
    {
        var frame = Frame(version: 7);
        frame[0] = (byte)'X';
        frame[8] ^= 1;
        var contents = ChecksummedFrame.Inspect(frame, Magic);
        Assert.False(contents.MagicMatches);
        Assert.Equal(7, contents.Version);
        Assert.False(contents.ChecksumMatches);
        Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(13)), contents.StoredChecksum);
        Assert.Equal(Crc32.HashToUInt32(frame.AsSpan(0, 13)), contents.ComputedChecksum);
        Assert.Equal(13, contents.Body.Length);
        Assert.Equal(5, contents.PayloadOffset);
        Assert.Equal(frame[5..13], contents.Payload.ToArray());
        Assert.Equal(5, contents.PayloadReader().Position);
    }

    [Fact]
    public void The_header_must_start_the_buffer()
    {
        Assert.Throws<InvariantViolationException>(() =>
        {
            var writer = new BinarySpanWriter(new byte[32]);
            writer.U8(0);
            ChecksummedFrame.WriteHeader(ref writer, Magic, 1);
        });
    }
}
