using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;
using Keel.Storage;
using Xunit.Abstractions;

namespace Keel.Fuzz.Tests;

/// <summary>
/// WAL recovery (<see cref="WriteAheadLog.Open"/>) of a valid log whose segments were damaged at the byte level
/// (stacked mutations, inserted garbage, truncation, length fields set to huge values with a matching check word):
/// it either recovers a content-equal prefix of the written entries that keeps every record before the first
/// damaged byte, and the repaired log then takes and keeps a new entry, or it throws <see cref="WalCorruptionException"/>
/// naming a file of the log and an offset within it. Nothing else, and it always completes.
/// </summary>
public sealed class WalFuzzTests(ITestOutputHelper output)
{
    /// <summary>A damaged log and what was durably written before the damage.</summary>
    public sealed record WalCase(
        MemoryDirectory Directory, WalOptions Options, List<WalEntry> Entries, List<(string Segment, long End)> Ends,
        string Damaged, long FirstDiff, byte[] DamagedBytes)
    {
        public override string ToString() => $"{Entries.Count} entries, damaged {Damaged} from byte {FirstDiff}";
    }

    private sealed record LengthOverwrite(int RecordPick, long Length, bool MatchingCheck);

    private static readonly Gen<LengthOverwrite?> LengthOverwriteGen = Gen.Frequency(
        (3, Gen.Constant<LengthOverwrite?>(null)),
        (1, from pick in Gen.Choose(0, int.MaxValue)
            from length in Gen.Elements(0x7FFFFFFFL, 0xFFFFFFFFL, 0x80000000L, 16L * 1024 * 1024, 16L * 1024 * 1024 + 1, 4096, 1, 0)
            from matching in Gen.Frequency((3, Gen.Constant(true)), (1, Gen.Constant(false)))
            select (LengthOverwrite?)new LengthOverwrite(pick, length, matching)));

    private static readonly Gen<Mutation[]> MutationsGen =
        from count in Gen.Frequency((5, Gen.Constant(0)), (4, Gen.Constant(1)), (3, Gen.Choose(2, 4)))
        from mutations in Gen.ArrayOf(
            from kind in Gen.Elements(Enum.GetValues<MutationKind>())
            from position in Gen.Choose(0, int.MaxValue)
            from amount in Gen.Choose(1, 64)
            from extreme in Gen.Elements(0x7FFFFFFFL, 0xFFFFFFFFL, 0x80000000L, 0L, -1L, long.MaxValue)
            from garbageLength in Gen.Choose(1, 64)
            from garbage in Gen.ArrayOf(ArbMap.Default.GeneratorFor<byte>(), garbageLength)
            select new Mutation(kind, position, amount, extreme, garbage), count)
        select mutations;

    public static readonly Gen<WalCase> CaseGen =
        from count in Gen.Choose(1, 40)
        from lengths in Gen.ArrayOf(Gen.Frequency((4, Gen.Choose(0, 40)), (1, Gen.Choose(41, 300))), count)
        from segmentSize in Gen.Elements(256L, 512L, 4096L)
        from hardStates in Gen.ArrayOf(Gen.Frequency((4, Gen.Constant(false)), (1, Gen.Constant(true))), count)
        from segmentPick in Gen.Frequency((3, Gen.Constant(-1)), (2, Gen.Choose(0, 100)))
        from mutations in MutationsGen
        from lengthOverwrite in LengthOverwriteGen
        from keepTail in Gen.Frequency((3, Gen.Constant(true)), (1, Gen.Constant(false)))
        from caseSeed in Gen.Choose(0, int.MaxValue)
        select Build(count, lengths, segmentSize, hardStates, segmentPick, mutations, lengthOverwrite, keepTail, caseSeed);

