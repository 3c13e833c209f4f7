using Keel.Core;
using Keel.Core.Storage;
using Keel.HybridClock;
using Keel.Idempotency;
using Keel.Mvcc;
using Keel.Raft;
using Keel.Storage;

namespace Keel.Node;

/// <summary>
/// The I/O-free Keel node: a Raft replica (<see cref="RaftNode"/>) whose state machine is the MVCC key-value store
/// (<see cref="MvccStore"/>), with its log made durable through the <see cref="WriteAheadLog"/> on an injected
/// <see cref="IStorageDirectory"/> and its write timestamps from a <see cref="HybridLogicalClock"/>. It is the node of
/// etcd's <c>server/etcdserver/server.go</c> without goroutines: the driver (a real network shell, or the simulator)
/// feeds it client requests (<see cref="Submit(ulong, KvCommand, string?)"/>, <see cref="Read(ulong, RangeRequest, bool)"/>), peer messages (<see cref="Step"/>) and time
/// (<see cref="Tick"/>), and drains the <see cref="Outbox"/> of peer messages and client answers after each call.
/// </summary>
/// <remarks>
/// <para>Writes: the command is encoded (<see cref="CommandCodec"/>) with a random proposal id and this node's hybrid
/// timestamp and proposed to Raft; followers forward it to the leader (etcd forwards too). Every replica applies
/// committed entries to its store in log order; the node that proposed answers its client when the entry with its
/// proposal id applies. If the leader loses leadership first, or another entry lands at its index, the client gets
/// "etcdserver: leader changed" (outcome unknown, as in etcd #8975); with no known leader, "etcdserver: no leader";
/// without any answer in <see cref="KeelNodeOptions.RequestTimeoutMs"/>, "etcdserver: request timed out".</para>
/// <para>Reads: linearizable reads go through Raft's ReadIndex (thesis 6.4) and are served once the store has
/// applied the returned index; serializable reads are served at once from the local store.</para>
/// <para>Beyond key-value writes (docs/node.md): leases with leader-only expiry and fencing tokens
/// (KeelNode.Leases.cs, on <see cref="Keel.Leases.LeaseTable"/>), idempotency keys in a replicated
/// <see cref="IdempotencyTable"/> measured in committed time (KeelNode.Writes.cs), a member table kept with Raft's
/// joint configuration changes (KeelNode.Members.cs), and snapshots with log compaction (KeelNode.Snapshots.cs).</para>
/// <para>Restart: the newest snapshot is restored, then the WAL after it is replayed into Raft's storage and every
/// committed entry after the snapshot is applied again. Every <see cref="KeelNodeOptions.SnapshotEveryEntries"/>
/// applied entries the node snapshots its state and compacts the log (KeelNode.Snapshots.cs).</para>
/// </remarks>
public sealed partial class KeelNode
{
    private readonly KeelNodeOptions _options;
    private readonly RaftNode _raft;
    private readonly DurableRaftLog _log;
    private MvccStore _store;
    private readonly HybridLogicalClock _clock = new(new HybridClockOptions { PersistUpperBound = false });
    private readonly DeterministicRandom _random;
    private readonly Outbox _outbox = new();
    private long _nowMs = long.MinValue;
    private long _wallMs;
    private long _lastTickMs;
    private ulong _knownLeader;

