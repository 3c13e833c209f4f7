namespace Keel.Raft;

/// <summary>What an <see cref="Entry"/> carries: an application command or a membership change.</summary>
public enum EntryType : byte
{
    /// <summary>An application command (or the empty entry a new leader appends to commit its term).</summary>
    Normal,

    /// <summary>An encoded <see cref="ConfChangeV2"/>; the configuration takes effect when the entry is applied.</summary>
    ConfChange,
}

/// <summary>
/// One slot of the replicated log: its position (<paramref name="Index"/>), the leader term that created it
/// (<paramref name="Term"/>) and the opaque payload. Mirrors etcd-io/raft <c>raftpb.Entry</c>.
/// </summary>
/// <param name="Index">Position in the log, starting at 1.</param>
/// <param name="Term">Term of the leader that appended the entry.</param>
/// <param name="Type">Normal command or configuration change.</param>
/// <param name="Data">The payload; empty for the leader's no-op entry.</param>
public readonly record struct Entry(ulong Index, ulong Term, EntryType Type, ReadOnlyMemory<byte> Data)
{
    /// <summary>Payload size in bytes: what flow control, batching and the uncommitted-bytes limit count.</summary>
    public int PayloadBytes => Data.Length;

    /// <summary>A normal entry.</summary>
    public static Entry Normal(ulong index, ulong term, ReadOnlyMemory<byte> data) => new(index, term, EntryType.Normal, data);

    /// <inheritdoc/>
    public override string ToString() => $"{Term}/{Index} {Type} len={Data.Length}";
}

/// <summary>
/// The state a node must persist before it sends the messages that depend on it (Raft figure 2 "persistent state",
/// etcd <c>raftpb.HardState</c>).
/// </summary>
/// <param name="Term">Current term.</param>
/// <param name="Vote">The candidate voted for in <paramref name="Term"/>, 0 for none.</param>
/// <param name="Commit">The highest index known to be committed.</param>
public readonly record struct HardState(ulong Term, ulong Vote, ulong Commit)
{
    /// <summary>The hard state of a node that has never run.</summary>
    public static HardState Empty => default;

    /// <inheritdoc/>
    public override string ToString() => $"Term:{Term} Vote:{Vote} Commit:{Commit}";
}

/// <summary>The role of a node (Raft section 5.2, plus the pre-candidate of the Raft thesis section 9.6).</summary>
public enum RaftRole
{
    /// <summary>Follows a leader (or waits for one).</summary>
    Follower,

    /// <summary>Asks for pre-votes without raising its term, so a rejoining partitioned node cannot disrupt the cluster.</summary>
    PreCandidate,

    /// <summary>Raised its term and asks for votes.</summary>
    Candidate,

    /// <summary>Accepts proposals and replicates the log.</summary>
    Leader,
}

/// <summary>Volatile state that is useful to the driver but never persisted (etcd <c>SoftState</c>).</summary>
/// <param name="Leader">The known leader, 0 for none.</param>
/// <param name="Role">This node's role.</param>
public readonly record struct SoftState(ulong Leader, RaftRole Role)
{
    /// <inheritdoc/>
    public override string ToString() => $"Lead:{Leader} State:{Role}";
}
