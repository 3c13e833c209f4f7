using Keel.Core;
using Keel.Simulation;
using static Keel.Storage.Tests.TestDisks;

namespace Keel.Storage.Tests;

public sealed class WalBasicsTests
{
    private static readonly WalOptions Small = new() { SegmentSizeBytes = 1024 };

    [Fact]
    public void Crc32C_matches_the_Castagnoli_check_value_and_streams()
    {
        var data = "123456789"u8;
        Assert.Equal(0xE3069283u, Crc32C.Compute(data));
        Assert.Equal(Crc32C.Compute(data), Crc32C.Finish(Crc32C.Append(Crc32C.Append(Crc32C.Start, data[..4]), data[4..])));
        Assert.NotEqual(System.IO.Hashing.Crc32.HashToUInt32(data), Crc32C.Compute(data)); // not the IEEE polynomial
    }

    [Fact]
    public void A_new_log_is_empty_and_reopens_empty()
    {
        var directory = new MemoryDirectory();
        using (var wal = WriteAheadLog.Open(directory, Small, out var fresh))
        {
            Assert.Empty(fresh.Entries);
            Assert.Equal(0UL, wal.LastIndex);
            Assert.Single(directory.Files);
            Assert.Equal(1024, directory.Files.Values.Single().Length); // preallocated
        }
        using var again = WriteAheadLog.Open(directory, Small, out var recovered);
        Assert.Empty(recovered.Entries);
        Assert.Null(recovered.TornTailFile);
        Assert.Empty(recovered.Warnings);
    }

    [Fact]
    public void An_entry_framed_from_a_prefix_byte_and_its_data_is_byte_for_byte_the_entry_of_the_joined_payload()
    {
        var data = Enumerable.Range(0, 300).Select(i => (byte)(i * 7)).ToArray();
        var joined = new byte[1 + data.Length];
        joined[0] = 42;
        data.CopyTo(joined, 1);
        var built = new MemoryDirectory();
        var framed = new MemoryDirectory();
        using (var wal = WriteAheadLog.Open(built, Small, out _))
        {
            wal.Append(new WalEntry(1, 3, joined));
            wal.Append(new WalEntry(2, 3, new byte[] { 9 }));
            wal.Sync();
        }
        using (var wal = WriteAheadLog.Open(framed, Small, out _))
        {
            wal.Append(1, 3, 42, data);
            wal.Append(2, 3, 9, []);
            wal.Sync();
        }
        Assert.Equal(built.Files.Keys.Order(), framed.Files.Keys.Order());
        foreach (var name in built.Files.Keys) Assert.Equal(built.Files[name], framed.Files[name]);
        using var reopened = WriteAheadLog.Open(framed, Small, out var recovery);
        Assert.Equal(joined, recovery.Entries[0].Payload.ToArray());
        Assert.Equal(new byte[] { 9 }, recovery.Entries[1].Payload.ToArray());
        Assert.Throws<InvariantViolationException>(() => reopened.Append(5, 3, 1, data)); // a gap stays refused
    }

    [Fact]
    public void Flushed_records_outlive_the_process_without_a_sync_and_the_next_sync_writes_the_rest_after_them()
    {
        var directory = new MemoryDirectory(); // keeps every write, as the kernel does for a killed process
        using (var wal = WriteAheadLog.Open(directory, Small, out _))
        {
            wal.Append(Entry(1, term: 1, length: 10));
            wal.SetHardState(new WalHardState(1, 1, 0));
            wal.Sync();
            wal.SetHardState(new WalHardState(1, 1, 1));
            wal.Flush();
            Assert.Equal(1, wal.PendingRecordCount); // written, not yet durable
            Assert.Equal(new WalHardState(1, 1, 0), wal.DurableHardState);
            wal.AssertInvariants();
        }
        using (var killed = WriteAheadLog.Open(directory, Small, out var afterKill))
            Assert.Equal(new WalHardState(1, 1, 1), afterKill.HardState);

        var twice = new MemoryDirectory();
        using (var wal = WriteAheadLog.Open(twice, Small, out _))
        {
            wal.Append(Entry(1, term: 1, length: 10));
            wal.SetHardState(new WalHardState(1, 1, 1));
            wal.Flush();
            wal.Flush(); // nothing new: nothing written twice
            wal.Append(Entry(2, term: 1, length: 10));
            wal.SetHardState(new WalHardState(1, 1, 2));
            wal.Sync();
            Assert.Equal(0, wal.PendingRecordCount);
            wal.AssertInvariants();
        }
        using var reopened = WriteAheadLog.Open(twice, Small, out var recovery);
        Assert.Equal([1UL, 2UL], recovery.Entries.Select(e => e.Index));
        Assert.Equal(new WalHardState(1, 1, 2), recovery.HardState);
        Assert.Empty(recovery.Warnings);
    }

