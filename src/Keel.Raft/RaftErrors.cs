namespace Keel.Raft;

/// <summary>Why a proposal was not appended to the log.</summary>
public enum ProposalDropReason
{
    /// <summary>The proposal was accepted.</summary>
    None,

    /// <summary>No leader is known (election in progress, or this node is partitioned).</summary>
    NoLeader,

    /// <summary>The leader is handing leadership to another node and refuses new entries until it is done.</summary>
    LeadershipTransferInProgress,

    /// <summary>The leader's uncommitted entries exceed <see cref="RaftOptions.MaxUncommittedBytes"/>.</summary>
    Overloaded,

    /// <summary>A follower needed for quorum lags beyond <see cref="RaftOptions.MaxQuorumLagEntries"/>.</summary>
    QuorumLagging,

    /// <summary>This follower does not forward proposals (<see cref="RaftOptions.DisableProposalForwarding"/>).</summary>
    ForwardingDisabled,

    /// <summary>This node is no longer in the configuration.</summary>
    NotMember,

    /// <summary>A configuration change was refused (one already pending, or the change is invalid or unsafe).</summary>
    ConfChangeRefused,
}

/// <summary>What happened to a proposal when <see cref="RaftNode.Propose"/> returned.</summary>
public enum ProposeStatus
{
    /// <summary>Appended to this leader's log at <see cref="ProposeResult.Index"/>; a <see cref="ProposalOutcome"/> will follow.</summary>
    Appended,

    /// <summary>Sent to the leader <see cref="ProposeResult.Leader"/>; the application learns the outcome from the applied entries.</summary>
    Forwarded,

    /// <summary>Refused for <see cref="ProposeResult.DropReason"/>; nothing was appended.</summary>
    Dropped,
}

/// <summary>The immediate result of a proposal. Dropped proposals can be turned into exceptions with <see cref="ThrowIfDropped"/>.</summary>
/// <param name="Status">Appended, forwarded or dropped.</param>
/// <param name="Index">Log index of the appended entry (Appended only).</param>
/// <param name="Term">Term of the appended entry (Appended only).</param>
/// <param name="Leader">The leader the proposal went to (Appended: this node).</param>
/// <param name="DropReason">Why it was dropped.</param>
/// <param name="Detail">A human-readable explanation of a drop.</param>
public readonly record struct ProposeResult(ProposeStatus Status, ulong Index, ulong Term, ulong Leader,
    ProposalDropReason DropReason, string? Detail)
{
    /// <summary>True when the proposal was appended or forwarded.</summary>
    public bool IsAccepted => Status != ProposeStatus.Dropped;

    internal static ProposeResult Dropped(ProposalDropReason reason, string detail) =>
        new(ProposeStatus.Dropped, 0, 0, 0, reason, detail);

    /// <summary>Throws the typed exception for a dropped proposal; returns this result otherwise.</summary>
    /// <exception cref="RaftOverloadedException">Back-pressure refused the proposal.</exception>
    /// <exception cref="ProposalDroppedException">The proposal was refused for another reason.</exception>
    public ProposeResult ThrowIfDropped()
    {
        if (Status != ProposeStatus.Dropped) return this;
        var message = Detail ?? DropReason.ToString();
        if (DropReason is ProposalDropReason.Overloaded or ProposalDropReason.QuorumLagging)
            throw new RaftOverloadedException(DropReason, message);
        throw new ProposalDroppedException(DropReason, message);
    }
}

/// <summary>A proposal was refused and nothing was appended (etcd <c>ErrProposalDropped</c>, but typed with a reason).</summary>
public class ProposalDroppedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ProposalDroppedException(ProposalDropReason reason, string message) : base(message) => Reason = reason;

    /// <summary>Why the proposal was dropped.</summary>
    public ProposalDropReason Reason { get; }
}

/// <summary>Back-pressure refused a proposal: retry later, after the cluster catches up.</summary>
public sealed class RaftOverloadedException : ProposalDroppedException
{
    /// <summary>Creates the exception.</summary>
    public RaftOverloadedException(ProposalDropReason reason, string message) : base(reason, message) { }
}

/// <summary>Final outcome of a proposal appended by this node as leader.</summary>
public enum ProposalStatus
{
    /// <summary>The entry is committed; it will be (or has been) handed out for applying.</summary>
    Committed,

    /// <summary>
    /// This node lost leadership before the entry committed. The outcome is unknown (a later leader may still commit
    /// it): retry with an idempotency key. Reported at once so that no client hangs until a timeout (etcd #8975).
    /// </summary>
    LeaderChanged,
}

/// <summary>A completed or failed proposal, reported in <see cref="Ready.ProposalOutcomes"/>.</summary>
/// <param name="Index">The index the proposal was appended at.</param>
/// <param name="Term">The term it was appended in.</param>
/// <param name="Status">Committed or leader changed.</param>
public readonly record struct ProposalOutcome(ulong Index, ulong Term, ProposalStatus Status);

/// <summary>How a ReadIndex request ended.</summary>
public enum ReadOutcome
{
    /// <summary>Linearizable: serve the read once the state machine has applied <see cref="ReadState.Index"/>.</summary>
    Ready,

    /// <summary>Leadership changed (or was lost) before the read was confirmed; retry.</summary>
    LeaderChanged,

    /// <summary>No leader is known; retry later.</summary>
    NoLeader,

    /// <summary>The read was not confirmed within <see cref="RaftOptions.ReadTimeoutTicks"/>; retry.</summary>
    TimedOut,
}

/// <summary>The answer to a <see cref="RaftNode.ReadIndex"/> request (etcd <c>ReadState</c>, plus a failure outcome).</summary>
/// <param name="RequestId">The id the application passed in.</param>
/// <param name="Index">The commit index the read must wait for (valid when <paramref name="Outcome"/> is Ready).</param>
/// <param name="Outcome">Ready or why it failed.</param>
public readonly record struct ReadState(ulong RequestId, ulong Index, ReadOutcome Outcome);
