using static Keel.Storage.Tests.TestDisks;

namespace Keel.Storage.Tests;

/// <summary>
/// The two recovery laws, checked exhaustively: cutting the log at every byte offset of its last records
/// yields exactly the records wholly before the cut, and flipping any bit of a record is refused loudly; neither ever
/// yields a silently shorter log.
/// </summary>
public sealed class TornTailAndBitFlipTests
{
    private static (MemoryDirectory Directory, List<WalEntry> Entries, List<long> EndOffsets, string LastSegment) BuildLog(WalOptions options, int count)
    {
        var directory = new MemoryDirectory();
        var entries = new List<WalEntry>();
        var ends = new List<long>();
        using var wal = WriteAheadLog.Open(directory, options, out _);
        for (ulong i = 1; i <= (ulong)count; i++)
        {
            var entry = Entry(i, term: 1, length: (int)(i * 7 % 40));
            wal.Append(entry);
            wal.Sync();
            entries.Add(entry);
            ends.Add(wal.DurableOffsetBytes);
        }
        return (directory, entries, ends, wal.ActiveSegmentName);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Cutting_the_last_records_at_every_byte_offset_recovers_exactly_the_records_before_the_cut(bool zeroFill)
    {
        var options = new WalOptions { SegmentSizeBytes = 4096 };
        var (directory, entries, ends, segment) = BuildLog(options, 24);
        var firstCut = ends[^9];
        for (var cut = firstCut; cut <= ends[^1]; cut++)
        {
            var copy = directory.Clone();
            var bytes = copy.Files[segment];
            if (zeroFill) Array.Clear(bytes, (int)cut, bytes.Length - (int)cut); // torn write into preallocated space
            else copy.Files[segment] = bytes[..(int)cut]; // the file itself was cut short
            var survivors = ends.Count(end => end <= cut);

            using (var wal = WriteAheadLog.Open(copy, options, out var recovery))
            {
                AssertSameEntries(entries[..survivors], recovery.Entries);
                var atBoundary = ends.Contains(cut);
                Assert.Equal(atBoundary, recovery.TornTailFile is null);
                if (!atBoundary) Assert.Equal(ends[survivors - 1], recovery.TornTailOffsetBytes);
                wal.AssertInvariants();
                // The repaired log accepts the next entry where the torn one was.
                var next = Entry((ulong)survivors + 1, term: 2, length: 5);
                wal.Append(next);
                wal.Sync();
            }
            using var again = WriteAheadLog.Open(copy, options, out var second);
            Assert.Null(second.TornTailFile);
            AssertSameEntries([.. entries[..survivors], Entry((ulong)survivors + 1, 2, 5)], second.Entries);
        }
    }

    [Fact]
    public void Flipping_any_bit_of_any_record_is_refused_and_flips_after_the_end_lose_nothing()
    {
        var options = new WalOptions { SegmentSizeBytes = 512 };
        var (directory, entries, ends, lastSegment) = BuildLog(options, 30);
        Assert.True(directory.Files.Count >= 2, "the log should span several segments");
        var refusals = 0;
        foreach (var (name, original) in directory.Files)
        {
            var used = name == lastSegment ? ends[^1] : Array.FindLastIndex(original, b => b != 0) + 1;
            var limit = Math.Min(original.Length, (int)used + 40);
            for (var offset = 0; offset < limit; offset++)
            {
                for (var bit = 0; bit < 8; bit++)
                {
                    var copy = directory.Clone();
                    copy.Files[name][offset] ^= (byte)(1 << bit);
                    try
                    {
                        using var wal = WriteAheadLog.Open(copy, options, out var recovery);
                        // Not refused: then nothing may be missing.
                        Assert.True(offset >= used, $"a flip of bit {bit} at {name}:{offset}, inside the records, was not refused");
                        AssertSameEntries(entries, recovery.Entries);
                    }
                    catch (WalCorruptionException e)
                    {
                        refusals++;
                        Assert.Equal(name, e.FileName);
                        Assert.True(e.OffsetBytes <= offset, $"reported offset {e.OffsetBytes} lies after the flipped byte {offset}");
                        Assert.Contains(name, e.Message, StringComparison.Ordinal);
                        Assert.Contains($"offset {e.OffsetBytes}", e.Message, StringComparison.Ordinal);
                    }
                }
            }
        }
        Assert.True(refusals > 1000);
    }
}