    [Fact]
    public void Synced_entries_and_hard_state_survive_reopen_across_many_segments()
    {
        var directory = new MemoryDirectory();
        var expected = new List<WalEntry>();
        using (var wal = WriteAheadLog.Open(directory, Small, out _))
        {
            for (ulong i = 1; i <= 100; i++)
            {
                var entry = Entry(i, term: 1 + i / 40, length: (int)(i % 50));
                wal.Append(entry);
                expected.Add(entry);
                if (i % 7 == 0) wal.SetHardState(new WalHardState(1 + i / 40, 2, i - 3));
                if (i % 3 == 0) wal.Sync();
                wal.AssertInvariants();
            }
            wal.Sync();
            Assert.True(wal.SegmentCount > 3, $"expected several segments, got {wal.SegmentCount}");
            wal.AssertInvariants();
        }
        using var reopened = WriteAheadLog.Open(directory, Small, out var recovery);
        AssertSameEntries(expected, recovery.Entries);
        Assert.Equal(new WalHardState(3, 2, 95), recovery.HardState);
        Assert.Equal(100UL, reopened.LastIndex);
        Assert.Null(recovery.TornTailFile);
    }

    [Fact]
    public void Unsynced_records_are_not_durable_and_one_sync_covers_a_whole_batch()
    {
        var disk = NewSimDisk(7);
        var directory = new SimStorageDirectory(disk);
        using (var wal = WriteAheadLog.Open(directory, Small, out _))
        {
            wal.Append([Entry(1), Entry(2), Entry(3)]);
            Assert.Equal(3, wal.PendingRecordCount);
            var syncsBefore = disk.SyncCount;
            wal.Sync();
            Assert.Equal(syncsBefore + 1, disk.SyncCount); // group commit: one fdatasync for the batch
            Assert.Equal(3UL, wal.DurableLastIndex);
            wal.Append(Entry(4));
            Assert.Equal(3UL, wal.DurableLastIndex);
            wal.Sync();
            wal.Sync(); // nothing pending: no fsync
            Assert.Equal(syncsBefore + 2, disk.SyncCount);
            wal.Append(Entry(5)); // never synced
        }
        disk.Crash();
        using var reopened = WriteAheadLog.Open(directory, Small, out var recovery);
        Assert.Equal([1UL, 2, 3, 4], recovery.Entries.Select(e => e.Index));
    }

    [Fact]
    public void Overwriting_an_uncommitted_suffix_replaces_it_after_recovery()
    {
        var directory = new MemoryDirectory();
        using (var wal = WriteAheadLog.Open(directory, Small, out _))
        {
            wal.Append([Entry(1), Entry(2), Entry(3), Entry(4)]);
            wal.SetHardState(new WalHardState(1, 1, 1));
            wal.Sync();
            wal.Append([Entry(2, term: 2), Entry(3, term: 2)]);
            wal.Sync();
            Assert.Equal(3UL, wal.LastIndex);
        }
        using var reopened = WriteAheadLog.Open(directory, Small, out var recovery);
        AssertSameEntries([Entry(1), Entry(2, 2), Entry(3, 2)], recovery.Entries);
    }

