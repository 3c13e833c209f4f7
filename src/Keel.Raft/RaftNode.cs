using Keel.Core;
using Keel.Quorum;

namespace Keel.Raft;

/// <summary>
/// One member of a Raft group as a deterministic, I/O-free state machine, in the shape of etcd-io/raft
/// (<c>raft.go</c> + <c>rawnode.go</c>): inputs are <see cref="Step"/> (a received message), <see cref="Tick"/>
/// (logical time), <see cref="Propose"/>, <see cref="ProposeConfChange"/>, <see cref="ReadIndex"/>,
/// <see cref="TransferLeadership"/> and <see cref="Campaign"/>; the output is a <see cref="Ready"/> batch that the
/// driver persists, sends and applies before calling <see cref="Advance"/>. No clock, threads, randomness source of its
/// own or I/O: a simulation that replays the same inputs gets the same outputs.
/// </summary>
/// <remarks>
/// Implements Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm" (2014), and the extensions
/// of Ongaro's thesis (2014): pre-vote (9.6), check-quorum / leader lease (6.4.1), ReadIndex (6.4), leadership
/// transfer (3.10), asynchronous leader disk writes (10.2.1), joint consensus (4.3, as etcd's ConfChangeV2).
/// The type is split by concern: Election, Replication, Membership, Reads, Snapshots, Progress.
/// </remarks>
public sealed partial class RaftNode
{
    private readonly RaftOptions _options;
    private readonly DeterministicRandom _random;
    private readonly RaftLog _log;
    private readonly ProgressTracker _tracker;
    private List<Message> _messages = [];
    private List<Message> _messagesAfterPersist = [];
    private List<ReadState> _readStates = [];
    private List<ProposalOutcome> _proposalOutcomes = [];
    private HardState _lastHardState;
    private SoftState _lastSoftState;
    private ulong _term;
    private int _electionElapsed;
    private int _heartbeatElapsed;
    private int _randomizedElectionTimeout;
    private long _tickCount;

