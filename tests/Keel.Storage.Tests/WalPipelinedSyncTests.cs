using Keel.Core;
using Keel.Simulation;
using static Keel.Storage.Tests.TestDisks;

namespace Keel.Storage.Tests;

/// <summary>
/// Pipelined syncs (<see cref="WriteAheadLog.BeginSync"/>, <see cref="WalSyncTicket.Sync"/>,
/// <see cref="WriteAheadLog.CompleteSync"/>): the log's owner writes ahead while earlier writes are being synced;
/// exactly what a completed ticket covers becomes durable and readable, across rolls, after a synchronous sync and
/// after a failed one; and, on the simulator's disk crashed at any operation, recovery keeps every record a completed
/// ticket covered.
/// </summary>
public sealed class WalPipelinedSyncTests
{
    private static readonly WalOptions Small = new() { SegmentSizeBytes = 1024 };

    private static List<WalEntry> Append(WriteAheadLog wal, ulong first, ulong last, ulong term = 1)
    {
        var written = new List<WalEntry>();
        for (var index = first; index <= last; index++)
        {
            var entry = Entry(index, term, 40);
            wal.Append(entry);
            written.Add(entry);
        }
        return written;
    }

    private static List<WalEntry> ReadBack(WriteAheadLog wal, ulong first, ulong last)
    {
        using var reader = wal.OpenReader();
        var read = new List<WalEntry>();
        for (var index = first; index <= last; index++) read.Add(reader.Read(index));
        return read;
    }

    [Fact]
    public void A_completed_ticket_makes_exactly_its_records_durable_while_later_writes_wait_for_theirs()
    {
        var directory = new MemoryDirectory();
        var wal = WriteAheadLog.Open(directory, Small, out _);
        var first = Append(wal, 1, 3);
        wal.SetHardState(new WalHardState(1, 1, 2));
        var ticket1 = wal.BeginSync()!;
        var second = Append(wal, 4, 6);
        wal.SetHardState(new WalHardState(1, 1, 5));
        var ticket2 = wal.BeginSync()!;
        var third = Append(wal, 7, 7);
        Assert.Equal(0UL, wal.DurableLastIndex);
        Assert.False(wal.IsDurable(ticket1));

        ticket1.Sync();
        wal.CompleteSync(ticket1);
        wal.AssertInvariants();
        Assert.True(wal.IsDurable(ticket1));
        Assert.False(wal.IsDurable(ticket2));
        Assert.Equal(3UL, wal.DurableLastIndex);
        Assert.Equal(new WalHardState(1, 1, 2), wal.DurableHardState);
        Assert.True(wal.CanRead(3));
        Assert.False(wal.CanRead(4));
        AssertSameEntries(first, ReadBack(wal, 1, 3));

        ticket2.Sync();
        wal.CompleteSync(ticket2);
        wal.CompleteSync(ticket1); // already covered: nothing happens
        wal.AssertInvariants();
        Assert.Equal(6UL, wal.DurableLastIndex);
        Assert.Equal(new WalHardState(1, 1, 5), wal.DurableHardState);
        Assert.Equal(1, wal.PendingRecordCount); // entry 7, written nowhere yet
        AssertSameEntries([.. first, .. second], ReadBack(wal, 1, 6));

        wal.Sync();
        AssertSameEntries([.. first, .. second, .. third], ReadBack(wal, 1, 7));
        wal.Dispose();
        using var reopened = WriteAheadLog.Open(directory, Small, out var recovery);
        AssertSameEntries([.. first, .. second, .. third], recovery.Entries);
        Assert.Equal(new WalHardState(1, 1, 5), recovery.HardState);
    }

    [Fact]
    public void A_synchronous_sync_covers_every_ticket_before_it_and_a_roll_retires_the_old_segments_tickets()
    {
        using var wal = WriteAheadLog.Open(new MemoryDirectory(), Small, out _);
        var written = new List<WalEntry>();
        var tickets = new List<WalSyncTicket>();
        ulong next = 1;
        var rolledWithTicketsOutstanding = false;
        var rolls = 0;
        for (var round = 0; round < 60; round++)
        {
            written.AddRange(Append(wal, next, next + 1));
            next += 2;
            var segmentsBefore = wal.SegmentCount;
            if (wal.BeginSync() is { } ticket)
            {
                tickets.Add(ticket);
                if (wal.SegmentCount > segmentsBefore)
                {
                    rolls++;
                    rolledWithTicketsOutstanding |= tickets.SkipLast(1).Any(t => !wal.IsDurable(t));
                }
            }
            else
            {
                // The segment is full and pipelined bytes are unsynced in it: sync here; the next write rolls.
                wal.Sync();
                Assert.True(tickets.All(wal.IsDurable));
            }
            // Every other round all tickets but the newest finish (the sync thread lags the loop by one write).
            if (round % 2 == 1)
            {
                foreach (var done in tickets.SkipLast(1).ToList())
                {
                    done.Sync(); // a ticket of a segment rolled away from does nothing
                    wal.CompleteSync(done);
                    tickets.Remove(done);
                }
            }
            wal.AssertInvariants();
        }
        Assert.True(rolls >= 2 && wal.SegmentCount > 4, $"only {rolls} rolls by a pipelined write, {wal.SegmentCount} segments");
        Assert.False(rolledWithTicketsOutstanding, "a roll happened while a pipelined write of the old segment was unsynced");
        foreach (var ticket in tickets)
        {
            ticket.Sync();
            wal.CompleteSync(ticket);
        }
        wal.Sync();
        AssertSameEntries(written, ReadBack(wal, 1, next - 1));
        wal.AssertInvariants();
    }

