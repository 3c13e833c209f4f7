using System.Buffers.Binary;
using System.IO.Hashing;

namespace Keel.Leases.Tests;

/// <summary>Edits a snapshot's fields and re-seals its checksum, to reach states no public call reaches quickly.</summary>
internal static class SnapshotBytes
{
    public const int NextLeaseIdOffset = 4 + 1 + 8;
    public const int FencingTokenOffset = NextLeaseIdOffset + 8;
    public const int FirstLeaseOffset = FencingTokenOffset + 8 + 4;

    public static LeaseTable Patch(LeaseTable table, long? nextLeaseId = null, ulong? fencingToken = null)
    {
        var bytes = table.Snapshot();
        if (nextLeaseId is { } id) BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(NextLeaseIdOffset), id);
        if (fencingToken is { } token) BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(FencingTokenOffset), token);
        Reseal(bytes);
        return LeaseTable.Restore(bytes, table.Options);
    }

    public static void Reseal(byte[] bytes) =>
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(bytes.Length - 4), Crc32.HashToUInt32(bytes.AsSpan(0, bytes.Length - 4)));
}
