using Keel.Core;
using Keel.Core.Storage;
using Keel.Simulation;
using static Keel.Storage.Tests.TestDisks;

namespace Keel.Storage.Tests;

public sealed class SnapshotStoreTests
{
    [Fact]
    public void Saves_keep_the_newest_few_and_load_the_newest()
    {
        var directory = new MemoryDirectory();
        var store = new SnapshotStore(directory, retain: 3);
        for (ulong i = 1; i <= 5; i++)
        {
            store.Save(i * 100, i, Payload(i, 500));
            store.AssertInvariants();
        }
        Assert.Equal(3, directory.Files.Keys.Count(n => n.EndsWith(".snap", StringComparison.Ordinal)));
        var warnings = new List<string>();
        var newest = store.LoadNewest(warnings);
        Assert.NotNull(newest);
        Assert.Equal((500UL, 5UL), (newest.Index, newest.Term));
        Assert.True(newest.Data.Span.SequenceEqual(Payload(5, 500)));
        Assert.Empty(warnings);
    }

    [Fact]
    public void A_snapshot_file_reads_back_in_chunks_as_it_was_written_in_order_or_not()
    {
        var directory = new MemoryDirectory();
        var store = new SnapshotStore(directory);
        var image = Payload(7, 10_000);
        store.Save(700, 3, image.Length, writer => writer.Bytes(image));
        var file = store.OpenFile(700, 3);
        Assert.Equal(image.Length, file.LengthBytes);

        var inOrder = file.OpenReader();
        var copy = new List<byte>();
        for (var offset = 0; offset < image.Length; offset += 4096)
            copy.AddRange(inOrder.Read(offset, Math.Min(4096, image.Length - offset)));
        Assert.Equal(image, copy.ToArray());

        // A transfer that starts again, resends a chunk, or asks for the last chunk first still gets checked bytes.
        var outOfOrder = file.OpenReader();
        Assert.Equal(image.AsSpan(0, 100).ToArray(), outOfOrder.Read(0, 100));
        Assert.Equal(image.AsSpan(0, 100).ToArray(), outOfOrder.Read(0, 100));
        Assert.Equal(image.AsSpan(9_000).ToArray(), outOfOrder.Read(9_000, 1_000));
    }

    [Fact]
    public void A_snapshot_file_damaged_after_it_was_written_fails_before_its_last_chunk_is_returned()
    {
        var directory = new MemoryDirectory();
        var store = new SnapshotStore(directory);
        var image = Payload(8, 10_000);
        store.Save(800, 4, image);
        var file = store.OpenFile(800, 4);
        directory.Files[SnapshotStore.FileName(800, 4)][5_000] ^= 0x01;
        var reader = file.OpenReader();
        for (var offset = 0; offset < 8_000; offset += 2_000) reader.Read(offset, 2_000);
        var error = Assert.Throws<SnapshotFileException>(() => reader.Read(8_000, 2_000));
        Assert.Contains(SnapshotStore.FileName(800, 4), error.Message, StringComparison.Ordinal);
        Assert.Contains("CRC32C", error.Message, StringComparison.Ordinal);
        // Asked for the last chunk alone, the reader checks the whole image first.
        Assert.Throws<SnapshotFileException>(() => file.OpenReader().Read(9_000, 1_000));
    }