    [Fact]
    public void After_a_failed_pipelined_sync_no_later_ticket_counts_until_a_synchronous_sync_wrote_everything_again()
    {
        using var wal = WriteAheadLog.Open(new MemoryDirectory(), Small, out _);
        Append(wal, 1, 2);
        var failed = wal.BeginSync()!;
        Append(wal, 3, 4);
        var later = wal.BeginSync()!;
        // The failed ticket's fdatasync reported ENOSPC: Linux may have dropped its pages, and a later fdatasync of the
        // same file can succeed without them.
        wal.ForgetUnsyncedWrites();
        later.Sync();
        wal.CompleteSync(later);
        wal.CompleteSync(failed);
        Assert.Equal(0UL, wal.DurableLastIndex);
        Assert.False(wal.IsDurable(later));
        wal.Sync();
        Assert.True(wal.IsDurable(later));
        Assert.Equal(4UL, wal.DurableLastIndex);
        wal.AssertInvariants();
    }

    [Fact]
    public void Every_record_a_completed_ticket_covered_survives_crashes_at_any_disk_operation()
    {
        var options = new WalOptions { SegmentSizeBytes = 700 };
        var pipelinedCompletions = 0;
        var completionsWithLaterTickets = 0;
        for (ulong seed = 0; seed < 150; seed++)
        {
            var random = new DeterministicRandom(seed + 10_000);
            var disk = NewSimDisk(seed);
            var directory = new CrashingDirectory(new SimStorageDirectory(disk));
            // Records written since the last open, in order; the first `durable` of them are covered by a completed sync.
            var records = new List<object>();
            var durable = 0;
            var expected = new List<WalEntry>();
            var expectedHard = default(WalHardState);
            var term = 1UL;
            for (var round = 0; round < 10; round++)
            {
                directory.CrashAtOperation = directory.Operations + random.NextInt64(1, 60);
                var tickets = new Queue<(WalSyncTicket Ticket, int Covers)>();
                try
                {
                    using var wal = WriteAheadLog.Open(directory, options, out var recovery);
                    // Everything acknowledged survived; anything more is a prefix of what was written after it.
                    Assert.True(recovery.Entries.Count >= expected.Count, $"seed {seed} round {round}: lost entries");
                    AssertSameEntries(expected, recovery.Entries.Take(expected.Count).ToList());
                    Assert.True(recovery.HardState.Term >= expectedHard.Term && recovery.HardState.Commit >= expectedHard.Commit,
                        $"seed {seed} round {round}: lost the hard state");
                    expected = [.. recovery.Entries];
                    expectedHard = recovery.HardState;
                    records.Clear();
                    durable = 0;
                    term = Math.Max(term, recovery.HardState.Term) + 1;
                    while (true)
                    {
                        var roll = random.NextInt32(100);
                        if (roll < 50)
                        {
                            for (var i = 0; i < random.NextInt32(4) + 1; i++)
                            {
                                var entry = new WalEntry(wal.LastIndex + 1, term, Payload(random.NextUInt64(), random.NextInt32(60)));
                                wal.Append(entry);
                                records.Add(entry);
                            }
                        }
                        else if (roll < 60)
                        {
                            var hard = new WalHardState(term, 1, Math.Max(wal.HardState.Commit, wal.LastIndex / 2));
                            wal.SetHardState(hard);
                            records.Add(hard);
                        }
                        else if (roll < 80)
                        {
                            if (wal.BeginSync() is { } ticket) tickets.Enqueue((ticket, records.Count));
                            else
                            {
                                wal.Sync();
                                durable = records.Count;
                            }
                        }
                        else if (roll < 97)
                        {
                            if (!tickets.TryDequeue(out var done)) continue;
                            if (tickets.Count > 0) completionsWithLaterTickets++;
                            done.Ticket.Sync();
                            wal.CompleteSync(done.Ticket);
                            pipelinedCompletions++;
                            durable = Math.Max(durable, done.Covers);
                        }
                        else
                        {
                            wal.Sync();
                            durable = records.Count;
                        }
                        wal.AssertInvariants();
                        // The model: what is durable now must survive a crash from here on.
                        foreach (var record in records.Take(durable))
                        {
                            if (record is WalEntry e)
                            {
                                expected.RemoveAll(x => x.Index >= e.Index);
                                expected.Add(e);
                            }
                            else expectedHard = (WalHardState)record;
                        }
                        records.RemoveRange(0, durable);
                        tickets = new Queue<(WalSyncTicket, int)>(tickets.Select(t => (t.Ticket, t.Covers - durable)));
                        durable = 0;
                    }
                }
                catch (SimulatedCrash)
                {
                    disk.Crash();
                }
            }
        }
        Assert.True(pipelinedCompletions > 1000, $"only {pipelinedCompletions} pipelined syncs completed");
        Assert.True(completionsWithLaterTickets > 300, $"only {completionsWithLaterTickets} completions happened with later tickets outstanding");
    }
}
