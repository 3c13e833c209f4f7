using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using Keel.Core;

namespace Keel.Leases;

public sealed partial class LeaseTable
{
    /// <summary>The encoding version written by <see cref="Snapshot"/>; <see cref="Restore"/> accepts only it.</summary>
    public const byte SnapshotVersion = 1;

    private static ReadOnlySpan<byte> SnapshotMagic => "KLSE"u8;

    private const int HeaderSize = 4 + 1 + 8 + 8 + 8 + 4; // magic, version, last time, next id, fencing token, lease count
    private const int LeaseFixedSize = 8 + 8 + 8 + 8 + 8 + 8 + 8 + 4; // id, ttl, token, recorded, remaining, renews, deadline, key count
    private const int ResourceFixedSize = 4 + 8 + 8; // name length, lease id, token
    private const int TrailerSize = 4; // CRC-32 of everything before it

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// The whole state as a compact little-endian binary encoding: magic "KLSE", a version byte, the time line, the id
    /// counter, the fencing counter, every lease (id, TTL, token, replicated record, renew count, deadline, keys) in id
    /// order, every held resource in name order, and a CRC-32 trailer. The same state always encodes to the same
    /// bytes. Whether the table is primary is not part of it: a restored table starts as a non-primary.
    /// </summary>
    /// <remarks>The deadline field is this node's (a primary's may be extended); everything else is replicated state.</remarks>
    public byte[] Snapshot()
    {
        var ids = Leases();
        var holds = ResourceHolds();
        var size = HeaderSize + 4 + TrailerSize;
        foreach (var id in ids)
        {
            size += LeaseFixedSize;
            if (_leases[id].Keys is { } keys)
                foreach (var key in keys) size += 4 + key.Length;
        }
        foreach (var hold in holds) size += ResourceFixedSize + StrictUtf8.GetByteCount(hold.Resource);

        var buffer = new byte[size];
        var writer = new SpanWriter(buffer);
        writer.WriteBytes(SnapshotMagic);
        writer.WriteByte(SnapshotVersion);
        writer.WriteInt64(_lastNowMs);
        writer.WriteInt64(_nextLeaseId);
        writer.WriteUInt64(_fencingToken);
        writer.WriteInt32(ids.Length);
        foreach (var id in ids)
        {
            var lease = _leases[id];
            writer.WriteInt64(lease.Id);
            writer.WriteInt64(lease.TtlMs);
            writer.WriteUInt64(lease.FencingToken);
            writer.WriteInt64(lease.RecordedAtMs);
            writer.WriteInt64(lease.RemainingMs);
            writer.WriteUInt64(lease.RenewCount);
            writer.WriteInt64(lease.ExpiresAtMs);
            writer.WriteInt32(lease.Keys?.Count ?? 0);
            if (lease.Keys is { } keys)
                foreach (var key in keys)
                {
                    writer.WriteInt32(key.Length);
                    writer.WriteBytes(key);
                }
        }
        writer.WriteInt32(holds.Length);
        foreach (var hold in holds)
        {
            var nameLength = StrictUtf8.GetByteCount(hold.Resource);
            writer.WriteInt32(nameLength);
            writer.Advance(StrictUtf8.GetBytes(hold.Resource, writer.Remaining[..nameLength]));
            writer.WriteInt64(hold.LeaseId);
            writer.WriteUInt64(hold.FencingToken);
        }
        writer.WriteUInt32(Crc32Of(buffer.AsSpan(0, writer.Position)));
        Invariant.Check(writer.Position == buffer.Length, "snapshot size computed exactly");
        return buffer;
    }

