using System.Buffers.Binary;

namespace Keel.Leases.Tests;

public class LeaseSnapshotTests
{
    private static LeaseTable Populated()
    {
        var table = new LeaseTable();
        table.Promote(0);
        var a = table.Grant(0, 10, 100).LeaseId;
        var b = table.Grant(77, 30, 200).LeaseId;
        table.Grant(0, 5, 300);
        table.Attach(a, "k/2"u8);
        table.Attach(a, "k/1"u8);
        table.Attach(b, ""u8);
        table.Locks.Acquire("db", a);
        table.Locks.Acquire("queue", b);
        table.KeepAlive(b, 1_000);
        table.ApplyCheckpoint(table.Checkpoint(2_000), 2_000);
        return table;
    }

    [Fact]
    public void Restore_of_a_snapshot_encodes_to_the_same_bytes_and_is_not_primary()
    {
        var table = Populated();
        var bytes = table.Snapshot();
        var restored = LeaseTable.Restore(bytes);
        Assert.Equal(bytes, restored.Snapshot());
        Assert.False(restored.IsPrimary);
        Assert.Equal(table.Leases(), restored.Leases());
        Assert.Equal(table.CurrentFencingToken, restored.CurrentFencingToken);
        Assert.Equal(table.NextLeaseId, restored.NextLeaseId);
        Assert.Equal(table.LastNowMs, restored.LastNowMs);
        Assert.Equal(table.Locks.Holds(), restored.Locks.Holds());
        Assert.Equal(table.TimeToLive(77, 2_000), restored.TimeToLive(77, 2_000) with { Keys = table.TimeToLive(77, 2_000).Keys });
        restored.AssertInvariants();
    }

    [Fact]
    public void The_fencing_counter_survives_a_restart()
    {
        var table = Populated();
        var before = table.CurrentFencingToken;
        var restored = LeaseTable.Restore(table.Snapshot());
        Assert.True(restored.Grant(0, 10, 3_000).FencingToken > before);
    }

    [Fact]
    public void An_empty_table_round_trips()
    {
        var bytes = new LeaseTable().Snapshot();
        Assert.Equal(4 + 1 + 8 + 8 + 8 + 4 + 4 + 4, bytes.Length);
        Assert.Equal(bytes, LeaseTable.Restore(bytes).Snapshot());
    }

    [Fact]
    public void Every_single_flipped_byte_is_detected()
    {
        var bytes = Populated().Snapshot();
        for (var i = 0; i < bytes.Length; i++)
        {
            var corrupt = (byte[])bytes.Clone();
            corrupt[i] ^= 0x5A;
            Assert.Throws<LeaseSnapshotException>(() => LeaseTable.Restore(corrupt));
        }
    }

    [Fact]
    public void Every_truncation_is_detected()
    {
        var bytes = Populated().Snapshot();
        for (var length = 0; length < bytes.Length; length++)
            Assert.Throws<LeaseSnapshotException>(() => LeaseTable.Restore(bytes.AsSpan(0, length)));
    }

    [Fact]
    public void Wrong_magic_and_unknown_versions_are_named()
    {
        var bytes = Populated().Snapshot();
        bytes[4] = 2;
        SnapshotBytes.Reseal(bytes);
        Assert.Contains("unsupported version 2", Assert.Throws<LeaseSnapshotException>(() => LeaseTable.Restore(bytes)).Message);
        bytes[0] = (byte)'X';
        Assert.Contains("wrong magic", Assert.Throws<LeaseSnapshotException>(() => LeaseTable.Restore(bytes)).Message);
    }

    [Fact]
    public void Inconsistent_content_with_a_valid_checksum_is_rejected()
    {
        var bytes = Populated().Snapshot();
        // First lease's remaining TTL (after id, ttl, token, recorded-at) made negative.
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(SnapshotBytes.FirstLeaseOffset + 32), -1);
        SnapshotBytes.Reseal(bytes);
        Assert.Contains("negative remaining TTL", Assert.Throws<LeaseSnapshotException>(() => LeaseTable.Restore(bytes)).Message);

        bytes = Populated().Snapshot();
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(SnapshotBytes.FencingTokenOffset), 1);
        SnapshotBytes.Reseal(bytes);
        Assert.Contains("beyond the counter", Assert.Throws<LeaseSnapshotException>(() => LeaseTable.Restore(bytes)).Message);

        bytes = Populated().Snapshot();
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(SnapshotBytes.FirstLeaseOffset), 1_000);
        SnapshotBytes.Reseal(bytes);
        Assert.Contains("ascending", Assert.Throws<LeaseSnapshotException>(() => LeaseTable.Restore(bytes)).Message);
    }

    [Fact]
    public void Trailing_bytes_are_rejected()
    {
        var bytes = Populated().Snapshot();
        var longer = new byte[bytes.Length + 1];
        bytes.AsSpan(0, bytes.Length - 4).CopyTo(longer);
        SnapshotBytes.Reseal(longer);
        Assert.Throws<LeaseSnapshotException>(() => LeaseTable.Restore(longer));
    }
}
