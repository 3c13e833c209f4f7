using System.Text;
using Keel.Core.Encoding;
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
    private const int TrailerSize = ChecksummedFrame.ChecksumBytes; // CRC-32 of everything before it

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
        var writer = new BinarySpanWriter(buffer);
        ChecksummedFrame.WriteHeader(ref writer, SnapshotMagic, SnapshotVersion);
        writer.I64(_lastNowMs);
        writer.I64(_nextLeaseId);
        writer.U64(_fencingToken);
        writer.I32(ids.Length);
        foreach (var id in ids)
        {
            var lease = _leases[id];
            writer.I64(lease.Id);
            writer.I64(lease.TtlMs);
            writer.U64(lease.FencingToken);
            writer.I64(lease.RecordedAtMs);
            writer.I64(lease.RemainingMs);
            writer.U64(lease.RenewCount);
            writer.I64(lease.ExpiresAtMs);
            writer.I32(lease.Keys?.Count ?? 0);
            if (lease.Keys is { } keys)
                foreach (var key in keys)
                {
                    writer.I32(key.Length);
                    writer.Bytes(key);
                }
        }
        writer.I32(holds.Length);
        foreach (var hold in holds)
        {
            var nameLength = StrictUtf8.GetByteCount(hold.Resource);
            writer.I32(nameLength);
            var written = StrictUtf8.GetBytes(hold.Resource, writer.Take(nameLength));
            Invariant.Check(written == nameLength, "resource name encoded to its counted length");
            writer.I64(hold.LeaseId);
            writer.U64(hold.FencingToken);
        }
        ChecksummedFrame.WriteChecksum(ref writer);
        writer.AssertFull();
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
        try
        {
            var reader = ChecksummedFrame.Open(snapshot, SnapshotMagic, SnapshotVersion);
            return ReadTable(ref reader, options);
        }
        catch (EncodingFormatException e)
        {
            // The shared codec reports facts; the wording stays this table's own.
            throw new LeaseSnapshotException(e.Problem switch
            {
                EncodingProblem.WrongMagic => "wrong magic",
                EncodingProblem.UnsupportedVersion => $"unsupported version {e.Value}",
                EncodingProblem.ChecksumMismatch => "checksum mismatch",
                EncodingProblem.CountOutOfRange => $"count {e.Value} out of range",
                EncodingProblem.Truncated => "truncated",
                _ => e.Message,
            });
        }
    }

    private static LeaseTable ReadTable(ref BinarySpanReader reader, LeaseTableOptions? options)
    {
        var table = new LeaseTable(options);
        table._lastNowMs = reader.I64();
        table._nextLeaseId = reader.I64();
        table._fencingToken = reader.U64();
        Require(table._nextLeaseId >= 0, "negative id counter");

        var leaseCount = reader.ReadCount(LeaseFixedSize);
        var previousId = 0L;
        for (var i = 0; i < leaseCount; i++)
        {
            var lease = new LeaseEntry(reader.I64())
            {
                TtlMs = reader.I64(),
                FencingToken = reader.U64(),
                RecordedAtMs = reader.I64(),
                RemainingMs = reader.I64(),
                RenewCount = reader.U64(),
                ExpiresAtMs = reader.I64(),
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
            var hold = new ResourceHold(name, reader.I64(), reader.U64());
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
}