    /// <summary>Creates a node that starts from what <paramref name="storage"/> holds (snapshot, hard state, entries).</summary>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    /// <exception cref="InvalidOperationException">The storage is inconsistent (commit beyond the stored log).</exception>
    public RaftNode(RaftOptions options, IRaftStorage storage)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(storage);
        options.Validate();
        _options = options;
        _random = options.Random;
        _log = new RaftLog(storage);
        var initial = storage.InitialState();
        _tracker = new ProgressTracker(initial.Membership, options.MaxInflightMessages, options.MaxInflightBytes);
        _tracker.ApplyMembership(initial.Membership, _log.LastIndex);
        if (initial.HardState != HardState.Empty)
        {
            _term = initial.HardState.Term;
            Vote = initial.HardState.Vote;
            _log.LoadCommit(initial.HardState.Commit);
        }
        if (options.AppliedIndex > 0)
        {
            if (options.AppliedIndex > _log.Committed)
                throw new ArgumentException($"applied index {options.AppliedIndex} is beyond the commit index {_log.Committed}", nameof(options));
            _log.AppliedTo(options.AppliedIndex);
        }
        BecomeFollower(_term, 0);
        _lastHardState = HardState;
        _lastSoftState = SoftState;
    }

    /// <summary>This node's id.</summary>
    public ulong Id => _options.Id;

    /// <summary>The options the node runs with.</summary>
    public RaftOptions Options => _options;

    /// <summary>The current term. Never decreases.</summary>
    public ulong Term => _term;

    /// <summary>The candidate voted for in <see cref="Term"/>, 0 for none.</summary>
    public ulong Vote { get; private set; }

    /// <summary>The known leader of <see cref="Term"/>, 0 for none.</summary>
    public ulong Leader { get; private set; }

    /// <summary>This node's role.</summary>
    public RaftRole Role { get; private set; }

    /// <summary>The log (read access for drivers, tests and checkers).</summary>
    public RaftLog Log => _log;

    /// <summary>The configuration and (on the leader) every member's progress.</summary>
    public ProgressTracker Tracker => _tracker;

    /// <summary>The configuration in force.</summary>
    public Membership Membership => _tracker.Membership;

    /// <summary>The node a leadership transfer is under way to, 0 for none.</summary>
    public ulong LeadTransferee { get; private set; }

    /// <summary>Logical ticks since the node was created.</summary>
    public long TickCount => _tickCount;

    /// <summary>Term, vote and commit as they stand (not necessarily persisted yet).</summary>
    public HardState HardState => new(_term, Vote, _log.Committed);

    /// <summary>Leader and role as they stand.</summary>
    public SoftState SoftState => new(Leader, Role);

    /// <summary>
    /// Advances logical time by one tick: followers and candidates count towards an election, the leader towards a
    /// heartbeat and the check-quorum period. Expired reads fail with <see cref="ReadOutcome.TimedOut"/>.
    /// </summary>
    public void Tick()
    {
        _tickCount++;
        if (Role == RaftRole.Leader) TickLeader();
        else TickElection();
        ExpireReads();
    }

    /// <summary>
    /// Feeds a message received from another node. Messages from older terms, from non-members and for stale
    /// indexes are answered or dropped as Raft prescribes; none makes the node fail.
    /// </summary>
    /// <exception cref="ArgumentException">The message is addressed to another node.</exception>
    public void Step(Message message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.To != Id) throw new ArgumentException($"message for {message.To} stepped into node {Id}", nameof(message));
        if (message.From == Id) throw new ArgumentException("a node does not send messages to itself", nameof(message));
        if (message.Term > _term && message.Type is not (MessageType.Propose or MessageType.ReadIndex))
        {
            if (message.Type is MessageType.Vote or MessageType.PreVote)
            {
                // Leader lease (thesis 6.4.1 / etcd): while we hear from a leader, ignore campaigns unless a
                // leadership transfer forces them. This keeps a rejoining node from deposing a healthy leader.
                var inLease = _options.CheckQuorum && Leader != 0 && _electionElapsed < _options.ElectionTimeoutTicks;
                // With lease reads, a restarted node has forgotten the lease it may have granted: it waits out one
                // election timeout before voting, or an old leader could serve a stale read while a new one commits.
                if (_options.ReadOnlyMode == ReadOnlyMode.LeaseBased && _tickCount < _options.ElectionTimeoutTicks) inLease = true;
                if (!message.LeaderTransfer && inLease) return;
            }
            switch (message.Type)
            {
                case MessageType.PreVote:
                    break; // never change our term for a pre-vote
                case MessageType.PreVoteResponse when !message.Reject:
                    break; // granted pre-votes carry the future term; we raise it only when a quorum grants
                case MessageType.Append or MessageType.Heartbeat or MessageType.Snapshot:
                    BecomeFollower(message.Term, message.From);
                    break;
                default:
                    BecomeFollower(message.Term, 0);
                    break;
            }
        }
        else if (message.Term < _term && message.Type is not (MessageType.Propose or MessageType.ReadIndex))
        {
            if ((_options.CheckQuorum || _options.PreVote) && message.Type is MessageType.Append or MessageType.Heartbeat)
            {
                // A stale leader (say, partitioned away) learns the new term from this and steps down; without it a
                // pre-vote cluster could keep rejecting the stale leader's term forever.
                Send(NewMessage(MessageType.AppendResponse, message.From));
            }
            else if (message.Type == MessageType.PreVote)
            {
                Send(NewMessage(MessageType.PreVoteResponse, message.From) with { Reject = true });
            }
            return;
        }

        if (message.Type is MessageType.Vote or MessageType.PreVote)
        {
            HandleVoteRequest(message);
            return;
        }
        if (message.Type is MessageType.VoteResponse or MessageType.PreVoteResponse) LearnCommitFromVoter(message);
        switch (Role)
        {
            case RaftRole.Leader: StepLeader(message); break;
            case RaftRole.Candidate or RaftRole.PreCandidate: StepCandidate(message); break;
            default: StepFollower(message); break;
        }
    }

    private void StepLeader(Message m)
    {
        switch (m.Type)
        {
            case MessageType.Propose:
                LeaderPropose(m.Entries, local: false);
                return;
            case MessageType.ReadIndex:
                HandleReadRequest(m.From, m.Context);
                return;
            case MessageType.TransferLeader:
                HandleTransferLeader(m.Context);
                return;
        }
        if (!_tracker.Progress.TryGetValue(m.From, out var pr)) return; // not (or no longer) a member
        switch (m.Type)
        {
            case MessageType.AppendResponse: HandleAppendResponse(m, pr); break;
            case MessageType.HeartbeatResponse: HandleHeartbeatResponse(m, pr); break;
            case MessageType.SnapshotResponse: HandleSnapshotResponse(m, pr); break;
        }
    }

    private void StepCandidate(Message m)
    {
        switch (m.Type)
        {
            case MessageType.Append:
                BecomeFollower(m.Term, m.From);
                HandleAppend(m);
                break;
            case MessageType.Heartbeat:
                BecomeFollower(m.Term, m.From);
                HandleHeartbeat(m);
                break;
            case MessageType.Snapshot:
                BecomeFollower(m.Term, m.From);
                HandleSnapshotChunk(m);
                break;
            case MessageType.PreVoteResponse when Role == RaftRole.PreCandidate:
            case MessageType.VoteResponse when Role == RaftRole.Candidate:
                HandleVoteResponse(m);
                break;
        }
    }

    private void StepFollower(Message m)
    {
        switch (m.Type)
        {
            case MessageType.Propose:
                if (Leader != 0 && !_options.DisableProposalForwarding) Send(m with { From = Id, To = Leader, Term = 0 });
                break;
            case MessageType.Append:
                _electionElapsed = 0;
                Leader = m.From;
                HandleAppend(m);
                break;
            case MessageType.Heartbeat:
                _electionElapsed = 0;
                Leader = m.From;
                HandleHeartbeat(m);
                break;
            case MessageType.Snapshot:
                _electionElapsed = 0;
                Leader = m.From;
                HandleSnapshotChunk(m);
                break;
            case MessageType.TransferLeader:
                if (Leader != 0) Send(m with { From = Id, To = Leader, Term = _term });
                break;
            case MessageType.TimeoutNow:
                Hup(transfer: true);
                break;
            case MessageType.ReadIndex:
                if (Leader != 0) Send(m with { From = Id, To = Leader, Term = 0 });
                break;
            case MessageType.ReadIndexResponse:
                HandleReadIndexResponse(m);
                break;
        }
    }

    /// <summary>True when there is something for the driver: call <see cref="GetReady"/>.</summary>
    public bool HasReady() =>
        SoftState != _lastSoftState || HardState != _lastHardState || _log.NextUnstableSnapshot() is not null ||
        _log.HasNextUnstableEntries || _log.HasNextCommittedEntries || _messages.Count > 0 ||
        _messagesAfterPersist.Count > 0 || _readStates.Count > 0 || _proposalOutcomes.Count > 0;

    /// <summary>
    /// Takes the pending work as a <see cref="Ready"/>. The batch is accepted at once: the next call returns only what
    /// is new, so a driver with asynchronous storage may take several batches before the first is durable.
    /// </summary>
    public Ready GetReady()
    {
        var softState = SoftState;
        var hardState = HardState;
        var snapshot = _log.NextUnstableSnapshot();
        var entries = _log.NextUnstableEntries();
        var committed = _log.NextCommittedEntries();
        var ready = new Ready
        {
            SoftState = softState != _lastSoftState ? softState : null,
            HardState = hardState != _lastHardState ? hardState : null,
            Snapshot = snapshot,
            Entries = entries,
            CommittedEntries = committed,
            Messages = _messages,
            MessagesAfterPersist = _messagesAfterPersist,
            ReadStates = _readStates,
            ProposalOutcomes = _proposalOutcomes,
            MustSync = snapshot is not null || entries.Count > 0 || hardState.Term != _lastHardState.Term || hardState.Vote != _lastHardState.Vote,
        };
        Invariant.Check(hardState.Term >= _lastHardState.Term, "term never decreases");
        Invariant.Check(hardState.Commit >= _lastHardState.Commit, "commit never decreases");
        _lastSoftState = softState;
        _lastHardState = hardState;
        _log.AcceptUnstable();
        if (committed.Count > 0)
        {
            _log.AcceptApplying(committed[^1].Index);
            ReduceUncommittedBytes(committed);
        }
        _messages = [];
        _readRoundUnsent = false;
        _forwarding = null;
        _openReadBatch = null;
        _messagesAfterPersist = [];
        _readStates = [];
        _proposalOutcomes = [];
        return ready;
    }

    /// <summary>
    /// The driver persisted and applied everything in <paramref name="ready"/> (synchronous storage): equivalent to
    /// <see cref="OnPersisted"/> for its snapshot and last entry and <see cref="OnApplied"/> for its last committed entry.
    /// </summary>
    public void Advance(Ready ready)
    {
        ArgumentNullException.ThrowIfNull(ready);
        if (ready.Snapshot is { } snapshot) OnPersisted(snapshot.Metadata.Index, snapshot.Metadata.Term);
        if (ready.Entries.Count > 0) OnPersisted(ready.Entries[^1].Index, ready.Entries[^1].Term);
        if (ready.CommittedEntries.Count > 0) OnApplied(ready.CommittedEntries[^1].Index);
    }

    /// <summary>
    /// The driver made the log durable up to the entry (<paramref name="index"/>, <paramref name="term"/>), or the
    /// snapshot at that position. Only now does the node count these entries as its own ack towards commit
    /// (Raft thesis 10.2.1). A write for entries since overwritten by a newer leader is ignored.
    /// </summary>
    public void OnPersisted(ulong index, ulong term)
    {
        if (_log.StableSnapshotTo(index))
        {
            _log.AppliedSnapshot(index);
            return;
        }
        if (!_log.StableTo(index, term)) return;
        if (Role == RaftRole.Leader && _tracker.Progress.TryGetValue(Id, out var self))
        {
            if (self.MaybeUpdate(_log.PersistedIndex) && MaybeCommit()) BroadcastAppend();
        }
    }

    /// <summary>The application applied every committed entry up to <paramref name="index"/>.</summary>
    public void OnApplied(ulong index)
    {
        _log.AppliedTo(index);
        MaybeAutoLeaveJoint();
    }

    /// <summary>Checks the node's safety invariants; tests and the simulator call it after every step.</summary>
    public void AssertInvariants()
    {
        _log.AssertInvariants();
        _tracker.AssertInvariants();
        Invariant.Check(_log.Committed <= _log.LastIndex, "commit index may never exceed the last index");
        Invariant.Check(_term >= _lastHardState.Term, "term never decreases");
        Invariant.Check(_log.Committed >= _lastHardState.Commit, "commit never decreases");
        switch (Role)
        {
            case RaftRole.Leader:
                Invariant.Check(Leader == Id, "a leader knows itself as leader");
                Invariant.Check(Vote == Id, "a leader voted for itself in its term");
                if (_tracker.Progress.TryGetValue(Id, out var self))
                    Invariant.Check(self.Match <= _log.PersistedIndex, "a leader counts only its persisted entries");
                break;
            case RaftRole.Candidate:
                Invariant.Check(Vote == Id, "a candidate votes for itself");
                Invariant.Check(Leader == 0, "a candidate knows no leader");
                break;
            case RaftRole.PreCandidate:
                Invariant.Check(Leader == 0, "a pre-candidate knows no leader");
                break;
        }
        Invariant.Check(Role == RaftRole.Leader || LeadTransferee == 0, "only a leader transfers leadership");
    }

    private void SetTerm(ulong term)
    {
        Invariant.Check(term >= _term, "term never decreases");
        _term = term;
    }

    private Message NewMessage(MessageType type, ulong to) => new() { Type = type, From = Id, To = to, Term = _term };

    // Acks and votes promise durable state: they wait for the batch's writes. Everything else may go at once, in
    // particular the leader's appends, which is what lets it write its own disk in parallel (thesis 10.2.1).
    private void Send(Message message)
    {
        if (message.Type is MessageType.AppendResponse or MessageType.Vote or MessageType.VoteResponse)
            _messagesAfterPersist.Add(message);
        else _messages.Add(message);
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"{Id} {Role} term={_term} vote={Vote} lead={Leader} commit={_log.Committed} applied={_log.Applied} last={_log.LastIndex}";
}