    private static WalCase Build(int count, int[] lengths, long segmentSize, bool[] hardStates, int segmentPick, Mutation[] mutations,
        LengthOverwrite? lengthOverwrite, bool keepTail, int caseSeed)
    {
        var options = new WalOptions { SegmentSizeBytes = segmentSize };
        var directory = new MemoryDirectory();
        var entries = new List<WalEntry>();
        var ends = new List<(string, long)>();
        var random = new Random(caseSeed);
        using (var wal = WriteAheadLog.Open(directory, options, out _))
        {
            for (var i = 0; i < count; i++)
            {
                var payload = new byte[lengths[i]];
                random.NextBytes(payload);
                var entry = new WalEntry((ulong)i + 1, 1 + (ulong)i / 8, payload);
                wal.Append(entry);
                if (hardStates[i]) wal.SetHardState(new WalHardState(1 + (ulong)i / 8, 1, (ulong)i / 2));
                wal.Sync();
                entries.Add(entry);
                ends.Add((wal.ActiveSegmentName, wal.DurableOffsetBytes));
            }
        }
        var names = directory.Files.Keys.ToList();
        var damaged = segmentPick < 0 ? names[^1] : names[segmentPick % names.Count];
        var original = directory.Files[damaged];
        var used = (int)Math.Min(original.Length, ends.Where(e => e.Item1 == damaged).Select(e => e.Item2).DefaultIfEmpty(64).Max() + 16);
        var bytes = ByteGens.Apply(original[..used], mutations);
        if (lengthOverwrite is { } overwrite)
        {
            // Record starts: 0 and every recorded end in this segment (the opening records are at 0).
            var starts = ends.Where(e => e.Item1 == damaged).Select(e => e.Item2).Prepend(0).Where(s => s + 8 <= bytes.Length).Distinct().ToList();
            if (starts.Count > 0)
            {
                var at = (int)starts[overwrite.RecordPick % starts.Count];
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at), (uint)overwrite.Length);
                if (overwrite.MatchingCheck) BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at + 4), ~(uint)overwrite.Length);
            }
        }
        if (keepTail) bytes = [.. bytes, .. original.AsSpan(used)];
        directory.Files[damaged] = bytes;
        var firstDiff = 0L;
        while (firstDiff < Math.Min(bytes.Length, original.Length) && bytes[firstDiff] == original[firstDiff]) firstDiff++;
        if (firstDiff == Math.Min(bytes.Length, original.Length) && bytes.Length >= original.Length) firstDiff = long.MaxValue; // nothing lost
        return new WalCase(directory, options, entries, ends, damaged, firstDiff, bytes);
    }

    private static void Recover(WalCase c)
    {
        var names = c.Directory.Files.Keys.ToList();
        List<WalEntry> recovered;
        try
        {
            using var wal = WriteAheadLog.Open(c.Directory, c.Options, out var recovery);
            recovered = [.. recovery.Entries];
            // A content-equal prefix of what was written...
            Assert.True(recovered.Count <= c.Entries.Count, "recovery invented entries");
            for (var i = 0; i < recovered.Count; i++)
            {
                Assert.Equal(c.Entries[i].Index, recovered[i].Index);
                Assert.Equal(c.Entries[i].Term, recovered[i].Term);
                Assert.True(c.Entries[i].Payload.Span.SequenceEqual(recovered[i].Payload.Span), $"entry {i + 1} came back different");
            }
            // ...that keeps every record wholly before the first damaged byte.
            var mustSurvive = c.Entries.Count(e =>
            {
                var (segment, end) = c.Ends[(int)e.Index - 1];
                var order = string.CompareOrdinal(segment, c.Damaged);
                return order < 0 || (order == 0 && end <= c.FirstDiff);
            });
            Assert.True(recovered.Count >= mustSurvive, $"recovered {recovered.Count} entries; the {mustSurvive} before the damage at {c.Damaged}:{c.FirstDiff} must survive");
            wal.AssertInvariants();
            // The repaired log takes the next entry, and keeps it.
            wal.Append(new WalEntry((ulong)recovered.Count + 1, 99, new byte[] { 1, 2, 3 }));
            wal.Sync();
        }
        catch (WalCorruptionException e)
        {
            Assert.Contains(e.FileName, names);
            Assert.InRange(e.OffsetBytes, 0, c.Directory.Files[e.FileName].Length);
            Assert.Contains(e.FileName, e.Message, StringComparison.Ordinal);
            throw;
        }
        using var again = WriteAheadLog.Open(c.Directory, c.Options, out var second);
        Assert.Null(second.TornTailFile);
        Assert.Equal(recovered.Count + 1, second.Entries.Count);
        Assert.Equal(99UL, second.Entries[^1].Term);
    }

    [Fact]
    public void A_damaged_log_recovers_a_prefix_or_is_refused_with_WalCorruptionException() =>
        Fuzzer.Run(output, "wal-recovery", CaseGen, Recover, e => e is WalCorruptionException,
            c => c.Directory.TotalBytes, c => c.DamagedBytes, size => 64L * size + 256 * 1024);
}
