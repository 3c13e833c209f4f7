using Keel.Core.Storage;
using static Keel.Storage.Tests.TestDisks;

namespace Keel.Storage.Tests;

/// <summary>
/// Reading durable entries back from their records (<see cref="WriteAheadLog.OpenReader"/>), which lets Raft's
/// in-memory log hold only the newest payloads: across segment rolls, after recovery, after a replaced suffix and a
/// compaction, on real files, and with a damaged record reported by file and offset.
/// </summary>
public sealed class WalReadBackTests : IDisposable
{
    private static readonly WalOptions Small = new() { SegmentSizeBytes = 1024 };
    private readonly string _path = Path.Combine(Path.GetTempPath(), "keel-storage-tests", Path.GetRandomFileName());

    public void Dispose()
    {
        if (Directory.Exists(_path)) Directory.Delete(_path, recursive: true);
    }

    private static List<WalEntry> ReadBack(WriteAheadLog wal, IEnumerable<ulong> indexes)
    {
        using var reader = wal.OpenReader();
        return [.. indexes.Select(reader.Read)];
    }

    private static List<WalEntry> WriteSynced(WriteAheadLog wal, ulong first, ulong last, ulong term = 1, int length = 40)
    {
        var written = new List<WalEntry>();
        for (var index = first; index <= last; index++)
        {
            var entry = Entry(index, term, length);
            wal.Append(entry);
            written.Add(entry);
            if (index % 3 == 0) wal.Sync();
        }
        wal.Sync();
        return written;
    }

    [Fact]
    public void Entries_written_across_segment_rolls_are_read_back_byte_for_byte_in_any_order()
    {
        using var wal = WriteAheadLog.Open(new MemoryDirectory(), Small, out _);
        var written = WriteSynced(wal, 1, 60);
        Assert.True(wal.SegmentCount > 3, $"only {wal.SegmentCount} segments");
        AssertSameEntries(written, ReadBack(wal, written.Select(e => e.Index)));
        var backwards = written.AsEnumerable().Reverse().ToList();
        AssertSameEntries(backwards, ReadBack(wal, backwards.Select(e => e.Index)));
        wal.AssertInvariants();
    }

    [Fact]
    public void Only_durable_entries_are_readable_and_a_replaced_suffix_reads_as_its_replacement()
    {
        using var wal = WriteAheadLog.Open(new MemoryDirectory(), Small, out _);
        WriteSynced(wal, 1, 5);
        wal.Append(Entry(6));
        wal.Append(Entry(7));
        Assert.False(wal.CanRead(6)); // buffered, not durable
        wal.Sync();
        Assert.True(wal.CanRead(7));
        // A new leader replaces the uncommitted 6 and 7 with its own 6.
        var replacement = Entry(6, term: 2, length: 33);
        wal.Append(replacement);
        wal.Sync();
        Assert.True(wal.CanRead(6));
        Assert.False(wal.CanRead(7));
        AssertSameEntries([replacement], ReadBack(wal, [6]));
        wal.AssertInvariants();
    }

    [Fact]
    public void Entries_recovered_at_open_are_readable_and_entries_of_compacted_segments_are_not()
    {
        var directory = new MemoryDirectory();
        List<WalEntry> written;
        using (var wal = WriteAheadLog.Open(directory, Small, out _))
        {
            written = WriteSynced(wal, 1, 40);
            wal.SaveSnapshotMarker(new WalSnapshotMarker(20, 1));
            wal.Sync();
        }
        using var reopened = WriteAheadLog.Open(directory, Small, out var recovery);
        Assert.Equal(21UL, recovery.Entries[0].Index);
        Assert.False(reopened.CanRead(20)); // covered by the snapshot: recovery keeps nothing at or below it
        AssertSameEntries(written[20..], ReadBack(reopened, Enumerable.Range(21, 20).Select(i => (ulong)i)));

        Assert.True(reopened.Compact(20) > 0);
        var first = reopened.FirstReadableIndex;
        Assert.True(first <= 21, $"entry 21 is in a retained segment, yet the first readable index is {first}");
        var more = WriteSynced(reopened, 41, 45);
        AssertSameEntries([.. written[20..], .. more], ReadBack(reopened, Enumerable.Range(21, 25).Select(i => (ulong)i)));
        reopened.AssertInvariants();
    }

    [Fact]
    public void An_entry_refused_as_too_large_leaves_no_location_behind()
    {
        using var wal = WriteAheadLog.Open(new MemoryDirectory(), new WalOptions { SegmentSizeBytes = 1024, MaxPayloadBytes = 100 }, out _);
        WriteSynced(wal, 1, 2);
        Assert.Throws<ArgumentException>(() => wal.Append(Entry(3, length: 200)));
        wal.AssertInvariants(); // nothing buffered, so no buffered entry either
        var entry = Entry(3, length: 50);
        wal.Append(entry);
        wal.Sync();
        AssertSameEntries([entry], ReadBack(wal, [3]));
    }

    [Fact]
    public void A_damaged_record_is_reported_with_its_file_and_offset_and_its_neighbours_still_read()
    {
        var directory = new MemoryDirectory();
        using var wal = WriteAheadLog.Open(directory, new WalOptions { SegmentSizeBytes = 64 * 1024 }, out _);
        var written = WriteSynced(wal, 1, 10);
        var (name, bytes) = directory.Files.Single();
        var at = bytes.AsSpan().IndexOf(written[2].Payload.Span); // entry 3's payload
        Assert.True(at > 0);
        bytes[at + 5] ^= 0x10;

        using var reader = wal.OpenReader();
        var error = Assert.Throws<WalCorruptionException>(() => reader.Read(3));
        Assert.Equal(name, error.FileName);
        Assert.InRange(error.OffsetBytes, at - 40, at);
        Assert.Contains("CRC32C", error.Message);
        AssertSameEntries([written[1], written[3]], [reader.Read(2), reader.Read(4)]);
    }

    [Fact]
    public void On_real_files_the_active_segment_and_older_ones_are_read_back()
    {
        var directory = new FileSystemDirectory(_path);
        var options = new WalOptions { SegmentSizeBytes = 4096 };
        List<WalEntry> written;
        using (var wal = WriteAheadLog.Open(directory, options, out _))
        {
            written = WriteSynced(wal, 1, 100, length: 100);
            Assert.True(wal.SegmentCount > 2);
            AssertSameEntries(written, ReadBack(wal, written.Select(e => e.Index)));
            // Reading does not disturb writing: the active segment goes on growing after a read of it.
            written.AddRange(WriteSynced(wal, 101, 110, length: 100));
            AssertSameEntries(written, ReadBack(wal, written.Select(e => e.Index)));
        }
        using var reopened = WriteAheadLog.Open(directory, options, out var recovery);
        AssertSameEntries(written, recovery.Entries);
        AssertSameEntries(written, ReadBack(reopened, written.Select(e => e.Index)));
    }
}
