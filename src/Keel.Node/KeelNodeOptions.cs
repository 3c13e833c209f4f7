using Keel.Core;
using Keel.Idempotency;

namespace Keel.Node;

/// <summary>Settings of a <see cref="KeelNode"/>.</summary>
public sealed record KeelNodeOptions
{
    /// <summary>This node's Raft id (1-based, never 0).</summary>
    public required ulong NodeId { get; init; }

    /// <summary>
    /// The initial voters (the bootstrap configuration). Either this or <see cref="InitialMembers"/>; when both are
    /// given they must name the same ids.
    /// </summary>
    public IReadOnlyList<ulong> Voters { get; init; } = [];

    /// <summary>
    /// The initial cluster with names and peer URLs (etcd's <c>--initial-cluster</c>): every node starts with the same
    /// member table. When empty, the members are <see cref="Voters"/> with no name or URLs.
    /// </summary>
    public IReadOnlyList<InitialMember> InitialMembers { get; init; } = [];

    /// <summary>
    /// True for a node added to a running cluster with <see cref="KeelNode.SubmitMemberChange"/> (etcd's
    /// <c>--initial-cluster-state existing</c>): it is not one of the bootstrap voters, starts from the same bootstrap
    /// configuration as everyone else, and learns the log, configuration changes included, from the leader.
    /// </summary>
    public bool JoinExisting { get; init; }

    /// <summary>
    /// A backup (<see cref="KeelNode.EncodeBackup()"/>) this bootstrap member starts from instead of an empty store (etcdutl
    /// snapshot restore): its store, leases and idempotency table become the initial state of a new cluster whose members
    /// are <see cref="InitialMembers"/>. Every member of the new cluster must start from the same backup; it is ignored by
    /// a joining member. Pass it on every start: until the first snapshot, the initial state is rebuilt from it.
    /// </summary>
    public ReadOnlyMemory<byte> RestoreImage { get; init; }

    /// <summary>The bootstrap voters: <see cref="Voters"/>, or the ids of <see cref="InitialMembers"/>.</summary>
    public IReadOnlyList<ulong> BootstrapVoters => Voters.Count > 0 ? Voters : [.. InitialMembers.Select(m => m.Id)];

    /// <summary>
    /// When positive, a leader that sees a gap longer than this between two lease expiry checks (every 500 ms) decides
    /// it was paused itself and forgives the gap before expiring anything (etcd #12528). Default 2,000 ms.
    /// </summary>
    public long LeaseStallThresholdMs { get; init; } = 2_000;

    /// <summary>
    /// How often the leader replicates every lease's remaining TTL (etcd's lease checkpoints, default 5 minutes), so a
    /// new leader does not give each lease a full TTL again (etcd #9395). Zero disables checkpoints.
    /// </summary>
    public long LeaseCheckpointIntervalMs { get; init; } = 5 * 60 * 1000;

    /// <summary>The replicated idempotency table's windows and bounds (must be equal on every member). Default 24 h window.</summary>
    public IdempotencyOptions Idempotency { get; init; } = IdempotencyOptions.Default;

    /// <summary>
    /// How many applied entries a proposal id is remembered for, to skip a duplicated append of the same proposal.
    /// Default 100,000 (a duplicate lands within the leader's in-flight window, far fewer entries).
    /// </summary>
    public int AppliedProposalWindowEntries { get; init; } = 100_000;

    /// <summary>Seeded randomness for election timeouts and proposal ids (a fresh split per boot).</summary>
    public required DeterministicRandom Random { get; init; }

    /// <summary>Length of one Raft tick (etcd --heartbeat-interval, 100 ms by default).</summary>
    public long TickMs { get; init; } = 100;

    /// <summary>Election timeout in ticks (etcd: 1000 ms / 100 ms = 10).</summary>
    public int ElectionTimeoutTicks { get; init; } = 10;

    /// <summary>
    /// How long a request may wait for its answer before it fails with "etcdserver: request timed out" (etcd waits
    /// 5 s plus 2 election timeouts; the node default is 5 s).
    /// </summary>
    public long RequestTimeoutMs { get; init; } = 5_000;

