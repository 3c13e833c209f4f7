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
/// <param name="Data">The application's serialized state.</param>
public sealed record Snapshot(SnapshotMetadata Metadata, ReadOnlyMemory<byte> Data)
{
    /// <summary>True for the placeholder of a log that was never compacted (index 0).</summary>
    public bool IsEmpty => Metadata.Index == 0;

    /// <inheritdoc/>
    public override string ToString() => $"{Metadata} len={Data.Length}";
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
