using Keel.Quorum;

namespace Keel.Raft;

/// <summary>Result of a storage read.</summary>
public enum StorageStatus
{
    /// <summary>The value was read.</summary>
    Ok,

    /// <summary>The index lies before the first retained entry: it was compacted into a snapshot.</summary>
    Compacted,

    /// <summary>The index lies beyond the last entry.</summary>
    Unavailable,
}

/// <summary>The durable state a node starts from.</summary>
/// <param name="HardState">The last persisted term, vote and commit.</param>
/// <param name="Membership">The configuration of the last snapshot (or the bootstrap configuration).</param>
public readonly record struct RaftInitialState(HardState HardState, Membership Membership);

/// <summary>
/// The stable log a <see cref="RaftNode"/> reads (etcd <c>raft.Storage</c>): entries that the driver persisted, the
/// latest snapshot and the hard state. The core only reads it; the driver writes it while handling <see cref="Ready"/>.
/// The valid term range is [<see cref="FirstIndex"/> - 1, <see cref="LastIndex"/>]: the entry just before the first one
/// is known by the snapshot's index and term.
/// </summary>
public interface IRaftStorage
{
    /// <summary>The hard state and configuration to start from.</summary>
    RaftInitialState InitialState();

    /// <summary>Index of the first retained entry (the snapshot index + 1).</summary>
    ulong FirstIndex { get; }

    /// <summary>Index of the last entry (the snapshot index when the log is empty).</summary>
    ulong LastIndex { get; }

    /// <summary>The term of the entry at <paramref name="index"/>.</summary>
    StorageStatus TryGetTerm(ulong index, out ulong term);

    /// <summary>
    /// Appends entries [<paramref name="low"/>, <paramref name="high"/>) to <paramref name="into"/>, stopping once their
    /// payload exceeds <paramref name="maxBytes"/> (at least one entry is returned).
    /// </summary>
    StorageStatus TryGetEntries(ulong low, ulong high, long maxBytes, List<Entry> into);

    /// <summary>The latest snapshot (an empty one, index 0, if none was taken).</summary>
    Snapshot Snapshot { get; }

    /// <summary>Discards entries up to and including <paramref name="compactIndex"/>, which must be covered by the snapshot.</summary>
    void Compact(ulong compactIndex);
}

/// <summary>
/// Where <see cref="MemoryRaftStorage"/> reads back entries whose payloads it let go of
/// (<see cref="MemoryRaftStorage.ReleasePayloads"/>): the durable log the driver wrote them to (Keel's WAL). It keeps
/// the log's memory bounded by bytes rather than by the snapshot interval's entry count.
/// </summary>
public interface IRaftEntryArchive
{
    /// <summary>
    /// Appends the durable entries [<paramref name="low"/>, <paramref name="high"/>) to <paramref name="into"/> with their
    /// payloads, stopping once their payload exceeds <paramref name="maxBytes"/> (at least one entry is returned).
    /// </summary>
    void ReadEntries(ulong low, ulong high, long maxBytes, List<Entry> into);
}
