using System.Text;
using Keel.Core.Encoding;

namespace Keel.Gossip;

/// <summary>
/// The binary encoding of <see cref="GossipMessage"/> (little-endian, via <see cref="BinarySpanWriter"/>). Layout:
/// kind u8, section flags u16, probe sequence u32, then only the sections present: target u64, root hash u64,
/// counted lists of updates, digest entries, states and wants, bucket hashes, and a bucket count with a list of buckets. An update is member u64, status u8 (high bit: tags
/// follow), incarnation i64, from u64, then tags (three u8-length UTF-8 strings and an i32 load). Sizes are computable
/// up front (<see cref="SizeOf(GossipMessage)"/>) so the core can fill a packet to the limit without encoding twice.
/// </summary>
public static class GossipCodec
{
    /// <summary>Bytes of a message with no optional sections.</summary>
    public const int HeaderBytes = 1 + 2 + 4;

    /// <summary>Bytes of an update without tags.</summary>
    public const int UpdateFixedBytes = 8 + 1 + 8 + 8;

    /// <summary>Bytes of a digest entry.</summary>
    public const int DigestEntryBytes = 16;

    private const ushort FlagReply = 1, FlagTarget = 2, FlagRootHash = 4, FlagUpdates = 8, FlagDigest = 16, FlagStates = 32, FlagWants = 64, FlagBucketHashes = 128, FlagBuckets = 256;
    private const ushort KnownFlags = 511;
    private const byte TagsBit = 0x80;

    /// <summary>Encoded size of one update.</summary>
    public static int SizeOf(in MemberUpdate update) => UpdateFixedBytes + (update.Tags?.EncodedSize ?? 0);

    /// <summary>Encoded size of <paramref name="message"/>.</summary>
    public static int SizeOf(GossipMessage message)
    {
        var size = HeaderBytes;
        if (message.Target != 0) size += 8;
        if (message.RootHash != 0) size += 8;
        if (message.Updates.Count > 0) size += 4 + SizeOf(message.Updates);
        if (message.Digest.Count > 0) size += 4 + DigestEntryBytes * message.Digest.Count;
        if (message.States.Count > 0) size += 4 + SizeOf(message.States);
        if (message.Wants.Count > 0) size += 4 + 8 * message.Wants.Count;
        if (message.BucketHashes.Count > 0) size += 4 + 8 * message.BucketHashes.Count;
        if (message.BucketCount > 0) size += 4 + 4 + 4 * message.Buckets.Count;
        return size;
    }

    private static int SizeOf(List<MemberUpdate> updates)
    {
        var size = 0;
        foreach (var u in updates) size += SizeOf(u);
        return size;
    }

    /// <summary>Encodes into a new array.</summary>
    public static byte[] Encode(GossipMessage message)
    {
        var bytes = new byte[SizeOf(message)];
        Encode(message, bytes);
        return bytes;
    }

    /// <summary>Encodes into <paramref name="destination"/>; returns the bytes written.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is smaller than <see cref="SizeOf(GossipMessage)"/>.</exception>
    public static int Encode(GossipMessage message, Span<byte> destination)
    {
        var size = SizeOf(message);
        if (destination.Length < size) throw new ArgumentException($"need {size} bytes, have {destination.Length}", nameof(destination));
        var w = new BinarySpanWriter(destination[..size]);
        ushort flags = 0;
        if (message.IsReply) flags |= FlagReply;
        if (message.Target != 0) flags |= FlagTarget;
        if (message.RootHash != 0) flags |= FlagRootHash;
        if (message.Updates.Count > 0) flags |= FlagUpdates;
        if (message.Digest.Count > 0) flags |= FlagDigest;
        if (message.States.Count > 0) flags |= FlagStates;
        if (message.Wants.Count > 0) flags |= FlagWants;
        if (message.BucketHashes.Count > 0) flags |= FlagBucketHashes;
        if (message.BucketCount > 0) flags |= FlagBuckets;
        w.U8((byte)message.Kind);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(w.Take(2), flags);
        w.U32(message.ProbeSequence);
        if (message.Target != 0) w.U64(message.Target);
        if (message.RootHash != 0) w.U64(message.RootHash);
        if (message.Updates.Count > 0) WriteUpdates(ref w, message.Updates);
        if (message.Digest.Count > 0)
        {
            w.I32(message.Digest.Count);
            foreach (var d in message.Digest) { w.U64(d.Member); w.I64(d.Version); }
        }
        if (message.States.Count > 0) WriteUpdates(ref w, message.States);
        if (message.Wants.Count > 0)
        {
            w.I32(message.Wants.Count);
            foreach (var id in message.Wants) w.U64(id);
        }
        if (message.BucketHashes.Count > 0)
        {
            w.I32(message.BucketHashes.Count);
            foreach (var h in message.BucketHashes) w.U64(h);
        }
        if (message.BucketCount > 0)
        {
            w.I32(message.BucketCount);
            w.I32(message.Buckets.Count);
            foreach (var b in message.Buckets) w.I32(b);
        }
        w.AssertFull();
        return size;
    }

