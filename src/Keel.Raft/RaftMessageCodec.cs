using Keel.Core.Encoding;
using Keel.Quorum;

namespace Keel.Raft;

/// <summary>
/// The binary form of a Raft <see cref="Message"/> between Keel nodes (the role etcd's <c>raftpb.Message</c> protobuf
/// plays in rafthttp), used by the server's peer transport and by the simulator for every message it delivers.
/// Little-endian, every length checked on decode, so a corrupt or hostile frame fails with
/// <see cref="FormatException"/> instead of reaching Raft:
/// <c>u8 version | u8 type | u64 from | u64 to | u64 term | u64 logTerm | u64 index | u64 commit | u8 flags |
/// u64 rejectHint | u64 context | i32 entryCount | entries | [snapshot chunk]</c>, an entry being
/// <c>u64 index | u64 term | u8 type | i32 length | bytes</c>.
/// </summary>
public static class RaftMessageCodec
{
    /// <summary>The format version written first.</summary>
    public const byte Version = 1;

    private const int FixedBytes = 1 + 1 + 8 * 6 + 1 + 8 + 8 + 4;
    private const int EntryFixedBytes = 8 + 8 + 1 + 4;
    private const byte FlagReject = 1, FlagLeaderTransfer = 2, FlagSnapshot = 4;
    private const byte KnownFlags = FlagReject | FlagLeaderTransfer | FlagSnapshot;

    /// <summary>The encoded size of <paramref name="message"/>.</summary>
    public static int EncodedSize(Message message)
    {
        ArgumentNullException.ThrowIfNull(message);
        long size = FixedBytes;
        foreach (var entry in message.Entries) size += EntryFixedBytes + entry.Data.Length;
        if (message.Snapshot is { } chunk) size += SnapshotChunkSize(chunk);
        return checked((int)size);
    }

    /// <summary>Encodes <paramref name="message"/> into a new array of exactly <see cref="EncodedSize"/> bytes.</summary>
    public static byte[] Encode(Message message)
    {
        var bytes = new byte[EncodedSize(message)];
        Encode(message, bytes);
        return bytes;
    }

    /// <summary>Encodes <paramref name="message"/> into <paramref name="destination"/>, which must be exactly its size.</summary>
    public static void Encode(Message message, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(message);
        var writer = new BinarySpanWriter(destination);
        writer.U8(Version);
        writer.U8((byte)message.Type);
        writer.U64(message.From);
        writer.U64(message.To);
        writer.U64(message.Term);
        writer.U64(message.LogTerm);
        writer.U64(message.Index);
        writer.U64(message.Commit);
        writer.U8((byte)((message.Reject ? FlagReject : 0) | (message.LeaderTransfer ? FlagLeaderTransfer : 0)
            | (message.Snapshot is null ? 0 : FlagSnapshot)));
        writer.U64(message.RejectHint);
        writer.U64(message.Context);
        writer.I32(message.Entries.Count);
        foreach (var entry in message.Entries)
        {
            writer.U64(entry.Index);
            writer.U64(entry.Term);
            writer.U8((byte)entry.Type);
            writer.I32(entry.Data.Length);
            writer.Bytes(entry.Data.Span);
        }
        if (message.Snapshot is { } chunk) WriteSnapshotChunk(ref writer, chunk);
        writer.AssertFull();
    }