    [Fact]
    public void Appending_rejects_gaps_and_rewriting_committed_entries()
    {
        using var wal = WriteAheadLog.Open(new MemoryDirectory(), Small, out _);
        wal.Append(Entry(1));
        Assert.Throws<InvariantViolationException>(() => wal.Append(Entry(3)));
        wal.Append(Entry(2));
        wal.SetHardState(new WalHardState(1, 0, 2));
        Assert.Throws<InvariantViolationException>(() => wal.Append(Entry(2, term: 2)));
        Assert.Throws<InvariantViolationException>(() => wal.SetHardState(new WalHardState(0, 0, 2)));
        wal.SetHardState(new WalHardState(1, 3, 2));
        Assert.Throws<InvariantViolationException>(() => wal.SetHardState(new WalHardState(1, 4, 2))); // a second vote in one term
    }

    [Fact]
    public void A_vote_is_never_forgotten_once_synced_even_after_compaction()
    {
        var directory = new MemoryDirectory();
        using (var wal = WriteAheadLog.Open(directory, Small, out _))
        {
            wal.SetHardState(new WalHardState(5, 3, 0));
            wal.Sync();
            for (ulong i = 1; i <= 60; i++)
            {
                wal.Append(Entry(i, 5));
                wal.Sync();
            }
            wal.SaveSnapshotMarker(new WalSnapshotMarker(50, 5));
            wal.Sync();
            Assert.True(wal.Compact(50) > 0);
            wal.AssertInvariants();
        }
        using var reopened = WriteAheadLog.Open(directory, Small, out var recovery);
        Assert.Equal(new WalHardState(5, 3, 0), recovery.HardState); // the segment holding the vote record is gone; segment headers carry it
        Assert.Equal(new WalSnapshotMarker(50, 5), recovery.Snapshot);
        Assert.Equal(Enumerable.Range(51, 10).Select(i => (ulong)i), recovery.Entries.Select(e => e.Index));
    }