    private static void WriteUpdates(ref BinarySpanWriter w, List<MemberUpdate> updates)
    {
        w.I32(updates.Count);
        foreach (var u in updates)
        {
            w.U64(u.Member);
            w.U8((byte)((byte)u.Status | (u.Tags is null ? 0 : TagsBit)));
            w.I64(u.Incarnation);
            w.U64(u.From);
            if (u.Tags is { } tags)
            {
                WriteString(ref w, tags.Zone);
                WriteString(ref w, tags.Role);
                WriteString(ref w, tags.Version);
                w.I32(tags.Load);
            }
        }
    }

    private static void WriteString(ref BinarySpanWriter w, string text)
    {
        var count = Encoding.UTF8.GetByteCount(text);
        w.U8((byte)count);
        Encoding.UTF8.GetBytes(text, w.Take(count));
    }

    /// <summary>Decodes one message that must fill <paramref name="data"/> exactly.</summary>
    /// <exception cref="GossipFormatException">The bytes are not a valid message.</exception>
    public static GossipMessage Decode(ReadOnlySpan<byte> data)
    {
        try
        {
            var r = new BinarySpanReader(data);
            var kind = (GossipMessageKind)r.U8();
            if (kind < GossipMessageKind.Ping || kind > GossipMessageKind.JoinReply) throw new GossipFormatException($"unknown message kind {(byte)kind}");
            var flags = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(r.ReadBytes(2));
            if ((flags & ~KnownFlags) != 0) throw new GossipFormatException($"unknown flag bits 0x{flags:x4}");
            var bucketCount = 0;
            var message = new GossipMessage(kind)
            {
                IsReply = (flags & FlagReply) != 0,
                ProbeSequence = r.U32(),
                Target = (flags & FlagTarget) != 0 ? r.U64() : 0,
                RootHash = (flags & FlagRootHash) != 0 ? r.U64() : 0,
            };
            if ((flags & FlagUpdates) != 0) ReadUpdates(ref r, message.Updates);
            if ((flags & FlagDigest) != 0)
            {
                var count = r.ReadCount(DigestEntryBytes);
                for (var i = 0; i < count; i++) message.Digest.Add(new DigestEntry(r.U64(), r.I64()));
            }
            if ((flags & FlagStates) != 0) ReadUpdates(ref r, message.States);
            if ((flags & FlagWants) != 0)
            {
                var count = r.ReadCount(8);
                for (var i = 0; i < count; i++) message.Wants.Add(r.U64());
            }
            if ((flags & FlagBucketHashes) != 0)
            {
                var count = r.ReadCount(8);
                for (var i = 0; i < count; i++) message.BucketHashes.Add(r.U64());
            }
            if ((flags & FlagBuckets) != 0)
            {
                bucketCount = r.I32();
                if (bucketCount <= 0) throw new GossipFormatException($"bucket count {bucketCount} is not positive");
                var count = r.ReadCount(4);
                var withCount = new GossipMessage(kind)
                {
                    IsReply = message.IsReply, ProbeSequence = message.ProbeSequence, Target = message.Target, RootHash = message.RootHash, BucketCount = bucketCount,
                };
                withCount.Updates.AddRange(message.Updates);
                withCount.Digest.AddRange(message.Digest);
                withCount.States.AddRange(message.States);
                withCount.Wants.AddRange(message.Wants);
                withCount.BucketHashes.AddRange(message.BucketHashes);
                for (var i = 0; i < count; i++)
                {
                    var b = r.I32();
                    if (b < 0 || b >= bucketCount) throw new GossipFormatException($"bucket {b} outside 0..{bucketCount - 1}");
                    withCount.Buckets.Add(b);
                }
                message = withCount;
            }
            if (!r.IsAtEnd) throw new GossipFormatException($"{r.Remaining} trailing bytes after a {kind} message");
            return message;
        }
        catch (EncodingFormatException e)
        {
            throw new GossipFormatException($"malformed gossip message: {e.Message}", e);
        }
    }

    private static void ReadUpdates(ref BinarySpanReader r, List<MemberUpdate> into)
    {
        var count = r.ReadCount(UpdateFixedBytes);
        for (var i = 0; i < count; i++)
        {
            var member = r.U64();
            var statusByte = r.U8();
            var status = (MemberStatus)(statusByte & ~TagsBit);
            if (status > MemberStatus.Left) throw new GossipFormatException($"unknown member status {statusByte & ~TagsBit}");
            var incarnation = r.I64();
            if (incarnation < 0) throw new GossipFormatException($"negative incarnation {incarnation}");
            var from = r.U64();
            MemberTags? tags = null;
            if ((statusByte & TagsBit) != 0)
            {
                var zone = ReadString(ref r);
                var role = ReadString(ref r);
                var version = ReadString(ref r);
                var load = r.I32();
                try { tags = new MemberTags(zone, role, version, load); }
                catch (MetadataTooLargeException e) { throw new GossipFormatException(e.Message, e); }
            }
            into.Add(new MemberUpdate(member, status, incarnation, from, tags));
        }
    }

    private static string ReadString(ref BinarySpanReader r)
    {
        var length = r.U8();
        return Encoding.UTF8.GetString(r.ReadBytes(length));
    }
}

/// <summary>Bytes received from the network are not a valid gossip message; the message is dropped and counted.</summary>
public sealed class GossipFormatException : FormatException
{
    /// <summary>Creates the exception.</summary>
    public GossipFormatException(string message, Exception? inner = null) : base(message, inner) { }
}
