using Keel.Core;

namespace Keel.Raft;

/// <summary>How a leader serves linearizable reads (etcd <c>ReadOnlyOption</c>).</summary>
public enum ReadOnlyMode
{
    /// <summary>ReadIndex confirmed by a heartbeat round to a quorum (Raft thesis 6.4). Safe under any clock behaviour.</summary>
    Safe,

    /// <summary>
    /// Lease-based reads (Raft thesis 6.4.1): served without a round while the leader holds a lease from a quorum's
    /// heartbeat acks. Needs check-quorum and a clock-drift bound, because it relies on followers' timers.
    /// </summary>
    LeaseBased,
}

/// <summary>
/// Configuration of a <see cref="RaftNode"/> (etcd <c>raft.Config</c>). All durations are in logical ticks: the driver
/// calls <see cref="RaftNode.Tick"/> at a fixed rate (etcd's server ticks every 100 ms).
/// </summary>
public sealed record RaftOptions
{
    /// <summary>This node's id; never 0.</summary>
    public required ulong Id { get; init; }

    /// <summary>
    /// A known bug switched on deliberately, only by the simulator's checker tests (FoundationDB calls this BUGGIFY):
    /// proof that the safety checkers catch what they claim to. Internal: no application can set it.
    /// </summary>
    internal RaftPlantedBug PlantedBug { get; init; }

    /// <summary>
    /// Source of the randomized election timeout in [ElectionTimeoutTicks, 2 x ElectionTimeoutTicks). Seeded, so a
    /// simulation replays exactly.
    /// </summary>
    public required DeterministicRandom Random { get; init; }

    /// <summary>Base election timeout; also the check-quorum period and the leader-transfer timeout. Default 10.</summary>
    public int ElectionTimeoutTicks { get; init; } = 10;

    /// <summary>Heartbeat interval of the leader. Default 1 (a tenth of the election timeout).</summary>
    public int HeartbeatTicks { get; init; } = 1;

    /// <summary>The applied index the application restarts from (its state machine already reflects entries up to it).</summary>
    public ulong AppliedIndex { get; init; }

    /// <summary>Upper bound on the entry payload bytes of one append message; at least one entry is always sent. Default 1 MiB.</summary>
    public long MaxSizePerMessageBytes { get; init; } = 1 << 20;

    /// <summary>Maximum append messages in flight to one follower in the Replicate state. Default 256.</summary>
    public int MaxInflightMessages { get; init; } = 256;

    /// <summary>Maximum payload bytes in flight to one follower; 0 means no byte limit.</summary>
    public long MaxInflightBytes { get; init; }

    /// <summary>
    /// Maximum payload bytes of appended but uncommitted entries at the leader; a proposal beyond it is refused with
    /// <see cref="ProposalDropReason.Overloaded"/>. 0 means no limit. Default 64 MiB, so a leader that cannot commit
    /// (say, cut off from its quorum) cannot grow its memory without bound. (etcd MaxUncommittedEntriesSize.)
    /// </summary>
    public long MaxUncommittedBytes { get; init; } = 64L << 20;

    /// <summary>
    /// A leader whose own log writes make no progress for a whole election timeout while entries wait to be persisted
    /// steps down, so that a healthy node can take over. Its heartbeats would otherwise keep followers loyal to a
    /// leader that cannot commit (hashicorp/raft #503). Only meaningful when the driver keeps ticking while a write is
    /// outstanding (asynchronous storage). Default on.
    /// </summary>
    public bool StepDownOnStalledDisk { get; init; } = true;

    /// <summary>
    /// Straggler back-pressure: when the quorum's replicated index lags the leader's last index by more than this many
    /// entries, proposals are refused with <see cref="ProposalDropReason.QuorumLagging"/> until the quorum catches up.
    /// 0 turns it off.
    /// </summary>
    public ulong MaxQuorumLagEntries { get; init; }

    /// <summary>Pre-vote (Raft thesis 9.6): a partitioned node cannot raise the cluster's term when it rejoins. Default on.</summary>
    public bool PreVote { get; init; } = true;

    /// <summary>A leader that has not heard from a quorum within an election timeout steps down. Default on.</summary>
    public bool CheckQuorum { get; init; } = true;

