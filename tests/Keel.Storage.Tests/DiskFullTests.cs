using Keel.Simulation;
using static Keel.Storage.Tests.TestDisks;

namespace Keel.Storage.Tests;

public sealed class DiskFullTests
{
    private static readonly WalOptions Small = new() { SegmentSizeBytes = 1024 };

    [Theory]
    [InlineData(false)] // space runs out when the next segment is preallocated
    [InlineData(true)]  // space runs out in the middle of a batch that outgrows its segment (a short write)
    public void A_full_disk_raises_the_alarm_damages_nothing_and_clears_when_space_returns(bool hugeBatch)
    {
        var disk = NewSimDisk(3);
        var directory = new SimStorageDirectory(disk);
        var acked = new List<WalEntry>();
        var wal = WriteAheadLog.Open(directory, Small, out _);
        ulong index = 0;
        while (wal.DurableOffsetBytes < 900)
        {
            var entry = Entry(++index, length: 30);
            wal.Append(entry);
            wal.Sync();
            acked.Add(entry);
        }
        directory.CapacityBytes = directory.UsedBytes + 10;

        var pending = new List<WalEntry>();
        var batch = hugeBatch ? 60 : 4;
        for (var i = 0; i < batch; i++)
        {
            pending.Add(Entry(++index, length: 30));
            wal.Append(pending[^1]);
        }
        if (hugeBatch)
        {
            // Force the batch into the current segment past its preallocated end by syncing before it fills up.
            Assert.True(wal.DurableOffsetBytes < Small.SegmentSizeBytes);
        }
        var alarm = Assert.Throws<WalNoSpaceException>(wal.Sync);
        Assert.Contains("NOSPACE", alarm.Message, StringComparison.Ordinal);
        Assert.True(wal.NoSpaceAlarm);
        Assert.Throws<WalNoSpaceException>(() => wal.Append(Entry(index + 1)));
        Assert.Throws<WalNoSpaceException>(() => wal.SetHardState(new WalHardState(1, 1, 0)));
        Assert.Throws<WalNoSpaceException>(wal.Sync); // still full: retrying fails the same way
        wal.AssertInvariants();

        // Nothing acknowledged was damaged: a crash now recovers exactly the acknowledged records.
        directory.CapacityBytes = null;
        wal.Sync(); // space returned: the kept batch goes through
        Assert.False(wal.NoSpaceAlarm);
        acked.AddRange(pending);
        var after = Entry(++index, length: 30);
        wal.Append(after);
        wal.Sync();
        acked.Add(after);
        wal.AssertInvariants();
        wal.Dispose();
        disk.Crash();
        using var reopened = WriteAheadLog.Open(directory, Small, out var recovery);
        AssertSameEntries(acked, recovery.Entries);
    }

    [Fact]
    public void A_crash_while_the_disk_is_full_recovers_every_acknowledged_record()
    {
        for (ulong seed = 0; seed < 40; seed++)
        {
            var disk = NewSimDisk(seed);
            var directory = new SimStorageDirectory(disk);
            var acked = new List<WalEntry>();
            using (var wal = WriteAheadLog.Open(directory, Small, out _))
            {
                ulong index = 0;
                for (var i = 0; i < 20; i++)
                {
                    var entry = Entry(++index, length: 40);
                    wal.Append(entry);
                    wal.Sync();
                    acked.Add(entry);
                }
                directory.CapacityBytes = directory.UsedBytes + (long)(seed * 7 % 100);
                try
                {
                    for (var i = 0; i < 50; i++)
                    {
                        var entry = Entry(++index, length: 40);
                        wal.Append(entry);
                        wal.Sync();
                        acked.Add(entry);
                    }
                }
                catch (WalNoSpaceException)
                {
                }
                Assert.True(wal.NoSpaceAlarm);
            }
            disk.Crash();
            using var reopened = WriteAheadLog.Open(directory, Small, out var recovery);
            AssertSameEntries(acked, recovery.Entries);
        }
    }
}