    /// <summary>
    /// The longest a write or linearizable read that finds no leader (an election in progress, or the leader cut off)
    /// waits for one before it fails with "etcdserver: no leader"; 0 (the node default) refuses it at once. etcd 3.4
    /// parks such a request until a leader is known or its request timeout (5 s + 2 election timeouts) passes, so a
    /// client sees a late success instead of a fast failure; the server sets the same bound
    /// (<c>ServerOptions.LeaderWaitMs</c>). A caller may give a shorter bound per request (its gRPC deadline).
    /// Nothing is proposed while it waits, so the request is refused definitely ("no leader") if no leader appears.
    /// </summary>
    public long LeaderWaitMs { get; init; }

    /// <summary>
    /// Requests that may wait for a leader at once (<see cref="LeaderWaitMs"/>); past it a new one fails at once with
    /// "etcdserver: too many requests" (nothing proposed). Each waits at most <see cref="LeaderWaitMs"/>, so this bounds
    /// the memory a burst of clients can pin during an election.
    /// </summary>
    public int MaxRequestsAwaitingLeader { get; init; } = 10_000;

    /// <summary>
    /// Every this many applied entries the node writes a snapshot of its whole state and compacts the log (etcd's
    /// --snapshot-count; etcd 3.4's default is 100,000, Keel's 10,000).
    /// </summary>
    public int SnapshotEveryEntries { get; init; } = 10_000;

    /// <summary>
    /// Largest piece of a snapshot the leader streams to a lagging or new member in one message (Raft's
    /// <c>SnapshotChunkBytes</c>); the transfer resumes from the last acknowledged piece after a loss.
    /// </summary>
    public int SnapshotChunkBytes { get; init; } = DefaultSnapshotChunkBytes;

    /// <summary>The default of <see cref="SnapshotChunkBytes"/>: 64 KiB.</summary>
    public const int DefaultSnapshotChunkBytes = 64 * 1024;

    /// <summary>
    /// A snapshot also waits until the entries applied since the last one hold at least this share of the store's size
    /// (<see cref="Keel.Mvcc.MvccStore.SizeBytes"/>) in bytes; 0 turns the rule off. Keel's snapshot is the whole state,
    /// so with a fixed entry count the bytes written per entry grow with the store (at 5,000,000 keys a 1.6-GB image
    /// every 100,000 entries of 300 bytes: the writer never rested and the GC paused the loop for up to 0.7 s); with this
    /// rule the write amplification stays bounded at any size, while small stores still snapshot every
    /// <see cref="SnapshotEveryEntries"/>. The log the snapshot replaces (kept in memory until then) is bounded by the
    /// same share of the store.
    /// </summary>
    public double SnapshotMinLogBytesPerStoreByte { get; init; } = 1.0 / 16;

    /// <summary>
    /// Bytes of applied entries' payloads Raft's log keeps in memory (default 8 MiB); older applied entries are read back
    /// from the WAL when a follower needs them. The log between two snapshots is otherwise held whole: up to
    /// <see cref="SnapshotEveryEntries"/> entries, which with large values is gigabytes (etcd holds it whole). Entries
    /// not yet applied are always in memory, whatever this says.
    /// </summary>
    public long RaftLogMemoryBytes { get; init; } = DefaultRaftLogMemoryBytes;

    /// <summary>The default of <see cref="RaftLogMemoryBytes"/>: 8 MiB.</summary>
    public const long DefaultRaftLogMemoryBytes = 8L * 1024 * 1024;

    /// <summary>
    /// Where the store keeps its values (<see cref="Keel.Mvcc.MvccStore(Keel.Mvcc.ValueSegmentSource)"/>): null (the
    /// default) for an array per value on the GC heap; the server gives it file-backed segments in the data directory, so
    /// values live in the page cache as etcd's bbolt pages do; the simulator gives it small in-memory segments, so every
    /// run moves values between segments.
    /// </summary>
    public Keel.Mvcc.ValueSegmentSource? ValueSegments { get; init; }