    [Fact]
    public void A_snapshot_deleted_by_retention_during_a_transfer_reads_as_gone_not_as_damage()
    {
        var directory = new MemoryDirectory();
        var store = new SnapshotStore(directory, retain: 1);
        var image = Payload(9, 10_000);
        store.Save(900, 5, image);
        var reader = store.OpenFile(900, 5).OpenReader();
        Assert.True(reader.TryRead(0, 4_000, out var first));
        Assert.Equal(image.AsSpan(0, 4_000).ToArray(), first);

        // A newer snapshot replaces it while the transfer is halfway: the rest is gone, which is not corruption.
        store.Save(1_000, 5, Payload(10, 10_000));
        Assert.False(directory.Exists(SnapshotStore.FileName(900, 5)));
        Assert.False(reader.TryRead(4_000, 4_000, out var rest));
        Assert.Empty(rest);
        var error = Assert.Throws<SnapshotFileException>(() => reader.Read(4_000, 4_000));
        Assert.Contains("gone", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Retention_keeps_a_snapshot_a_leader_is_streaming_until_a_later_save_without_it()
    {
        var directory = new MemoryDirectory();
        var store = new SnapshotStore(directory, retain: 2);
        store.Save(100, 1, Payload(1, 100));
        store.Save(200, 1, Payload(2, 100));
        // Snapshot 100 is being streamed: the save of 300 keeps it beyond the retention of two (200 and 300).
        store.Save(300, 1, Payload(3, 100), streamed: [100]);
        Assert.Equal([SnapshotStore.FileName(100, 1), SnapshotStore.FileName(200, 1), SnapshotStore.FileName(300, 1)], Snapshots(directory));
        store.AssertInvariants(streamed: [100]);
        Assert.Throws<InvariantViolationException>(() => store.AssertInvariants());
        // A stalled transfer keeps its one file, not every newer one.
        store.Save(400, 1, Payload(4, 100), streamed: [100]);
        Assert.Equal([SnapshotStore.FileName(100, 1), SnapshotStore.FileName(300, 1), SnapshotStore.FileName(400, 1)], Snapshots(directory));
        // Once the transfer ended, the next save deletes it.
        store.Save(500, 1, Payload(5, 100));
        Assert.Equal([SnapshotStore.FileName(400, 1), SnapshotStore.FileName(500, 1)], Snapshots(directory));
        store.AssertInvariants();
    }

    private static string[] Snapshots(MemoryDirectory directory) =>
        [.. directory.ListFiles().Where(n => n.EndsWith(".snap", StringComparison.Ordinal))];

    [Fact]
    public void Opening_a_missing_or_truncated_snapshot_file_names_it()
    {
        var directory = new MemoryDirectory();
        var store = new SnapshotStore(directory);
        Assert.Contains("missing", Assert.Throws<SnapshotFileException>(() => store.OpenFile(1, 1)).Message, StringComparison.Ordinal);
        store.Save(900, 5, Payload(9, 1_000));
        var name = SnapshotStore.FileName(900, 5);
        directory.Files[name] = directory.Files[name][..500];
        var error = Assert.Throws<SnapshotFileException>(() => store.OpenFile(900, 5));
        Assert.Equal(name, error.FileName);
    }

    [Fact]
    public void A_half_written_or_corrupt_snapshot_is_ignored_with_a_warning()
    {
        var directory = new MemoryDirectory();
        var store = new SnapshotStore(directory, retain: 3);
        store.Save(100, 1, Payload(1, 300));
        store.Save(200, 2, Payload(2, 300));
        directory.Files["0000000000000300-0000000000000003.snap.tmp"] = Payload(3, 100);
        directory.Files[SnapshotStore.FileName(200, 2)][150] ^= 0x10;
        var warnings = new List<string>();
        var loaded = store.LoadNewest(warnings);
        Assert.Equal(100UL, loaded!.Index);
        Assert.Equal(2, warnings.Count);
        Assert.Contains(warnings, w => w.Contains("half written", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("CRC32C", StringComparison.Ordinal));
        Assert.DoesNotContain(directory.Files.Keys, n => n.EndsWith(".tmp", StringComparison.Ordinal));
    }

    [Fact]
    public void A_crash_at_any_point_of_a_save_leaves_the_old_or_the_new_snapshot_never_a_broken_one() =>
        CrashDuringSaveLeavesOldOrNew(seeds: 60, crashPoints: 12, newBytes: 200,
            store => { store.Save(10, 1, Payload(10, 200)); store.Save(20, 1, Payload(20, 200)); },
            store => store.Save(30, 2, Payload(30, 200)));

    [Fact]
    public void A_crash_while_a_large_snapshot_is_written_in_synced_pieces_leaves_the_old_or_the_new_one()
    {
        // Larger than SyncEveryBytes: written and synced piece by piece, so a crash can fall between two pieces.
        var size = SnapshotStore.SyncEveryBytes * 2 + 12_345;
        CrashDuringSaveLeavesOldOrNew(seeds: 3, crashPoints: 10, newBytes: size,
            store => store.Save(20, 1, Payload(20, 200)),
            store => store.Save(30, 2, size, writer => writer.Bytes(Payload(30, size))));
    }

    /// <summary>
    /// For every seed and every operation of the save of snapshot 30 (of <paramref name="newBytes"/>) as the crash
    /// point: after the crash the store loads snapshot 20 (200 bytes) or 30, intact, and 30 if the save returned.
    /// </summary>
    private static void CrashDuringSaveLeavesOldOrNew(int seeds, int crashPoints, int newBytes, Action<SnapshotStore> before, Action<SnapshotStore> save)
    {
        for (ulong seed = 0; seed < (ulong)seeds; seed++)
        {
            for (var crashAt = 0; crashAt < crashPoints; crashAt++)
            {
                var disk = NewSimDisk(seed);
                var crashing = new CrashingDirectory(new SimStorageDirectory(disk));
                var store = new SnapshotStore(crashing, retain: 2);
                before(store);
                crashing.CrashAtOperation = crashing.Operations + crashAt;
                var completed = false;
                try
                {
                    save(store);
                    completed = true;
                }
                catch (SimulatedCrash)
                {
                }
                disk.Crash();
                crashing.CrashAtOperation = long.MaxValue;
                var loaded = new SnapshotStore(crashing, retain: 2).LoadNewest([]);
                Assert.NotNull(loaded);
                Assert.True(loaded.Index is 20 or 30, $"seed {seed} crash {crashAt}: loaded {loaded.Index}");
                Assert.True(loaded.Data.Span.SequenceEqual(Payload(loaded.Index, loaded.Index == 30 ? newBytes : 200)));
                if (completed) Assert.Equal(30UL, loaded.Index); // a save that returned is durable
            }
        }
    }

    [Fact]
    public void A_full_disk_fails_the_save_and_keeps_the_existing_snapshots()
    {
        var disk = NewSimDisk(1);
        var directory = new SimStorageDirectory(disk);
        var store = new SnapshotStore(directory, retain: 2);
        store.Save(10, 1, Payload(10, 200));
        directory.CapacityBytes = directory.UsedBytes + 50;
        Assert.Throws<DiskFullException>(() => store.Save(20, 1, Payload(20, 200)));
        Assert.DoesNotContain(directory.ListFiles(), n => n.EndsWith(".tmp", StringComparison.Ordinal));
        var warnings = new List<string>();
        Assert.Equal(10UL, store.LoadNewest(warnings)!.Index);
        Assert.Empty(warnings);
        directory.CapacityBytes = null;
        store.Save(20, 1, Payload(20, 200));
        Assert.Equal(20UL, store.LoadNewest(warnings)!.Index);
    }
}