    /// <summary>How linearizable reads are confirmed. Default <see cref="ReadOnlyMode.Safe"/>.</summary>
    public ReadOnlyMode ReadOnlyMode { get; init; } = ReadOnlyMode.Safe;

    /// <summary>
    /// The bound on clock-rate difference between nodes over one election timeout, in ticks. Required (non-zero) for
    /// <see cref="ReadOnlyMode.LeaseBased"/>: the lease lasts ElectionTimeoutTicks - MaxClockDriftTicks after the
    /// heartbeat round that a quorum acknowledged was sent.
    /// </summary>
    public int MaxClockDriftTicks { get; init; }

    /// <summary>A ReadIndex request that has not been confirmed within this many ticks fails with <see cref="ReadOutcome.TimedOut"/>. Default 2 x election timeout (0 = that default).</summary>
    public int ReadTimeoutTicks { get; init; }

    /// <summary>Followers drop proposals instead of forwarding them to the leader.</summary>
    public bool DisableProposalForwarding { get; init; }

    /// <summary>A leader that applies a configuration without itself (or demoting itself) steps down. Default on.</summary>
    public bool StepDownOnRemoval { get; init; } = true;

    /// <summary>Largest snapshot chunk of an InstallSnapshot transfer. Default 64 KiB.</summary>
    public int SnapshotChunkBytes { get; init; } = 64 * 1024;

    /// <summary>Entries kept before the snapshot index by <see cref="RaftNode.CompactionIndex"/>, so slightly lagging followers catch up without a snapshot. Default 1024.</summary>
    public ulong TrailingEntries { get; init; } = 1024;

    /// <summary>Throws <see cref="ArgumentException"/> when the options are inconsistent.</summary>
    public void Validate()
    {
        if (Id == 0) throw new ArgumentException("node id 0 is reserved for 'none'", nameof(Id));
        ArgumentNullException.ThrowIfNull(Random);
        if (HeartbeatTicks <= 0) throw new ArgumentException("HeartbeatTicks must be positive", nameof(HeartbeatTicks));
        if (ElectionTimeoutTicks <= HeartbeatTicks)
            throw new ArgumentException("ElectionTimeoutTicks must be greater than HeartbeatTicks", nameof(ElectionTimeoutTicks));
        if (MaxSizePerMessageBytes <= 0) throw new ArgumentException("MaxSizePerMessageBytes must be positive", nameof(MaxSizePerMessageBytes));
        if (MaxInflightMessages <= 0) throw new ArgumentException("MaxInflightMessages must be positive", nameof(MaxInflightMessages));
        if (MaxInflightBytes < 0) throw new ArgumentException("MaxInflightBytes must not be negative", nameof(MaxInflightBytes));
        if (MaxUncommittedBytes < 0) throw new ArgumentException("MaxUncommittedBytes must not be negative", nameof(MaxUncommittedBytes));
        if (SnapshotChunkBytes <= 0) throw new ArgumentException("SnapshotChunkBytes must be positive", nameof(SnapshotChunkBytes));
        if (ReadTimeoutTicks < 0) throw new ArgumentException("ReadTimeoutTicks must not be negative", nameof(ReadTimeoutTicks));
        if (ReadOnlyMode == ReadOnlyMode.LeaseBased)
        {
            if (!CheckQuorum)
                throw new ArgumentException("lease-based reads need CheckQuorum: without it a deposed leader keeps serving stale reads", nameof(ReadOnlyMode));
            if (MaxClockDriftTicks <= 0 || MaxClockDriftTicks >= ElectionTimeoutTicks)
                throw new ArgumentException("lease-based reads need a clock-drift bound in (0, ElectionTimeoutTicks)", nameof(MaxClockDriftTicks));
        }
    }
}

/// <summary>Bugs that can be planted in the Raft core to prove the simulator's checkers catch them.</summary>
internal enum RaftPlantedBug
{
    /// <summary>No bug.</summary>
    None,

    /// <summary>A voter forgets it already voted in this term and grants its vote again: its vote counts twice.</summary>
    VoteTwiceInTerm,
}