    /// <summary>Entries kept in the log below the commit index after a compaction, for slightly slow followers (etcd keeps 5,000).</summary>
    public ulong SnapshotTrailingEntries { get; init; } = 1_024;

    /// <summary>
    /// The space quota (etcd's <c>--quota-backend-bytes</c>, default 2 GiB; 0 or less = the default, as in etcd): a write
    /// that would grow the store (<see cref="Keel.Mvcc.MvccStore.SizeBytes"/>) past it raises the NOSPACE alarm through
    /// the log, and while the alarm is active every write that grows the store fails with "etcdserver: mvcc: database
    /// space exceeded" on every member. Reads, deletes and compaction keep working; disarming the alarm lifts it.
    /// </summary>
    public long QuotaBackendBytes { get; init; } = DefaultQuotaBackendBytes;

    /// <summary>
    /// Bounded history (etcd's <c>--auto-compaction-mode</c>/<c>--auto-compaction-retention</c>): the leader proposes a
    /// Compact through the log when the policy says. Off by default in the node (the simulator and unit tests keep all
    /// history); the server's default is periodic, 1 hour (<c>ServerOptions.AutoCompaction</c>).
    /// </summary>
    public AutoCompactionPolicy AutoCompaction { get; init; } = AutoCompactionPolicy.Off;

    /// <summary>etcd's default space quota: 2 GiB.</summary>
    public const long DefaultQuotaBackendBytes = 2L * 1024 * 1024 * 1024;

    /// <summary>
    /// New writes are refused with "etcdserver: too many requests" while the commit index runs this many entries ahead
    /// of the applied index (etcd's maxGapBetweenApplyAndCommitIndex).
    /// </summary>
    public ulong MaxCommittedAheadOfAppliedEntries { get; init; } = 5_000;

    /// <summary>
    /// Writes and linearizable reads this node may hold waiting for their answer; past it new ones fail at once with
    /// "etcdserver: too many requests" (each waits at most <see cref="RequestTimeoutMs"/>, so this bounds the memory of
    /// a burst, forwarded proposals included).
    /// </summary>
    public int MaxPendingRequests { get; init; } = 100_000;

    /// <summary>WAL segment size; small values make the simulator exercise segment rolls.</summary>
    public long WalSegmentSizeBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// When true the node does not write snapshot files itself: it encodes the state image and hands it to the driver
    /// (<see cref="Outbox.SnapshotToPersist"/>), which writes it with a <see cref="Keel.Storage.SnapshotStore"/> off the
    /// node's thread and then calls <see cref="KeelNode.OnSnapshotPersisted"/>; the WAL marker and log compaction wait
    /// for that call. The real server sets it so that a large snapshot's disk write does not stall the node loop past an
    /// election timeout; the simulator leaves it off (writes stay in the deterministic event order).
    /// </summary>
    public bool PersistSnapshotsInBackground { get; init; }

    /// <summary>
    /// With pipelined persistence (<see cref="KeelNode.SyncLogInBackground"/>): how many WAL syncs may be in flight at
    /// once before the node stops taking new Readys. 1 (the default) overlaps the loop's work (stepping messages, taking
    /// and proposing requests) with the one fsync in flight, and everything that arrives meanwhile goes into the next
    /// Ready as one batch, one write and one sync, as etcd 3.4's raft loop does; more lets the loop write and send each
    /// turn's batch at once (smaller batches, more syncs and messages per write: more CPU per write on a busy machine).
    /// </summary>
    public int MaxWalSyncsInFlight { get; init; } = 1;

    /// <summary>
    /// A planted bug for tests only: serve "linearizable" reads from local state whenever this node believes it is the
    /// leader, skipping ReadIndex. A deposed leader that has not yet heard of its successor then serves stale data,
    /// which the linearizability checker must catch. Never set this in production.
    /// </summary>
    public bool UnsafeLocalReadsOnLeader { get; init; }
}