    [Fact]
    public void Compaction_removes_only_segments_wholly_covered_by_the_durable_snapshot()
    {
        var directory = new MemoryDirectory();
        using var wal = WriteAheadLog.Open(directory, Small, out _);
        for (ulong i = 1; i <= 80; i++)
        {
            wal.Append(Entry(i));
            wal.Sync();
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => wal.Compact(10)); // no snapshot yet
        wal.SaveSnapshotMarker(new WalSnapshotMarker(40, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => wal.Compact(40)); // marker not yet durable
        wal.Sync();
        var before = wal.SegmentCount;
        var deleted = wal.Compact(40);
        Assert.True(deleted > 0 && deleted < before);
        wal.Dispose();
        using var reopened = WriteAheadLog.Open(directory, Small, out var recovery);
        Assert.Equal(Enumerable.Range(41, 40).Select(i => (ulong)i), recovery.Entries.Select(e => e.Index));
    }

    [Fact]
    public void A_snapshot_marker_beyond_the_log_resets_it()
    {
        var directory = new MemoryDirectory();
        using (var wal = WriteAheadLog.Open(directory, Small, out _))
        {
            wal.Append([Entry(1), Entry(2)]);
            wal.SaveSnapshotMarker(new WalSnapshotMarker(100, 4));
            wal.Append(Entry(101, 4));
            wal.Sync();
            Assert.Equal(101UL, wal.LastIndex);
        }
        using var reopened = WriteAheadLog.Open(directory, Small, out var recovery);
        Assert.Equal([101UL], recovery.Entries.Select(e => e.Index));
        Assert.Equal(101UL, reopened.LastIndex);
    }

    [Fact]
    public void A_missing_middle_segment_refuses_to_start_naming_it()
    {
        var directory = new MemoryDirectory();
        using (var wal = WriteAheadLog.Open(directory, Small, out _))
        {
            for (ulong i = 1; i <= 60; i++)
            {
                wal.Append(Entry(i));
                wal.Sync();
            }
        }
        var names = directory.Files.Keys.ToList();
        Assert.True(names.Count >= 3);
        directory.Files.Remove(names[1]);
        var error = Assert.Throws<WalCorruptionException>(() => WriteAheadLog.Open(directory, Small, out _));
        Assert.Contains("missing", error.Message, StringComparison.Ordinal);
        Assert.Contains(names[2], error.Message, StringComparison.Ordinal);
        Assert.Contains("What to do", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_first_segment_without_a_covering_snapshot_refuses_to_start()
    {
        var directory = new MemoryDirectory();
        using (var wal = WriteAheadLog.Open(directory, Small, out _))
        {
            for (ulong i = 1; i <= 60; i++)
            {
                wal.Append(Entry(i));
                wal.Sync();
            }
        }
        directory.Files.Remove(directory.Files.Keys.First());
        var error = Assert.Throws<WalCorruptionException>(() => WriteAheadLog.Open(directory, Small, out _));
        Assert.Contains("missing", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_gap_in_entry_indexes_refuses_to_start_naming_file_and_offset()
    {
        var directory = new MemoryDirectory();
        string segment;
        long end;
        using (var wal = WriteAheadLog.Open(directory, Small, out _))
        {
            wal.Append([Entry(1), Entry(2), Entry(3)]);
            wal.Sync();
            segment = wal.ActiveSegmentName;
            end = wal.DurableOffsetBytes;
        }
        // A well-formed, correctly checksummed entry 5 right after entry 3: entry 4 is missing.
        Span<byte> fixedPart = stackalloc byte[16];
        fixedPart[0] = 5;
        fixedPart[8] = 1;
        WalRecord.Write(directory.Files[segment].AsSpan((int)end), WalRecordType.Entry, fixedPart, [1, 2, 3]);
        var error = Assert.Throws<WalCorruptionException>(() => WriteAheadLog.Open(directory, Small, out _));
        Assert.Equal(segment, error.FileName);
        Assert.Equal(end, error.OffsetBytes);
        Assert.Contains("entry index 5 does not follow the last index 3", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_segment_roll_torn_inside_its_opening_records_is_dropped_so_compaction_cannot_lose_the_vote()
    {
        var directory = new MemoryDirectory();
        var acked = new List<WalEntry>();
        string rolled;
        using (var wal = WriteAheadLog.Open(directory, Small, out _))
        {
            wal.SetHardState(new WalHardState(7, 2, 0));
            wal.Sync();
            ulong index = 0;
            while (true)
            {
                var entry = Entry(++index);
                wal.Append(entry);
                wal.Sync();
                if (wal.SegmentCount == 2) break;
                acked.Add(entry);
            }
            rolled = wal.ActiveSegmentName;
        }
        // The crash tore the roll's single write after the segment header: the hard state record never landed.
        var bytes = directory.Files[rolled];
        Array.Clear(bytes, WalRecord.FrameBytes(16), bytes.Length - WalRecord.FrameBytes(16));
        using (var wal = WriteAheadLog.Open(directory, Small, out var recovery))
        {
            Assert.False(directory.Files.ContainsKey(rolled));
            Assert.Contains(recovery.Warnings, w => w.Contains("segment roll", StringComparison.Ordinal));
            AssertSameEntries(acked, recovery.Entries);
            ulong index = wal.LastIndex;
            for (var i = 0; i < 40; i++)
            {
                wal.Append(Entry(++index));
                wal.Sync();
            }
            wal.SaveSnapshotMarker(new WalSnapshotMarker(index - 5, 1));
            wal.Sync();
            Assert.True(wal.Compact(index - 5) > 0);
        }
        using var reopened = WriteAheadLog.Open(directory, Small, out var afterCompaction);
        Assert.Equal(new WalHardState(7, 2, 0), afterCompaction.HardState);
    }
}
