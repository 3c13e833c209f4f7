using Keel.Core;
using Keel.Quorum;

namespace Keel.Raft.Tests;

/// <summary>
/// <see cref="MemoryRaftStorage.ReleasePayloads"/>: applied entries' payloads leave memory and are read back from an
/// archive (Keel's WAL) with exactly what the log held, under the same size limits; terms stay in memory.
/// </summary>
public sealed class ReleasedPayloadTests
{
    private static readonly Membership One = new([1]);

    private sealed class DictionaryArchive(IReadOnlyList<Entry> entries) : IRaftEntryArchive
    {
        public int Reads { get; private set; }
        public Func<Entry, Entry> Tamper { get; set; } = e => e;

        public void ReadEntries(ulong low, ulong high, long maxBytes, List<Entry> into)
        {
            Reads++;
            long size = 0;
            for (var index = low; index < high; index++)
            {
                var entry = Tamper(entries[(int)index - 1]);
                size += entry.PayloadBytes;
                if (index > low && size > maxBytes) break;
                into.Add(entry);
            }
        }
    }

    private static List<Entry> Entries(int count) =>
        [.. Enumerable.Range(1, count).Select(i => Entry.Normal((ulong)i, (ulong)(1 + i / 8), Enumerable.Repeat((byte)i, 10).ToArray()))];

    private static List<Entry> Get(MemoryRaftStorage storage, ulong low, ulong high, long maxBytes)
    {
        var into = new List<Entry>();
        Assert.Equal(StorageStatus.Ok, storage.TryGetEntries(low, high, maxBytes, into));
        return into;
    }

    private static void AssertSame(IReadOnlyList<Entry> expected, IReadOnlyList<Entry> actual)
    {
        Assert.Equal(expected.Select(e => (e.Index, e.Term, e.Type)), actual.Select(e => (e.Index, e.Term, e.Type)));
        for (var i = 0; i < expected.Count; i++) Assert.True(expected[i].Data.Span.SequenceEqual(actual[i].Data.Span));
    }

    [Fact]
    public void Released_entries_read_back_exactly_as_held_under_every_size_limit()
    {
        var entries = Entries(20);
        var storage = new MemoryRaftStorage(One);
        storage.Append(entries);
        var queries = (from low in new ulong[] { 1, 5, 12, 13, 20 }
                       from high in new ulong[] { 13, 14, 21 }
                       where high > low
                       from max in new long[] { 0, 10, 25, 95, long.MaxValue }
                       select (low, high, max)).ToList();
        var before = queries.Select(q => Get(storage, q.low, q.high, q.max)).ToList();
        Assert.Equal(200, storage.PayloadBytesInMemory);

        var archive = new DictionaryArchive(entries);
        // Released oldest first until at most 50 bytes stay, but never beyond the applied index given (12).
        Assert.Equal(12, storage.ReleasePayloads(12, 50, archive));
        Assert.Equal(12UL, storage.ReleasedThroughIndex);
        Assert.Equal(80, storage.PayloadBytesInMemory);
        storage.AssertInvariants();
        for (var i = 0; i < queries.Count; i++) AssertSame(before[i], Get(storage, queries[i].low, queries[i].high, queries[i].max));
        Assert.True(archive.Reads > 0);
        Assert.Equal(StorageStatus.Ok, storage.TryGetTerm(3, out var term));
        Assert.Equal(entries[2].Term, term); // terms need no archive read

        // Nothing more is released while the bytes in memory are within the bound.
        Assert.Equal(0, storage.ReleasePayloads(20, 80, archive));
        Assert.Equal(2, storage.ReleasePayloads(20, 60, archive));
        Assert.Equal(14UL, storage.ReleasedThroughIndex);
    }

    [Fact]
    public void A_released_entry_is_never_overwritten_and_an_archive_that_returns_another_entry_is_caught()
    {
        var entries = Entries(10);
        var storage = new MemoryRaftStorage(One);
        storage.Append(entries);
        var archive = new DictionaryArchive(entries);
        storage.ReleasePayloads(6, 0, archive);
        Assert.Throws<InvariantViolationException>(() => storage.Append([Entry.Normal(6, 9, new byte[] { 1 })]));
        storage.Append([Entry.Normal(7, 9, new byte[] { 1 })]); // above the released part: a new leader's suffix
        Assert.Equal(7UL, storage.LastIndex);

        archive.Tamper = e => e.Index == 4 ? e with { Term = e.Term + 1 } : e;
        Assert.Throws<InvariantViolationException>(() => storage.TryGetEntries(2, 6, long.MaxValue, []));
    }

    [Fact]
    public void Compaction_and_an_installed_snapshot_keep_the_byte_count_exact()
    {
        var entries = Entries(20);
        var storage = new MemoryRaftStorage(One);
        storage.Append(entries);
        storage.ReleasePayloads(8, 0, new DictionaryArchive(entries));
        storage.CreateSnapshot(10, One, ReadOnlyMemory<byte>.Empty);
        storage.Compact(10);
        Assert.Equal(100, storage.PayloadBytesInMemory);
        storage.AssertInvariants();
        storage.ApplySnapshot(new Snapshot(new SnapshotMetadata(30, 4, One), ReadOnlyMemory<byte>.Empty));
        Assert.Equal(0, storage.PayloadBytesInMemory);
        storage.Append([Entry.Normal(31, 4, new byte[] { 1, 2, 3 })]);
        Assert.Equal(3, storage.PayloadBytesInMemory);
        storage.AssertInvariants();
    }
}