    /// <summary>Decodes a message written by <see cref="Encode(Message)"/>; the entries' data are copies.</summary>
    /// <exception cref="FormatException">The bytes are not a message of this format.</exception>
    public static Message Decode(ReadOnlySpan<byte> data)
    {
        var reader = new BinarySpanReader(data);
        var version = reader.U8();
        if (version != Version) throw new FormatException($"raft message version {version} is not {Version}");
        var type = reader.U8();
        if (type > (byte)MessageType.ReadIndexResponse) throw new FormatException($"unknown raft message type {type}");
        var from = reader.U64();
        var to = reader.U64();
        var term = reader.U64();
        var logTerm = reader.U64();
        var index = reader.U64();
        var commit = reader.U64();
        var flags = reader.U8();
        if ((flags & ~KnownFlags) != 0) throw new FormatException($"unknown raft message flag bits 0x{flags:x2}");
        var rejectHint = reader.U64();
        var context = reader.U64();
        var count = reader.ReadCount(EntryFixedBytes);
        var entries = count == 0 ? Array.Empty<Entry>() : new Entry[count];
        for (var i = 0; i < count; i++)
        {
            var entryIndex = reader.U64();
            var entryTerm = reader.U64();
            var entryType = reader.U8();
            if (entryType > (byte)EntryType.ConfChange) throw new FormatException($"unknown entry type {entryType}");
            var length = reader.ReadCount(1);
            entries[i] = new Entry(entryIndex, entryTerm, (EntryType)entryType, reader.ReadBytes(length).ToArray());
        }
        SnapshotChunk? snapshot = (flags & FlagSnapshot) != 0 ? ReadSnapshotChunk(ref reader) : null;
        if (!reader.IsAtEnd) throw new FormatException($"{reader.Remaining} trailing bytes after a raft message");
        return new Message
        {
            Type = (MessageType)type,
            From = from,
            To = to,
            Term = term,
            LogTerm = logTerm,
            Index = index,
            Commit = commit,
            Reject = (flags & FlagReject) != 0,
            LeaderTransfer = (flags & FlagLeaderTransfer) != 0,
            RejectHint = rejectHint,
            Context = context,
            Entries = entries,
            Snapshot = snapshot,
        };
    }

    private static long SnapshotChunkSize(SnapshotChunk chunk) =>
        8 + 8 + MembershipSize(chunk.Metadata.Membership) + 8 + 8 + 4 + chunk.Data.Length;

    private static int MembershipSize(Membership membership) =>
        4 + 8 * membership.Voters.Incoming.Count + 4 + 8 * membership.Voters.Outgoing.Count
        + 4 + 8 * membership.Learners.Count + 4 + 8 * membership.LearnersNext.Count + 1;

    private static void WriteSnapshotChunk(ref BinarySpanWriter writer, SnapshotChunk chunk)
    {
        writer.U64(chunk.Metadata.Index);
        writer.U64(chunk.Metadata.Term);
        var membership = chunk.Metadata.Membership;
        WriteIds(ref writer, membership.Voters.Incoming);
        WriteIds(ref writer, membership.Voters.Outgoing);
        WriteIds(ref writer, membership.Learners);
        WriteIds(ref writer, membership.LearnersNext);
        writer.U8(membership.AutoLeave ? (byte)1 : (byte)0);
        writer.U64(chunk.Offset);
        writer.U64(chunk.TotalBytes);
        writer.I32(chunk.Data.Length);
        writer.Bytes(chunk.Data.Span);
    }

    private static void WriteIds(ref BinarySpanWriter writer, IReadOnlyCollection<ulong> ids)
    {
        writer.I32(ids.Count);
        foreach (var id in ids) writer.U64(id);
    }

    private static SnapshotChunk ReadSnapshotChunk(ref BinarySpanReader reader)
    {
        var index = reader.U64();
        var term = reader.U64();
        var incoming = ReadIds(ref reader);
        var outgoing = ReadIds(ref reader);
        var learners = ReadIds(ref reader);
        var learnersNext = ReadIds(ref reader);
        var autoLeave = reader.U8() != 0;
        var offset = reader.U64();
        var total = reader.U64();
        var length = reader.ReadCount(1);
        var data = reader.ReadBytes(length).ToArray();
        Membership membership;
        try
        {
            membership = new Membership(new JointConfig(new MajorityConfig(incoming), new MajorityConfig(outgoing)),
                learners, learnersNext, autoLeave);
        }
        catch (ConfigurationChangeException exception)
        {
            // Decode promises FormatException for anything malformed; a broken configuration is malformed input.
            throw new FormatException($"snapshot configuration: {exception.Message}", exception);
        }
        return new SnapshotChunk(new SnapshotMetadata(index, term, membership), offset, total, data);
    }

    private static ulong[] ReadIds(ref BinarySpanReader reader)
    {
        var count = reader.ReadCount(8);
        var ids = new ulong[count];
        for (var i = 0; i < count; i++) ids[i] = reader.U64();
        return ids;
    }
}
