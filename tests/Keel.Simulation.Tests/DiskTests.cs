using Keel.Simulation;
using Sim = Keel.Simulation.Simulation;

namespace Keel.Simulation.Tests;

public sealed class DiskTests
{
    private static SimDisk NewDisk(ulong seed)
    {
        var simulation = new Sim(seed);
        return simulation.AddNode(_ => new EchoProcess(simulation)).Disk;
    }

    [Fact]
    public void Synced_data_survives_a_crash_and_unsynced_data_is_a_possibly_torn_prefix()
    {
        for (ulong seed = 0; seed < 200; seed++)
        {
            var disk = NewDisk(seed);
            disk.Create("wal");
            disk.SyncDirectory();
            disk.Append("wal", "synced."u8);
            disk.Sync("wal");
            disk.Append("wal", "one."u8);
            disk.Append("wal", "two."u8);
            disk.Crash();
            var text = System.Text.Encoding.ASCII.GetString(disk.ReadAll("wal"));
            Assert.StartsWith("synced.", text, StringComparison.Ordinal);
            Assert.StartsWith(text, "synced.one.two.", StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Crashes_sometimes_lose_and_sometimes_tear_unsynced_writes()
    {
        var outcomes = new HashSet<int>();
        for (ulong seed = 0; seed < 200; seed++)
        {
            var disk = NewDisk(seed);
            disk.Create("f");
            disk.SyncDirectory();
            disk.Append("f", new byte[100]);
            disk.Crash();
            outcomes.Add((int)disk.Length("f"));
        }
        Assert.Contains(0, outcomes);
        Assert.Contains(100, outcomes);
        Assert.Contains(outcomes, length => length is > 0 and < 100);
    }

    [Fact]
    public void A_file_whose_directory_entry_was_never_synced_vanishes_at_a_crash()
    {
        var disk = NewDisk(1);
        disk.Create("new");
        disk.Append("new", "data"u8);
        disk.Sync("new");
        disk.Crash();
        Assert.False(disk.Exists("new"));
    }

    [Fact]
    public void A_rename_is_durable_only_after_the_directory_is_synced()
    {
        var disk = NewDisk(2);
        disk.Create("snap.tmp");
        disk.Append("snap.tmp", "state"u8);
        disk.Sync("snap.tmp");
        disk.SyncDirectory();
        disk.Rename("snap.tmp", "snap");
        disk.Crash();
        Assert.True(disk.Exists("snap.tmp"));
        Assert.False(disk.Exists("snap"));

        disk.Rename("snap.tmp", "snap");
        disk.SyncDirectory();
        disk.Crash();
        Assert.True(disk.Exists("snap"));
        Assert.Equal("state"u8.ToArray(), disk.ReadAll("snap"));
    }

    [Fact]
    public void Truncation_is_lost_with_other_unsynced_changes()
    {
        var disk = NewDisk(3);
        disk.Create("f");
        disk.SyncDirectory();
        disk.Append("f", "abcdef"u8);
        disk.Sync("f");
        disk.Truncate("f", 2);
        Assert.Equal(2, disk.Length("f"));
        var lengths = new HashSet<long>();
        for (ulong seed = 0; seed < 50; seed++)
        {
            var d = NewDisk(seed);
            d.Create("f");
            d.SyncDirectory();
            d.Append("f", "abcdef"u8);
            d.Sync("f");
            d.Truncate("f", 2);
            d.Crash();
            lengths.Add(d.Length("f"));
        }
        Assert.Equal([2L, 6L], lengths.Order());
    }
}
