using Keel.Core;
using Keel.Simulation;
using static Keel.Storage.Tests.TestDisks;

namespace Keel.Storage.Tests;

/// <summary>
/// The WAL on the simulator's disk, crashed at every kind of moment (between a write and its fdatasync, in a segment
/// roll, during compaction, during recovery itself) over many seeds: after restart the log is exactly the synced state
/// plus, at most, a prefix of the records whose sync was interrupted.
/// </summary>
public sealed class SimulatedCrashTests
{
    private static (List<WalEntry> Entries, WalHardState HardState, WalSnapshotMarker Snapshot) ApplyAll(
        (List<WalEntry> Entries, WalHardState HardState, WalSnapshotMarker Snapshot) start, IEnumerable<object> records)
    {
        var entries = new List<WalEntry>(start.Entries);
        var hardState = start.HardState;
        var snapshot = start.Snapshot;
        foreach (var record in records)
        {
            switch (record)
            {
                case WalEntry entry:
                    entries.RemoveAll(e => e.Index >= entry.Index);
                    entries.Add(entry);
                    break;
                case WalHardState h:
                    hardState = h;
                    break;
                case WalSnapshotMarker m:
                    snapshot = m;
                    break;
            }
        }
        entries.RemoveAll(e => e.Index <= snapshot.Index);
        return (entries, hardState, snapshot);
    }

    private static bool Matches((List<WalEntry> Entries, WalHardState HardState, WalSnapshotMarker Snapshot) expected, WalRecovery actual) =>
        expected.HardState == actual.HardState && expected.Snapshot == actual.Snapshot && expected.Entries.Count == actual.Entries.Count
        && expected.Entries.Zip(actual.Entries).All(p => p.First.Index == p.Second.Index && p.First.Term == p.Second.Term
                                                          && p.First.Payload.Span.SequenceEqual(p.Second.Payload.Span));

    private static bool CountAlarms(ref int total, ref int current)
    {
        total += current;
        current = 0;
        return true;
    }

    [Fact]
    public void Every_synced_record_survives_crashes_at_any_disk_operation()
    {
        var options = new WalOptions { SegmentSizeBytes = 700 };
        var tornTails = 0;
        var totalNoSpaceAlarms = 0;
        for (ulong seed = 0; seed < 150; seed++)
        {
            var random = new DeterministicRandom(seed);
            var disk = NewSimDisk(seed);
            var sim = new SimStorageDirectory(disk);
            var directory = new CrashingDirectory(sim);
            var noSpaceAlarms = 0;
            var acked = (Entries: new List<WalEntry>(), HardState: default(WalHardState), Snapshot: default(WalSnapshotMarker));
            var inFlight = new List<object>();
            var term = 1UL;
            for (var round = 0; round < 12; round++)
            {
                directory.CrashAtOperation = directory.Operations + random.NextInt64(1, 40);
                WriteAheadLog? wal = null;
                try
                {
                    wal = WriteAheadLog.Open(directory, options, out var recovery);
                    var candidates = Enumerable.Range(0, inFlight.Count + 1).Select(n => ApplyAll(acked, inFlight.Take(n))).ToList();
                    var match = candidates.FindIndex(c => Matches(c, recovery));
                    Assert.True(match >= 0, $"seed {seed} round {round}: recovery lost or invented records");
                    acked = candidates[match];
                    inFlight.Clear();
                    if (recovery.TornTailFile is not null) tornTails++;
                    wal.AssertInvariants();
                    term = Math.Max(term, acked.HardState.Term);

                    while (true)
                    {
                        var last = wal.LastIndex;
                        var roll = random.NextInt32(100);
                        if (wal.NoSpaceAlarm && roll < 70) roll = 70 + roll % 25; // appends are refused while the alarm is up
                        if (random.Chance(0.03))
                        {
                            // The disk fills up (or space returns): writes past the preallocated space fail with ENOSPC.
                            sim.CapacityBytes = random.Chance(0.5) ? sim.UsedBytes + random.NextInt64(0, 300) : null;
                        }
                        if (roll < 55)
                        {
                            var floor = Math.Max(wal.HardState.Commit, wal.DurableSnapshot.Index);
                            var start = random.Chance(0.15) && last > floor ? (ulong)random.NextInt64((long)floor + 1, (long)last + 2) : last + 1;
                            if (start < last + 1) term++;
                            for (var i = 0; i < random.NextInt32(6) + 1; i++)
                            {
                                var entry = new WalEntry(start + (ulong)i, term, Payload(random.NextUInt64(), random.NextInt32(60)));
                                inFlight.Add(entry);
                                wal.Append(entry);
                            }
                        }
                        else if (roll < 70)
                        {
                            var hardState = new WalHardState(term, 1, Math.Max(wal.HardState.Commit, (ulong)random.NextInt64((long)last + 1)));
                            if (hardState.Term != wal.HardState.Term) hardState = hardState with { Vote = (ulong)random.NextInt64(1, 4) };
                            else hardState = hardState with { Vote = wal.HardState.Vote == 0 ? 1 : wal.HardState.Vote };
                            inFlight.Add(hardState);
                            wal.SetHardState(hardState);
                            // Written, not synced (a commit index alone): a crash may keep it or not, never half of it.
                            if (random.Chance(0.4)) wal.Flush();
                        }
                        else if (roll < 95)
                        {
                            try
                            {
                                wal.Sync();
                            }
                            catch (WalNoSpaceException)
                            {
                                noSpaceAlarms++;
                                Assert.True(wal.NoSpaceAlarm);
                                continue; // the batch stays buffered, in flight, for a retry
                            }
                            acked = ApplyAll(acked, inFlight);
                            inFlight.Clear();
                        }
                        else if (wal.NoSpaceAlarm)
                        {
                        }
                        else if (wal.DurableHardState.Commit > wal.DurableSnapshot.Index && wal.PendingRecordCount == 0)
                        {
                            var index = wal.DurableHardState.Commit;
                            var marker = new WalSnapshotMarker(index, acked.Entries.Single(e => e.Index == index).Term);
                            inFlight.Add(marker);
                            wal.SaveSnapshotMarker(marker);
                            try
                            {
                                wal.Sync();
                            }
                            catch (WalNoSpaceException)
                            {
                                noSpaceAlarms++;
                                continue;
                            }
                            acked = ApplyAll(acked, inFlight);
                            inFlight.Clear();
                            wal.Compact(index);
                        }
                        wal.AssertInvariants();
                    }
                }
                catch (SimulatedCrash) when (CountAlarms(ref totalNoSpaceAlarms, ref noSpaceAlarms))
                {
                    disk.Crash();
                    sim.CapacityBytes = null;
                }
            }
        }
        Assert.True(tornTails > 20, $"only {tornTails} torn tails were exercised");
        Assert.True(totalNoSpaceAlarms > 20, $"only {totalNoSpaceAlarms} NOSPACE alarms were exercised");
    }
}
