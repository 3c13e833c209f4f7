namespace Keel.Raft;

/// <summary>
/// Everything a <see cref="RaftNode"/> asks its driver to do, in one batch (etcd <c>raft.Ready</c>). The driver:
/// sends <see cref="Messages"/> at once (the leader replicates while it writes its own disk, Raft thesis 10.2.1);
/// persists <see cref="HardState"/>, <see cref="Snapshot"/> and <see cref="Entries"/>; then sends
/// <see cref="MessagesAfterPersist"/> (acks and votes that promise durable state); applies
/// <see cref="CommittedEntries"/> (only after this batch's writes are durable); and calls <see cref="RaftNode.Advance"/>.
/// With asynchronous storage the driver may instead report writes with <see cref="RaftNode.OnPersisted"/> and applies
/// with <see cref="RaftNode.OnApplied"/>, keeping batches in order.
/// </summary>
public sealed class Ready
{
    /// <summary>Leader and role, when they changed since the last batch; null otherwise.</summary>
    public SoftState? SoftState { get; init; }

    /// <summary>Term, vote and commit to persist, when they changed; null otherwise.</summary>
    public HardState? HardState { get; init; }

    /// <summary>A snapshot received from the leader, to persist and restore the state machine from; null if none.</summary>
    public Snapshot? Snapshot { get; init; }

    /// <summary>Entries to append to stable storage (they may overwrite a conflicting tail).</summary>
    public IReadOnlyList<Entry> Entries { get; init; } = [];

    /// <summary>Committed entries to apply, in order, once this batch's writes are durable.</summary>
    public IReadOnlyList<Entry> CommittedEntries { get; init; } = [];

    /// <summary>Messages that may be sent immediately, before the writes of this batch.</summary>
    public IReadOnlyList<Message> Messages { get; init; } = [];

    /// <summary>Messages to send only after this batch's writes (and every earlier batch's) are durable.</summary>
    public IReadOnlyList<Message> MessagesAfterPersist { get; init; } = [];

    /// <summary>Answers to ReadIndex requests.</summary>
    public IReadOnlyList<ReadState> ReadStates { get; init; } = [];

    /// <summary>Proposals appended by this node as leader that committed or whose leader term ended.</summary>
    public IReadOnlyList<ProposalOutcome> ProposalOutcomes { get; init; } = [];

    /// <summary>
    /// True when the writes must be fsynced before the after-persist messages go out and the committed entries apply:
    /// entries, a snapshot, or a new term or vote (etcd-io/raft <c>MustSync</c>). A hard state whose only change is the
    /// commit index is written but need not be synced: the commit index is volatile in Raft (a restarted member learns
    /// it again from the leader), and the next sync makes it durable anyway. Keel's driver still writes it to the file
    /// (<c>WriteAheadLog.Flush</c>), so a killed member re-applies on restart everything it had applied. Syncing it cost
    /// every put a second fsync on every member, on the answer's path (docs/performance.md, "2026-12-04").
    /// </summary>
    public bool MustSync { get; init; }
}
