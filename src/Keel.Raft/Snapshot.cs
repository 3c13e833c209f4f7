using Keel.Quorum;

namespace Keel.Raft;

/// <summary>
/// Where a snapshot sits in the log and the membership in force at that point (etcd <c>raftpb.SnapshotMetadata</c>).
/// </summary>
/// <param name="Index">The last log index the snapshot covers.</param>
/// <param name="Term">The term of the entry at <paramref name="Index"/>.</param>
/// <param name="Membership">The configuration after applying every entry up to <paramref name="Index"/>.</param>
public sealed record SnapshotMetadata(ulong Index, ulong Term, Membership Membership)
{
    /// <inheritdoc/>
    public override string ToString() => $"Index:{Index} Term:{Term} {Membership}";
}

/// <summary>
/// A point-in-time image of the application state machine plus its metadata (etcd <c>raftpb.Snapshot</c>). The data is
/// opaque to Raft: the application produces it at an applied index and restores from it.
/// </summary>
/// <param name="Metadata">Index, term and membership of the image.</param>
/// <param name="Data">The application's serialized state, when it is held in memory (empty when <see cref="Stored"/> holds it).</param>
public sealed record Snapshot(SnapshotMetadata Metadata, ReadOnlyMemory<byte> Data)
{
    /// <summary>
    /// A snapshot whose image stays where it was stored (a file) and is read in chunks only when a follower needs it
    /// (issue 11: a leader held its last image of several hundred MB in memory for followers that rarely need it).
    /// </summary>
    public Snapshot(SnapshotMetadata metadata, IStoredSnapshotData stored)
        : this(metadata, ReadOnlyMemory<byte>.Empty) => Stored = stored ?? throw new ArgumentNullException(nameof(stored));

    /// <summary>The image outside memory, or null when <see cref="Data"/> holds it.</summary>
    public IStoredSnapshotData? Stored { get; }

    /// <summary>The image's size, wherever it is.</summary>
    public long LengthBytes => Stored?.LengthBytes ?? Data.Length;

    /// <summary>True for the placeholder of a log that was never compacted (index 0).</summary>
    public bool IsEmpty => Metadata.Index == 0;

    /// <summary>A reader of the image for one transfer (each transfer reads on its own, from its own position).</summary>
    internal ISnapshotReader OpenReader() => Stored?.OpenReader() ?? new MemorySnapshotReader(Data);

    /// <inheritdoc/>
    public override string ToString() => $"{Metadata} len={LengthBytes}{(Stored is null ? "" : " (stored)")}";

    private sealed class MemorySnapshotReader(ReadOnlyMemory<byte> data) : ISnapshotReader
    {
        public bool TryRead(long offsetBytes, int countBytes, out ReadOnlyMemory<byte> chunk)
        {
            chunk = data.Slice(checked((int)offsetBytes), countBytes);
            return true;
        }
    }
}

/// <summary>
/// A snapshot image kept outside memory (a file written by the application's storage), which Raft reads in chunks while
/// it streams the image to a follower. Implementations are supplied by the application's storage layer, as etcd-io/raft's
/// <c>Storage</c> is: Raft calls them synchronously on its own thread, one chunk at a time.
/// </summary>
public interface IStoredSnapshotData
{
    /// <summary>The image's size in bytes.</summary>
    long LengthBytes { get; }

    /// <summary>A reader for one transfer.</summary>
    ISnapshotReader OpenReader();
}

/// <summary>Reads one transfer's chunks of a snapshot image.</summary>
public interface ISnapshotReader
{
    /// <summary>
    /// Reads the <paramref name="countBytes"/> bytes at <paramref name="offsetBytes"/> into <paramref name="chunk"/>.
    /// Returns false when the stored image is no longer there: the application deleted it after it saved a newer
    /// snapshot (retention), which can happen while a slow transfer is under way; the leader then abandons the transfer
    /// and sends the newest snapshot instead. A reader of stored data checks the image's checksum as the chunks go by
    /// and throws before it returns the last chunk of a damaged image, so a follower never installs one: damage on the
    /// leader's own disk is a failure it must stop on, loudly.
    /// </summary>
    bool TryRead(long offsetBytes, int countBytes, out ReadOnlyMemory<byte> chunk);
}

/// <summary>
/// One piece of an InstallSnapshot transfer (Raft section 7, "offset"/"done" of the InstallSnapshot RPC): the leader
/// streams a large snapshot in bounded chunks so one message never carries the whole state.
/// </summary>
/// <param name="Metadata">The snapshot being transferred.</param>
/// <param name="Offset">Byte offset of <paramref name="Data"/> within the snapshot data.</param>
/// <param name="TotalBytes">Size of the whole snapshot data.</param>
/// <param name="Data">The bytes of this chunk.</param>
public sealed record SnapshotChunk(SnapshotMetadata Metadata, ulong Offset, ulong TotalBytes, ReadOnlyMemory<byte> Data)
{
    /// <summary>True when this chunk ends the snapshot.</summary>
    public bool IsLast => Offset + (ulong)Data.Length >= TotalBytes;

    /// <inheritdoc/>
    public override string ToString() => $"snap {Metadata.Index}/{Metadata.Term} [{Offset}..{Offset + (ulong)Data.Length}) of {TotalBytes}";
}
