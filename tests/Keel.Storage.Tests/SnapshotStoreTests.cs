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
    public void A_crash_at_any_point_of_a_save_leaves_the_old_or_the_new_snapshot_never_a_broken_one()
    {
        for (ulong seed = 0; seed < 60; seed++)
        {
            for (var crashAt = 0; crashAt < 12; crashAt++)
            {
                var disk = NewSimDisk(seed);
                var crashing = new CrashingDirectory(new SimStorageDirectory(disk));
                var store = new SnapshotStore(crashing, retain: 2);
                store.Save(10, 1, Payload(10, 200));
                store.Save(20, 1, Payload(20, 200));
                crashing.CrashAtOperation = crashing.Operations + crashAt;
                var completed = false;
                try
                {
                    store.Save(30, 2, Payload(30, 200));
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
                Assert.True(loaded.Data.Span.SequenceEqual(Payload(loaded.Index, 200)));
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
