using System.Buffers.Binary;
using System.IO.Hashing;

namespace Keel.Core.Encoding;

/// <summary>
/// The envelope shared by Keel's persistent encodings: <c>magic | version byte | payload | CRC-32 trailer</c>, the
/// CRC-32 (IEEE) covering everything before it, stored little-endian. The magic says what the bytes are, the version
/// lets a format change be refused instead of misread, and the checksum turns a torn write or flipped bit into an
/// error instead of a silently wrong state.
/// </summary>
/// <remarks>
/// Writing: size the buffer as <see cref="OverheadBytes"/> plus the payload, then <see cref="WriteHeader"/>, the
/// payload fields, <see cref="WriteChecksum"/>. Reading: <see cref="Open"/> checks length, magic, version and checksum
/// in that order and throws <see cref="EncodingFormatException"/>; <see cref="Inspect"/> only reports, for callers
/// that check in their own order or word their own errors. Same idea as etcd's WAL record CRC
/// (server/storage/wal/encoder.go) and CockroachDB's checksummed Pebble blocks.
/// </remarks>
public static class ChecksummedFrame
{
    /// <summary>Size of the version field that follows the magic.</summary>
    public const int VersionBytes = 1;

    /// <summary>Size of the CRC-32 trailer.</summary>
    public const int ChecksumBytes = 4;

    /// <summary>Size of magic plus version, i.e. the offset of the payload.</summary>
    public static int HeaderBytes(ReadOnlySpan<byte> magic) => magic.Length + VersionBytes;

    /// <summary>Size of a frame with an empty payload: magic, version and trailer.</summary>
    public static int OverheadBytes(ReadOnlySpan<byte> magic) => magic.Length + VersionBytes + ChecksumBytes;

    /// <summary>The CRC-32 (IEEE 802.3, as zlib and System.IO.Hashing compute it) of <paramref name="data"/>.</summary>
    public static uint Checksum(ReadOnlySpan<byte> data) => Crc32.HashToUInt32(data);

    /// <summary>Writes the magic and version; the writer must be at the start of the frame, since the checksum covers all it has written.</summary>
    /// <exception cref="InvariantViolationException">The writer is not at offset 0, or the buffer is too small.</exception>
    public static void WriteHeader(ref BinarySpanWriter writer, ReadOnlySpan<byte> magic, byte version)
    {
        Invariant.Check(writer.Position == 0, "a frame header starts its buffer");
        writer.Bytes(magic);
        writer.U8(version);
    }

    /// <summary>Appends the CRC-32 of everything the writer has written, which completes the frame.</summary>
    /// <exception cref="InvariantViolationException">Fewer than <see cref="ChecksumBytes"/> bytes are free.</exception>
    public static void WriteChecksum(ref BinarySpanWriter writer) => writer.U32(Checksum(writer.Written));

    /// <summary>
    /// Splits <paramref name="frame"/> into its parts and computes its checksum without judging anything but its
    /// length, so that the caller can check magic, version and checksum in the order (and with the words) it needs.
    /// </summary>
    /// <exception cref="EncodingFormatException">The frame is shorter than <see cref="OverheadBytes"/> (<see cref="EncodingProblem.FrameTooShort"/>).</exception>
    public static ChecksummedFrameContents Inspect(ReadOnlySpan<byte> frame, ReadOnlySpan<byte> magic)
    {
        var overhead = OverheadBytes(magic);
        if (frame.Length < overhead)
            throw new EncodingFormatException(EncodingProblem.FrameTooShort, 0, frame.Length, overhead);
        return new ChecksummedFrameContents(frame, magic);
    }

    /// <summary>
    /// Validates <paramref name="frame"/> (length, then magic, then version, then checksum) and returns a reader
    /// positioned at the payload, whose offsets count from the start of the frame. The reader stops before the trailer.
    /// </summary>
    /// <exception cref="EncodingFormatException">The first check that failed: <see cref="EncodingProblem.FrameTooShort"/>,
    /// <see cref="EncodingProblem.WrongMagic"/>, <see cref="EncodingProblem.UnsupportedVersion"/> or
    /// <see cref="EncodingProblem.ChecksumMismatch"/>.</exception>
    public static BinarySpanReader Open(ReadOnlySpan<byte> frame, ReadOnlySpan<byte> magic, byte version)
    {
        var contents = Inspect(frame, magic);
        if (!contents.MagicMatches)
            throw new EncodingFormatException(EncodingProblem.WrongMagic, 0, 0, frame.Length);
        if (contents.Version != version)
            throw new EncodingFormatException(EncodingProblem.UnsupportedVersion, magic.Length, contents.Version, version);
        if (!contents.ChecksumMatches)
            throw new EncodingFormatException(EncodingProblem.ChecksumMismatch, contents.Body.Length, contents.StoredChecksum, contents.ComputedChecksum);
        return contents.PayloadReader();
    }
}

/// <summary>The parts of a frame as <see cref="ChecksummedFrame.Inspect"/> found them, unjudged (a view, no copies).</summary>
public readonly ref struct ChecksummedFrameContents
{
    internal ChecksummedFrameContents(ReadOnlySpan<byte> frame, ReadOnlySpan<byte> expectedMagic)
    {
        Body = frame[..^ChecksumBytesLocal];
        MagicMatches = frame[..expectedMagic.Length].SequenceEqual(expectedMagic);
        Version = frame[expectedMagic.Length];
        PayloadOffset = expectedMagic.Length + ChecksummedFrame.VersionBytes;
        StoredChecksum = BinaryPrimitives.ReadUInt32LittleEndian(frame[^ChecksumBytesLocal..]);
        ComputedChecksum = ChecksummedFrame.Checksum(Body);
    }

    private const int ChecksumBytesLocal = ChecksummedFrame.ChecksumBytes;

    /// <summary>Everything the checksum covers: header and payload, without the trailer.</summary>
    public ReadOnlySpan<byte> Body { get; }

    /// <summary>Whether the frame starts with the expected magic.</summary>
    public bool MagicMatches { get; }

    /// <summary>The version byte after the magic.</summary>
    public byte Version { get; }

    /// <summary>Offset of the payload from the start of the frame.</summary>
    public int PayloadOffset { get; }

    /// <summary>The payload: between the version byte and the trailer.</summary>
    public ReadOnlySpan<byte> Payload => Body[PayloadOffset..];

    /// <summary>The CRC-32 stored in the trailer.</summary>
    public uint StoredChecksum { get; }

    /// <summary>The CRC-32 of <see cref="Body"/>.</summary>
    public uint ComputedChecksum { get; }

    /// <summary>Whether the stored and computed checksums agree.</summary>
    public bool ChecksumMatches => StoredChecksum == ComputedChecksum;

    /// <summary>A reader over <see cref="Body"/> positioned at <see cref="PayloadOffset"/>, so its offsets count from the start of the frame.</summary>
    public BinarySpanReader PayloadReader()
    {
        var reader = new BinarySpanReader(Body);
        reader.Skip(PayloadOffset);
        return reader;
    }
}
