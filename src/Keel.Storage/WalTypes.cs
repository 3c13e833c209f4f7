using Keel.Core.Storage;

namespace Keel.Storage;

/// <summary>One replicated-log entry as the WAL stores it: opaque to storage except for its position.</summary>
/// <param name="Index">The log index (1-based, as in Raft).</param>
/// <param name="Term">The term in which the entry was proposed.</param>
/// <param name="Payload">The entry's bytes, stored verbatim.</param>
public readonly record struct WalEntry(ulong Index, ulong Term, ReadOnlyMemory<byte> Payload);

/// <summary>Raft's hard state (term, vote, commit): must be durable before a vote or an append is acknowledged.</summary>
/// <param name="Term">The current term.</param>
/// <param name="Vote">The node voted for in <paramref name="Term"/> (0 for none).</param>
/// <param name="Commit">The highest index known committed.</param>
public readonly record struct WalHardState(ulong Term, ulong Vote, ulong Commit);

/// <summary>Marks that a snapshot covering the log up to (index, term) was durably saved (etcd's <c>walpb.Snapshot</c>).</summary>
/// <param name="Index">The last index the snapshot covers.</param>
/// <param name="Term">The term of that entry.</param>
public readonly record struct WalSnapshotMarker(ulong Index, ulong Term);

/// <summary>Tuning of a <see cref="WriteAheadLog"/>.</summary>
public sealed record WalOptions
{
    /// <summary>Size each segment is preallocated to; a new segment starts once the active one has reached it (etcd: 64 MiB).</summary>
    public long SegmentSizeBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>Largest payload accepted; larger lengths found on disk are corruption.</summary>
    public int MaxPayloadBytes { get; init; } = 16 * 1024 * 1024;
}

/// <summary>What <see cref="WriteAheadLog.Open"/> found on disk.</summary>
public sealed class WalRecovery
{
    internal WalRecovery(WalHardState hardState, WalSnapshotMarker snapshot, IReadOnlyList<WalEntry> entries,
        string? tornFile, long tornOffsetBytes, long tornBytes, IReadOnlyList<string> warnings)
    {
        HardState = hardState;
        Snapshot = snapshot;
        Entries = entries;
        TornTailFile = tornFile;
        TornTailOffsetBytes = tornOffsetBytes;
        TornTailBytesDropped = tornBytes;
        Warnings = warnings;
    }

    /// <summary>The last durable hard state (all zero for a new log).</summary>
    public WalHardState HardState { get; }

    /// <summary>The newest snapshot marker (index 0 if none).</summary>
    public WalSnapshotMarker Snapshot { get; }

    /// <summary>The entries after <see cref="Snapshot"/>, contiguous and ascending; each payload is an array of its own (never a view of a segment).</summary>
    public IReadOnlyList<WalEntry> Entries { get; }

    /// <summary>The segment whose unacknowledged torn tail was cut off, or null if the log ended cleanly.</summary>
    public string? TornTailFile { get; }

    /// <summary>The byte offset the torn tail was cut at.</summary>
    public long TornTailOffsetBytes { get; }

    /// <summary>How many non-zero-headed bytes were discarded from the tail (an upper bound of the torn record's size).</summary>
    public long TornTailBytesDropped { get; }

    /// <summary>Human-readable notes on what recovery repaired.</summary>
    public IReadOnlyList<string> Warnings { get; }
}

/// <summary>
/// The log on disk is damaged somewhere an acknowledged write may live (a bad checksum before the tail, a gap in
/// indexes, a missing segment). The node must not start: continuing would silently forget acknowledged writes.
/// </summary>
public sealed class WalCorruptionException : Exception
{
    /// <summary>Creates the exception naming the file, the byte offset and the problem.</summary>
    public WalCorruptionException(string fileName, long offsetBytes, string problem)
        : base($"WAL corruption in '{fileName}' at byte offset {offsetBytes}: {problem}. The member stops and refuses to start, because " +
               "acknowledged writes may be damaged. What to do: keep the file for inspection (do not delete or truncate it " +
               "to force a start); wipe this node's data directory and let it rejoin the cluster so a healthy replica " +
               "sends it a snapshot, or restore the directory from a backup.")
    {
        FileName = fileName;
        OffsetBytes = offsetBytes;
        Problem = problem;
    }

    /// <summary>The damaged file.</summary>
    public string FileName { get; }

    /// <summary>Byte offset of the damaged record in <see cref="FileName"/>.</summary>
    public long OffsetBytes { get; }

    /// <summary>What is wrong.</summary>
    public string Problem { get; }
}

/// <summary>
/// The NOSPACE alarm (etcd: "etcdserver: mvcc: database space exceeded"): the device is full, so the WAL refuses
/// writes. Records already synced are untouched; buffered records are kept and a later <see cref="WriteAheadLog.Sync"/>
/// retries them once space returns.
/// </summary>
public sealed class WalNoSpaceException : Exception
{
    /// <summary>Creates the alarm from the underlying disk error.</summary>
    public WalNoSpaceException(DiskFullException inner)
        : base($"wal: NOSPACE alarm: no space left on device ({inner.FileName}); writes are refused until space is freed, " +
               "then call Sync again. Nothing already acknowledged was damaged.", inner)
    {
    }
}
