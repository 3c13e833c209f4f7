using System.Buffers.Binary;

namespace Keel.Storage;

/// <summary>The kinds of record a WAL segment holds.</summary>
internal enum WalRecordType : byte
{
    /// <summary>First record of every segment: sequence number and first index (etcd writes crc + metadata + snapshot first).</summary>
    SegmentHeader = 1,

    /// <summary>A log entry: index, term, payload.</summary>
    Entry = 2,

    /// <summary>Raft hard state: term, vote, commit.</summary>
    HardState = 3,

    /// <summary>A snapshot covering the log up to index and term was durably saved.</summary>
    SnapshotMarker = 4,
}

/// <summary>
/// Record framing: <c>length u32 | ~length u32 | type u8 | crc32c(type ‖ payload) u32 | payload | 0xA5</c>, little-endian.
/// </summary>
/// <remarks>
/// Why the two extra guards beyond length, type and CRC: recovery must tell a torn write (the unacknowledged tail, cut
/// off) from a flipped bit (damage to acknowledged data, refused). A torn record is a prefix of its bytes followed by
/// the zeros of the preallocated segment, so its end marker reads 0; a complete record with a flipped bit keeps a
/// non-zero end marker (0xA5 has four bits set, so no single flip zeroes it). The length's complement makes a flipped
/// length visible, so the end marker is always looked for at the right place.
/// </remarks>
internal static class WalRecord
{
    public const int HeaderBytes = 13;
    public const int FrameOverheadBytes = HeaderBytes + 1;
    public const byte EndMarker = 0xA5;

    public static int FrameBytes(int payloadBytes) => FrameOverheadBytes + payloadBytes;

    /// <summary>Writes a frame whose payload is <paramref name="fixedPart"/> followed by <paramref name="data"/> into <paramref name="destination"/>.</summary>
    public static int Write(Span<byte> destination, WalRecordType type, ReadOnlySpan<byte> fixedPart, ReadOnlySpan<byte> data)
    {
        var payloadBytes = fixedPart.Length + data.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)payloadBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], ~(uint)payloadBytes);
        destination[8] = (byte)type;
        fixedPart.CopyTo(destination[HeaderBytes..]);
        data.CopyTo(destination[(HeaderBytes + fixedPart.Length)..]);
        var crc = Crc32C.Append(Crc32C.Start, destination.Slice(8, 1));
        crc = Crc32C.Append(crc, destination.Slice(HeaderBytes, payloadBytes));
        BinaryPrimitives.WriteUInt32LittleEndian(destination[9..], Crc32C.Finish(crc));
        destination[HeaderBytes + payloadBytes] = EndMarker;
        return FrameBytes(payloadBytes);
    }

    /// <summary>The outcome of reading one frame.</summary>
    public enum Outcome
    {
        /// <summary>A valid record.</summary>
        Record,

        /// <summary>An all-zero header: the preallocated space after the last record.</summary>
        CleanEnd,

        /// <summary>An incomplete record: a torn or half-written write.</summary>
        Torn,

        /// <summary>A complete record that is damaged.</summary>
        Corrupt,
    }

    /// <summary>Reads the frame at <paramref name="offset"/> of <paramref name="segment"/>.</summary>
    public static Outcome TryRead(ReadOnlySpan<byte> segment, int offset, int maxPayloadBytes,
        out WalRecordType type, out int payloadOffset, out int payloadBytes, out string problem)
    {
        type = default;
        payloadOffset = offset + HeaderBytes;
        payloadBytes = 0;
        problem = "";
        var rest = segment[offset..];
        if (rest.Length < HeaderBytes)
        {
            if (!rest.ContainsAnyExcept((byte)0)) return Outcome.CleanEnd;
            problem = "a record header is cut short by the end of the file";
            return Outcome.Torn;
        }
        if (!rest[..HeaderBytes].ContainsAnyExcept((byte)0)) return Outcome.CleanEnd;
        var length = BinaryPrimitives.ReadUInt32LittleEndian(rest);
        var lengthCheck = BinaryPrimitives.ReadUInt32LittleEndian(rest[4..]);
        if (lengthCheck != ~length)
        {
            // A header is written front to back, so a half-written one ends in zeros and so does what follows it.
            // A complete record whose length bit flipped is told apart by its non-zero payload: an entry starts with
            // its index (at least 1), and the shorter fixed records put their 0xA5 end marker within the next 25 bytes.
            var after = rest[(HeaderBytes - 1)..Math.Min(rest.Length, HeaderBytes + 64)];
            if (!after.ContainsAnyExcept((byte)0))
            {
                problem = "the record header is half written";
                return Outcome.Torn;
            }
            problem = $"the record length {length} does not match its check word (flipped bits in the header)";
            return Outcome.Corrupt;
        }
        if (length > (uint)maxPayloadBytes)
        {
            problem = $"the record length {length} exceeds the maximum payload of {maxPayloadBytes} bytes";
            return Outcome.Corrupt;
        }
        payloadBytes = (int)length;
        var frameBytes = FrameBytes(payloadBytes);
        if (frameBytes > rest.Length)
        {
            problem = "the record runs past the end of the file";
            return Outcome.Torn;
        }
        var marker = rest[frameBytes - 1];
        type = (WalRecordType)rest[8];
        var stored = BinaryPrimitives.ReadUInt32LittleEndian(rest[9..]);
        var crc = Crc32C.Finish(Crc32C.Append(Crc32C.Append(Crc32C.Start, rest.Slice(8, 1)), rest.Slice(HeaderBytes, payloadBytes)));
        if (crc == stored && marker == EndMarker && type is >= WalRecordType.SegmentHeader and <= WalRecordType.SnapshotMarker)
            return Outcome.Record;
        if (marker == 0)
        {
            problem = "the record was never completely written (its end marker is missing)";
            return Outcome.Torn;
        }
        problem = crc != stored
            ? $"CRC32C mismatch (stored 0x{stored:x8}, computed 0x{crc:x8})"
            : marker != EndMarker ? $"bad end marker 0x{marker:x2}" : $"unknown record type {(byte)type}";
        return Outcome.Corrupt;
    }
}