    private KeelNode(KeelNodeOptions options, IStorageDirectory directory)
    {
        _options = options;
        _store = new MvccStore(options.ValueSegments);
        _random = options.Random.Split("keel-node");
        _leases = NewLeaseTable();
        _idempotency = new IdempotencyTable(options.Idempotency);
        // A joining member knows nothing until the leader's snapshot arrives (even the bootstrap one).
        if (!options.JoinExisting) InitializeMembers();
        if (!options.JoinExisting && !options.RestoreImage.IsEmpty) RestoreBackup(options.RestoreImage);
        var bootstrapMembership = new Keel.Quorum.Membership(options.JoinExisting ? [] : options.BootstrapVoters);
        var bootstrapImage = options.JoinExisting ? ReadOnlyMemory<byte>.Empty : EncodeState(bootstrapMembership, DurableRaftLog.BootstrapIndex);
        _log = DurableRaftLog.Open(directory, options.BootstrapVoters, options.WalSegmentSizeBytes, MembershipOf, bootstrapImage, options.JoinExisting);
        var bootstrapIndex = options.JoinExisting ? 0 : DurableRaftLog.BootstrapIndex;
        if (_log.RecoveredSnapshot is { } recovered)
        {
            RestoreState(recovered.Data);
            bootstrapIndex = recovered.Index;
            _log.ReleaseRecoveredSnapshot();
        }
        var raftOptions = new RaftOptions
        {
            Id = options.NodeId,
            Random = _random.Split("raft"),
            ElectionTimeoutTicks = options.ElectionTimeoutTicks,
            AppliedIndex = bootstrapIndex,
            TrailingEntries = options.SnapshotTrailingEntries,
            SnapshotChunkBytes = options.SnapshotChunkBytes,
        };
        _raft = new RaftNode(raftOptions, _log.Storage);
        AppliedIndex = bootstrapIndex;
        _snapshotIndex = bootstrapIndex;
    }

