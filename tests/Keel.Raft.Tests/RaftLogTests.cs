using FsCheck.Xunit;
using Keel.Core;
using Keel.Quorum;

namespace Keel.Raft.Tests;

public sealed class RaftLogTests
{
    private static readonly Membership Three = new([1, 2, 3]);

    private static Entry E(ulong index, ulong term, string data = "") => Entry.Normal(index, term, System.Text.Encoding.UTF8.GetBytes(data));

    private static (MemoryRaftStorage Storage, RaftLog Log) LogWith(params (ulong Index, ulong Term)[] stored)
    {
        var storage = new MemoryRaftStorage(Three);
        storage.Append(stored.Select(e => E(e.Index, e.Term)).ToArray());
        return (storage, new RaftLog(storage));
    }

    [Fact]
    public void MaybeAppendChecksThePrecedingEntryAndTruncatesConflicts()
    {
        var (_, log) = LogWith((1, 1), (2, 1), (3, 2));
        Assert.Null(log.MaybeAppend(prevIndex: 3, prevTerm: 1, leaderCommit: 0, [E(4, 3)])); // log matching fails
        Assert.Equal(4ul, log.MaybeAppend(prevIndex: 2, prevTerm: 1, leaderCommit: 2, [E(3, 3), E(4, 3)]));
        Assert.True(log.MatchTerm(3, 3));
        Assert.Equal(2ul, log.Committed);
        log.AssertInvariants();
    }

    [Fact]
    public void AlreadyPresentEntriesAreNotRewritten()
    {
        var (_, log) = LogWith((1, 1), (2, 1), (3, 1));
        Assert.Equal(2ul, log.MaybeAppend(prevIndex: 1, prevTerm: 1, leaderCommit: 0, [E(2, 1)]));
        Assert.Equal(3ul, log.LastIndex); // a stale, shorter append never truncates a matching log
    }

    [Fact]
    public void CommittedEntriesCanNeverBeOverwritten()
    {
        var (_, log) = LogWith((1, 1), (2, 1));
        log.CommitTo(2);
        Assert.Throws<InvariantViolationException>(() => log.MaybeAppend(prevIndex: 1, prevTerm: 1, leaderCommit: 2, [E(2, 2)]));
    }

    [Fact]
    public void CommitNeverPassesTheLastIndexNorMovesBack()
    {
        var (_, log) = LogWith((1, 1));
        Assert.Throws<InvariantViolationException>(() => log.CommitTo(5));
        log.CommitTo(1);
        log.CommitTo(0);
        Assert.Equal(1ul, log.Committed);
    }

    [Fact]
    public void FindConflictByTermSkipsAWholeTerm()
    {
        // Leader's log: terms 1 1 1 4 4 5 5 6 6 6 (etcd's example). A follower rejected index 9 with term 3.
        var (_, log) = LogWith((1, 1), (2, 1), (3, 1), (4, 4), (5, 4), (6, 5), (7, 5), (8, 6), (9, 6), (10, 6));
        Assert.Equal((3ul, 1ul), log.FindConflictByTerm(9, 3));
        Assert.Equal((7ul, 5ul), log.FindConflictByTerm(10, 5));
        Assert.Equal((0ul, 0ul), log.FindConflictByTerm(10, 0));
    }

    [Fact]
    public void UpToDateComparesLastTermThenLength()
    {
        var (_, log) = LogWith((1, 1), (2, 2));
        Assert.True(log.IsUpToDate(lastIndex: 1, lastTerm: 3));
        Assert.True(log.IsUpToDate(lastIndex: 2, lastTerm: 2));
        Assert.False(log.IsUpToDate(lastIndex: 5, lastTerm: 1));
        Assert.False(log.IsUpToDate(lastIndex: 1, lastTerm: 2));
    }

    [Fact]
    public void StableToIgnoresEntriesReplacedByANewerLeader()
    {
        var (storage, log) = LogWith((1, 1));
        log.Append([E(2, 1), E(3, 1)]);
        var inProgress = ReadyEntries(log);
        Assert.Equal(2, inProgress.Count);
        log.MaybeAppend(prevIndex: 2, prevTerm: 1, leaderCommit: 0, [E(3, 2)]); // a new leader overwrote 3 meanwhile
        Assert.False(log.StableTo(3, 1));       // the write of 1/3 does not make 2/3 durable
        Assert.Equal(2ul, log.PersistedIndex + 1); // still nothing new persisted beyond 1
        storage.Append([E(2, 1), E(3, 2)]);
        Assert.True(log.StableTo(3, 2));
        Assert.Equal(3ul, log.PersistedIndex);
        log.AssertInvariants();
    }

    [Fact]
    public void CompactedIndexesReportCompacted()
    {
        var (storage, log) = LogWith((1, 1), (2, 1), (3, 1), (4, 2));
        storage.CreateSnapshot(3, Three, new byte[] { 1 });
        storage.Compact(3);
        Assert.Equal(4ul, log.FirstIndex);
        Assert.Equal(StorageStatus.Compacted, log.TryGetTerm(2, out _));
        Assert.True(log.MatchTerm(3, 1)); // the snapshot's last entry is still known by index and term
        Assert.Equal(StorageStatus.Compacted, log.TryGetEntries(2, 5, long.MaxValue, []));
        Assert.Equal(StorageStatus.Unavailable, log.TryGetTerm(5, out _));
        storage.AssertInvariants();
    }

    [Fact]
    public void StorageRefusesToCompactBeyondItsSnapshot()
    {
        var (storage, _) = LogWith((1, 1), (2, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => storage.Compact(2));
    }

    /// <summary>Batching: at least one entry, and never more bytes than the limit unless a single entry exceeds it.</summary>
    [Property(MaxTest = 200, Replay = "(20261126,1)")]
    public bool EntriesRespectTheByteLimit(byte[] sizes, byte limit)
    {
        var storage = new MemoryRaftStorage(Three);
        var log = new RaftLog(storage);
        var entries = sizes.Select((s, i) => Entry.Normal((ulong)i + 1, 1, new byte[s % 16])).ToArray();
        if (entries.Length == 0) return true;
        // Half stable, half unstable: the limit must hold across the boundary.
        storage.Append(entries[..(entries.Length / 2)]);
        log = new RaftLog(storage);
        if (entries.Length / 2 < entries.Length) log.Append(entries[(entries.Length / 2)..]);
        var result = new List<Entry>();
        if (log.TryGetEntries(1, (ulong)entries.Length + 1, limit, result) != StorageStatus.Ok) return false;
        var total = result.Sum(e => (long)e.PayloadBytes);
        var contiguous = result.Select((e, i) => e.Index == (ulong)i + 1).All(x => x);
        return result.Count >= 1 && contiguous && (total <= limit || result.Count == 1);
    }

    private static IReadOnlyList<Entry> ReadyEntries(RaftLog log)
    {
        var entries = log.NextUnstableEntries();
        log.AcceptUnstable();
        return entries;
    }
}