    /// <summary>
    /// Rebuilds a table from <see cref="Snapshot"/> bytes. The result is a non-primary table with exactly the
    /// snapshotted state; it validates everything and throws rather than build an inconsistent table.
    /// </summary>
    /// <exception cref="LeaseSnapshotException">The bytes are truncated, have a wrong magic, version or checksum, or
    /// describe an inconsistent state (ids out of order, a key in two leases, a resource held by a missing lease...).</exception>
    public static LeaseTable Restore(ReadOnlySpan<byte> snapshot, LeaseTableOptions? options = null)
    {
        if (snapshot.Length < HeaderSize + 4 + TrailerSize) throw new LeaseSnapshotException($"{snapshot.Length} bytes is too short");
        if (!snapshot[..4].SequenceEqual(SnapshotMagic)) throw new LeaseSnapshotException("wrong magic");
        if (snapshot[4] != SnapshotVersion) throw new LeaseSnapshotException($"unsupported version {snapshot[4]}");
        var body = snapshot[..^TrailerSize];
        if (BinaryPrimitives.ReadUInt32LittleEndian(snapshot[^TrailerSize..]) != Crc32Of(body))
            throw new LeaseSnapshotException("checksum mismatch");

        var table = new LeaseTable(options);
        var reader = new SpanReader(body[5..]);
        table._lastNowMs = reader.ReadInt64();
        table._nextLeaseId = reader.ReadInt64();
        table._fencingToken = reader.ReadUInt64();
        Require(table._nextLeaseId >= 0, "negative id counter");

        var leaseCount = reader.ReadCount(LeaseFixedSize);
        var previousId = 0L;
        for (var i = 0; i < leaseCount; i++)
        {
            var lease = new LeaseEntry(reader.ReadInt64())
            {
                TtlMs = reader.ReadInt64(),
                FencingToken = reader.ReadUInt64(),
                RecordedAtMs = reader.ReadInt64(),
                RemainingMs = reader.ReadInt64(),
                RenewCount = reader.ReadUInt64(),
                ExpiresAtMs = reader.ReadInt64(),
            };
            Require(lease.Id > previousId, "lease ids not positive and ascending");
            previousId = lease.Id;
            Require(lease.TtlMs > 0, "non-positive TTL");
            Require(lease.FencingToken > 0 && lease.FencingToken <= table._fencingToken, "lease token beyond the counter");
            Require(lease.RemainingMs >= 0, "negative remaining TTL");
            Require(lease.RecordedAtMs <= table._lastNowMs, "lease record later than the table's time");
            Require(lease.ExpiresAtMs >= lease.ReplicatedDeadlineMs, "deadline before the replicated deadline");
            var keyCount = reader.ReadCount(4);
            byte[]? previousKey = null;
            for (var k = 0; k < keyCount; k++)
            {
                var key = reader.ReadBytes(reader.ReadCount(1)).ToArray();
                Require(previousKey is null || ByteKeyComparer.Instance.Compare(previousKey, key) < 0, "keys not ascending");
                Require(table._keyOwners.TryAdd(key, lease.Id), "a key attached to two leases");
                (lease.Keys ??= new SortedSet<byte[]>(ByteKeyComparer.Instance)).Add(key);
                previousKey = key;
            }
            table._leases.Add(lease.Id, lease);
            table._expiry.Add(lease);
        }

        var resourceCount = reader.ReadCount(ResourceFixedSize);
        string? previousName = null;
        for (var i = 0; i < resourceCount; i++)
        {
            string name;
            try { name = StrictUtf8.GetString(reader.ReadBytes(reader.ReadCount(1))); }
            catch (DecoderFallbackException) { throw new LeaseSnapshotException("resource name is not UTF-8"); }
            var hold = new ResourceHold(name, reader.ReadInt64(), reader.ReadUInt64());
            Require(name.Length > 0, "empty resource name");
            Require(previousName is null || string.CompareOrdinal(previousName, name) < 0, "resources not ascending");
            Require(table._leases.TryGetValue(hold.LeaseId, out var holder), "resource held by a missing lease");
            Require(hold.FencingToken > 0 && hold.FencingToken <= table._fencingToken, "resource token beyond the counter");
            table._resources.Add(name, hold);
            (holder!.Resources ??= new SortedSet<string>(StringComparer.Ordinal)).Add(name);
            previousName = name;
        }
        Require(reader.IsAtEnd, "trailing bytes");
        try
        {
            table.AssertInvariants();
        }
        catch (InvariantViolationException e)
        {
            throw new LeaseSnapshotException(e.Message);
        }
        return table;
    }

    private static void Require(bool condition, string problem)
    {
        if (!condition) throw new LeaseSnapshotException(problem);
    }

    private static uint Crc32Of(ReadOnlySpan<byte> data) => Crc32.HashToUInt32(data);

    private ref struct SpanWriter(Span<byte> buffer)
    {
        private readonly Span<byte> _buffer = buffer;

        public int Position { get; private set; }

        public readonly Span<byte> Remaining => _buffer[Position..];

        public void Advance(int count) => Position += count;

        public void WriteByte(byte value) => _buffer[Position++] = value;

        public void WriteBytes(ReadOnlySpan<byte> value)
        {
            value.CopyTo(_buffer[Position..]);
            Position += value.Length;
        }

        public void WriteInt32(int value)
        {
            BinaryPrimitives.WriteInt32LittleEndian(_buffer[Position..], value);
            Position += 4;
        }

        public void WriteUInt32(uint value)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_buffer[Position..], value);
            Position += 4;
        }

        public void WriteInt64(long value)
        {
            BinaryPrimitives.WriteInt64LittleEndian(_buffer[Position..], value);
            Position += 8;
        }

        public void WriteUInt64(ulong value)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(_buffer[Position..], value);
            Position += 8;
        }
    }

    private ref struct SpanReader(ReadOnlySpan<byte> buffer)
    {
        private ReadOnlySpan<byte> _rest = buffer;

        public readonly bool IsAtEnd => _rest.IsEmpty;

        public ReadOnlySpan<byte> ReadBytes(int count)
        {
            if (count > _rest.Length) throw new LeaseSnapshotException("truncated");
            var bytes = _rest[..count];
            _rest = _rest[count..];
            return bytes;
        }

        public int ReadInt32() => BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4));

        public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(ReadBytes(8));

        public ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(ReadBytes(8));

        /// <summary>A count or length that must be non-negative and fit in what is left (each item at least <paramref name="minItemSize"/> bytes).</summary>
        public int ReadCount(int minItemSize)
        {
            var count = ReadInt32();
            if (count < 0 || (long)count * minItemSize > _rest.Length) throw new LeaseSnapshotException($"count {count} out of range");
            return count;
        }
    }
}