    /// <summary>
    /// Opens a node on <paramref name="directory"/>: recovers whatever its WAL holds (a fresh directory starts a new
    /// member of the bootstrap configuration), and replays committed entries into the store as Raft hands them out.
    /// </summary>
    /// <exception cref="WalCorruptionException">The WAL is corrupt beyond a torn tail.</exception>
    public static KeelNode Open(KeelNodeOptions options, IStorageDirectory directory)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(directory);
        Invariant.Check(options.NodeId != 0 && (options.JoinExisting || options.BootstrapVoters.Contains(options.NodeId)),
            "the node must be one of the voters, unless it joins an existing cluster");
        Invariant.Check(options.Voters.Count == 0 || options.InitialMembers.Count == 0 ||
            options.Voters.Order().SequenceEqual(options.InitialMembers.Select(m => m.Id).Order()), "Voters and InitialMembers name the same ids");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.TickMs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.AppliedProposalWindowEntries);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.SnapshotEveryEntries);
        ArgumentOutOfRangeException.ThrowIfNegative(options.RaftLogMemoryBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxWalSyncsInFlight, 1);
        if (!double.IsFinite(options.SnapshotMinLogBytesPerStoreByte) || options.SnapshotMinLogBytesPerStoreByte < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.SnapshotMinLogBytesPerStoreByte, "SnapshotMinLogBytesPerStoreByte must be a finite number of at least 0");
        return new KeelNode(options, directory);
    }

    /// <summary>This node's Raft id.</summary>
    public ulong Id => _options.NodeId;

    /// <summary>The Raft replica (read-only use: role, term, log).</summary>
    public RaftNode Raft => _raft;

    /// <summary>This node's hybrid logical clock (read-only use: metrics read its offset and rejection counters).</summary>
    public HybridLogicalClock Clock => _clock;

    /// <summary>The replicated store (read-only use: tests compare replicas).</summary>
    public MvccStore Store => _store;

    /// <summary>True when this node believes it is the leader.</summary>
    public bool IsLeader => _raft.Role == RaftRole.Leader;

    /// <summary>The highest log index applied to the store.</summary>
    public ulong AppliedIndex { get; private set; }

    /// <summary>Messages and client answers produced so far; the driver drains it after every call.</summary>
    public Outbox Outbox => _outbox;

    /// <summary>
    /// Called, when set, after messages that may leave before this member's disk write (a leader's appends and
    /// heartbeats) were added to the <see cref="Outbox"/> and before that write starts: a driver that drains the
    /// Outbox's messages here and sends them overlaps the followers' disk writes with its own (pipelining). Drivers
    /// that do not set it send them after the write, as before. Messages that promise durable state (acks, votes) are
    /// added only once the write is durable.
    /// </summary>
    public Action? SendBeforePersist { get; set; }

    /// <summary>
    /// Called, when set, with the ticket of every WAL write that must become durable (pipelined persistence, issue 12
    /// item 1): the driver runs <see cref="WalSyncTicket.Sync"/> off the loop (a sync thread; the simulator later in
    /// virtual time) and then, on the loop, <see cref="OnLogSynced"/>. Meanwhile the node goes on stepping messages and
    /// taking requests and Readys; what a Ready promises (acks, votes, applies, answers) waits for its own sync and for
    /// every earlier one, in order. Drivers that do not set it sync on the loop, as before.
    /// </summary>
    public Action<WalSyncTicket>? SyncLogInBackground { get; set; }

    /// <summary>At most this many Readys wait for their WAL sync; beyond, the node takes no new Ready until one completes.</summary>
    public const int MaxReadiesAwaitingSync = 256;

    /// <summary>Readys written to the WAL and waiting for their sync (pipelined persistence), oldest first.</summary>
    public int ReadiesAwaitingSync => _readiesAwaitingSync.Count;

    /// <summary>
    /// The sync of <paramref name="ticket"/>, handed out through <see cref="SyncLogInBackground"/>, ended with
    /// <paramref name="error"/> (null: durable). Acts, in order, on every Ready now durable. A full device raises the
    /// NOSPACE alarm and is retried as a synchronous sync is; any other failure is thrown (the member must stop).
    /// </summary>
    public void OnLogSynced(WalSyncTicket ticket, Exception? error)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        if (!_log.CompleteSync(ticket, error) && _blockedReady is null)
            _lastDiskRetryMs = _nowMs == long.MinValue ? 0 : _nowMs;
        ActOnDurableReadies();
        HandleReady();
    }

    // Pipelined persistence: Readys written and awaiting their sync (Ticket set) or awaiting an earlier one (null).
    private readonly Queue<(Ready Ready, WalSyncTicket? Ticket)> _readiesAwaitingSync = new();
    private int _syncsInFlight; // entries of _readiesAwaitingSync with a ticket

    private void ActOnDurableReadies()
    {
        while (_readiesAwaitingSync.TryPeek(out var head) && (head.Ticket is null || _log.IsDurable(head.Ticket)))
        {
            _readiesAwaitingSync.Dequeue();
            if (head.Ticket is not null) _syncsInFlight--;
            ActOnPersistedReady(head.Ready);
        }
    }

    /// <summary>Client writes waiting for their entry to apply.</summary>
    public int PendingWriteCount => _pendingWrites.Count;

    /// <summary>Client linearizable reads waiting for ReadIndex or for the store to catch up.</summary>
    public int PendingReadCount => _readsAwaitingIndex.Count + _readsAwaitingApply.Count;

    /// <summary>
    /// Advances time. Ticks Raft once per <see cref="KeelNodeOptions.TickMs"/> of <paramref name="monotonicMs"/> that
    /// passed since the last tick, feeds <paramref name="wallMs"/> to the hybrid clock, and fails requests older than
    /// the request timeout.
    /// </summary>
    /// <param name="monotonicMs">A monotonic clock reading (never decreases).</param>
    /// <param name="wallMs">The wall clock, Unix ms (may step backwards; the hybrid clock copes).</param>
    public void Tick(long monotonicMs, long wallMs)
    {
        Invariant.Check(monotonicMs >= _nowMs || _nowMs == long.MinValue, "the monotonic clock never goes backwards");
        var firstTick = _nowMs == long.MinValue;
        if (firstTick) _lastTickMs = monotonicMs;
        _nowMs = monotonicMs;
        _wallMs = wallMs;
        _clock.Now(wallMs);
        // Before anything is applied, the lease time line starts at this node's hybrid time.
        if (_leaseBaseMs == 0) ObserveCommittedTimeForLeases(_clock.LastIssued.Raw);
        // A single-member cluster has nobody to hear from: it elects itself at once instead of after 1-2 election
        // timeouts (a restart of a one-member cluster then serves as soon as its log is open).
        if (firstTick && _raft.IsSoleVoter) _raft.Campaign();
        // After a long pause the node catches up on every tick it missed, as a real timer backlog would.
        while (_nowMs - _lastTickMs >= _options.TickMs)
        {
            _lastTickMs += _options.TickMs;
            _raft.Tick();
        }
        ExpireRequests();
        HandleReady();
        ExpireLeases();
        CheckpointLeases();
        AutoCompact();
        HandleReady();
    }

    /// <summary>Handles a message from a peer.</summary>
    public void Step(Message message)
    {
        ArgumentNullException.ThrowIfNull(message);
        _raft.Step(message);
        HandleReady();
    }

    /// <summary>Checks the node's invariants (Raft's, the store's, and the bookkeeping of waiting requests).</summary>
    public void AssertInvariants()
    {
        _raft.AssertInvariants();
        _store.AssertInvariants();
        Invariant.Check(AppliedIndex <= _raft.Log.Committed, "the store never applies past the commit index");
        Invariant.Check(_readiesAwaitingSync.Count <= MaxReadiesAwaitingSync, "the Readys awaiting their syncs are bounded");
        Invariant.Check(_syncsInFlight == _readiesAwaitingSync.Count(r => r.Ticket is not null) && _syncsInFlight <= _options.MaxWalSyncsInFlight,
            "the syncs in flight are counted and bounded");
        Invariant.Check(SyncLogInBackground is not null || _readiesAwaitingSync.Count == 0, "only pipelined persistence leaves Readys awaiting a sync");
        foreach (var (index, _) in _readsAwaitingApply)
            Invariant.Check(index > AppliedIndex, "a read whose index is applied is served at once");
        foreach (var (index, proposalId) in _proposalAtIndex)
            Invariant.Check(index > AppliedIndex && _pendingWrites.ContainsKey(proposalId),
                "an index is tracked only for a waiting write not yet applied");
        _leases.AssertInvariants();
        _idempotency.AssertInvariants();
        Invariant.Check(!_leases.IsPrimary || IsLeader, "only the leader's lease table expires leases");
        Invariant.Check(_appliedProposals.Count == _appliedProposalOrder.Count &&
            _appliedProposals.Count <= _options.AppliedProposalWindowEntries, "remembered proposal ids are bounded by the window");
        foreach (var (key, inFlight) in _keysInFlight)
            Invariant.Check(_pendingWrites.TryGetValue(inFlight.ProposalId, out var waiting) && waiting.IdempotencyKey == key,
                "an idempotency key is in flight only while its write waits");
        foreach (var change in _store.Events(_store.CurrentRevision, [0], [0], _store.CurrentRevision))
            if (change.Type == Keel.Mvcc.EventType.Put)
                Invariant.Check(_leases.LeaseOfKey(change.Kv.Key) == change.Kv.Lease, "a live key is attached to exactly its lease");
        AssertMemberInvariants();
        AssertAwaitingLeaderInvariants();
    }

    private void HandleReady()
    {
        if (_batchDepth > 0) return;
        if (_log.IsDiskFull)
        {
            // The device was full: retry the buffered records (at most every 100 ms); nothing of the blocked Ready is
            // acted on until they are durable, and no new Ready is taken meanwhile.
            var nowMs = _nowMs == long.MinValue ? 0 : _nowMs;
            if (nowMs - _lastDiskRetryMs < DiskRetryEveryMs) return;
            _lastDiskRetryMs = nowMs;
            if (!_log.RetryPersist()) return;
            // The retried sync made every earlier pipelined write durable too.
            ActOnDurableReadies();
            if (_blockedReady is { } unblocked)
            {
                _blockedReady = null;
                ActOnPersistedReady(unblocked);
            }
        }
        // Pipelined persistence: the lease table follows Raft's role at once, even while no Ready can be taken.
        if (SyncLogInBackground is not null) UpdateLeaseRole();
        while (_raft.HasReady() && _readiesAwaitingSync.Count < MaxReadiesAwaitingSync && _syncsInFlight < _options.MaxWalSyncsInFlight)
        {
            var ready = _raft.GetReady();
            // Appends and heartbeats promise nothing about our disk: they go out before our write, so the followers'
            // fsyncs run while ours does (Raft thesis 10.2.1; the leader counts itself toward a commit only once its
            // own write is durable). A driver that drains them in SendBeforePersist puts them on the wire now.
            if (ready.Messages.Count > 0)
            {
                _outbox.AddMessages(ready.Messages);
                if (ready.MustSync) SendBeforePersist?.Invoke();
            }
            if (SyncLogInBackground is { } syncInBackground)
            {
                // Role and leader are not durable promises: act on them now, not after earlier Readys' syncs (a deposed
                // leader's lease table must stop expiring at once, and forwarded writes learn of a lost leader now).
                if (ready.SoftState is { } soft) OnSoftState(soft);
                // A confirmed read index promises nothing about this member's disk either: a read is served once the
                // store has applied up to it, however many syncs are in flight (issue 12 item 5: reads do not wait
                // behind writes).
                foreach (var state in ready.ReadStates) OnReadState(state);
                switch (_log.PersistPipelined(ready, out var ticket))
                {
                    case PipelinedPersist.Pending:
                        _readiesAwaitingSync.Enqueue((ready, ticket));
                        _syncsInFlight++;
                        syncInBackground(ticket!);
                        continue;
                    case PipelinedPersist.NoSyncNeeded when _readiesAwaitingSync.Count > 0:
                        _readiesAwaitingSync.Enqueue((ready, null));
                        continue;
                    case PipelinedPersist.DiskFull:
                        _blockedReady = ready;
                        _lastDiskRetryMs = _nowMs == long.MinValue ? 0 : _nowMs;
                        return;
                    default:
                        // Durable now (and so is every earlier write), or nothing to wait for and nothing before it.
                        ActOnDurableReadies();
                        Invariant.Check(_readiesAwaitingSync.Count == 0, "a synchronous sync makes every earlier Ready durable");
                        ActOnPersistedReady(ready);
                        continue;
                }
            }
            if (!_log.TryPersist(ready))
            {
                _blockedReady = ready;
                _lastDiskRetryMs = _nowMs == long.MinValue ? 0 : _nowMs;
                return;
            }
            ActOnPersistedReady(ready);
        }
        ResumeAwaitingLeader();
    }

    private const long DiskRetryEveryMs = 100;
    private Ready? _blockedReady;
    private long _lastDiskRetryMs;

    /// <summary>
    /// True while this member's device is full: its log cannot grow, writes are refused with "etcdserver: mvcc: database
    /// space exceeded", the NOSPACE alarm is listed for it, and it retries every 100 ms until space is freed.
    /// </summary>
    public bool IsDiskFull => _log.IsDiskFull;

    private void ActOnPersistedReady(Ready ready)
    {
        if (ready.Snapshot is { } installed) OnSnapshotInstalled(installed);
        _outbox.AddMessages(ready.MessagesAfterPersist);
        // Pipelined persistence acted on the soft state when it took the Ready.
        if (ready.SoftState is { } soft && SyncLogInBackground is null) OnSoftState(soft);
        UpdateLeaseRole();
        foreach (var outcome in ready.ProposalOutcomes) OnProposalOutcome(outcome);
        foreach (var entry in ready.CommittedEntries)
        {
            _bytesAppliedSinceSnapshot += entry.Data.Length;
            Apply(entry);
        }
        if (ready.CommittedEntries.Count > 0) _log.ReleaseAppliedPayloads(AppliedIndex, _options.RaftLogMemoryBytes);
        if (SyncLogInBackground is null)
            foreach (var state in ready.ReadStates) OnReadState(state);
        ServeAppliedReads();
        _raft.Advance(ready);
        MaybeSnapshot();
        ProposeDeferredConfChanges();
    }

    private void Respond(KvResult result) => _outbox.AddResponse(result);
}
