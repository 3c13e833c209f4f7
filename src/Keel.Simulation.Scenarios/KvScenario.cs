using System.Globalization;
using System.Text;
using Keel.Core;
using Keel.Linearizability;
using Keel.Mvcc;
using Keel.Node;
using Keel.Raft;
using Keel.Simulation;
using Keel.Storage;
using Sim = Keel.Simulation.Simulation;

namespace Keel.Simulation.Scenarios;

/// <summary>Settings of <see cref="KvScenario"/>.</summary>
public sealed record KvScenarioOptions
{
    /// <summary>Cluster size; null draws 3 or 5 from the seed.</summary>
    public int? Nodes { get; init; }
    /// <summary>Total simulated run.</summary>
    public long DurationMs { get; init; } = 8_000;
    /// <summary>Fault-free tail: the liveness phase.</summary>
    public long CalmTailMs { get; init; } = 3_000;
    /// <summary>Concurrent clients.</summary>
    public int Clients { get; init; } = 4;
    /// <summary>The keys clients work on (few, so operations contend).</summary>
    public string[] Keys { get; init; } = ["a", "b", "c"];
    /// <summary>How long a client waits before giving up (the operation is then recorded as pending).</summary>
    public long ClientTimeoutMs { get; init; } = 2_500;
    /// <summary>Length of one node tick.</summary>
    public long TickMs { get; init; } = 20;
    /// <summary>The planted bug: a leader serves "linearizable" reads locally, even after it was deposed.</summary>
    public bool UnsafeLocalReadsOnLeader { get; init; }
    /// <summary>Chance a client sends to the current leader rather than a random live node.</summary>
    public double LeaderAffinity { get; init; } = 0.7;
    /// <summary>Chance a write carries an idempotency key and, when its outcome is unknown, is retried with it.</summary>
    public double IdempotentWriteChance { get; init; } = 0.3;
    /// <summary>How many times a keyed write is sent in all before its outcome is left unknown.</summary>
    public int IdempotentAttempts { get; init; } = 3;
    /// <summary>Clients that grant leases, attach keys, keep them alive for a while and revoke or abandon them.</summary>
    public int LeaseClients { get; init; } = 1;
    /// <summary>The node's snapshot interval; null keeps the node default (10,000, so no snapshot in a short run).</summary>
    public int? SnapshotEveryEntries { get; init; }
    /// <summary>Entries kept after a compaction for slow followers (with <see cref="SnapshotEveryEntries"/>).</summary>
    public ulong SnapshotTrailingEntries { get; init; } = 1_024;
    /// <summary>
    /// Snapshots as the server takes them (<see cref="KeelNodeOptions.PersistSnapshotsInBackground"/>): the node only
    /// captures its state; the simulated machine encodes and writes the image after a random delay of up to
    /// <see cref="BackgroundSnapshotMaxDelayMs"/> (the background thread), while the node keeps applying, compacting and
    /// receiving snapshots, then reports it durable. A crash before that loses the capture, as it would for real.
    /// </summary>
    public bool BackgroundSnapshots { get; init; }
    /// <summary>
    /// The node's snapshot chunk; null keeps the node default (64 KiB, so a simulated image goes in one message). Small
    /// chunks make every transfer a stream of pieces that are lost, resent and outlived by newer snapshots.
    /// </summary>
    public int? SnapshotChunkBytes { get; init; }
    /// <summary>Longest simulated time a background snapshot takes to encode and write.</summary>
    public long BackgroundSnapshotMaxDelayMs { get; init; } = 600;
    /// <summary>A bug to plant on purpose (<see cref="PlantedBug.WalSyncLies"/>).</summary>
    public PlantedBug Bug { get; init; }
    /// <summary>
    /// Members added to the running cluster, one after another, as an operator does with etcd: a client asks the
    /// cluster to add the member (etcd MemberAdd, as a voter or, on a coin flip, as a learner promoted later), and once
    /// the cluster answered, the new machine starts with <see cref="KeelNodeOptions.JoinExisting"/>: an empty directory
    /// that learns everything from the leader's snapshot. It is crashed, paused and partitioned like the others.
    /// </summary>
    public int JoiningMembers { get; init; }
    /// <summary>
    /// Founding members removed after the joiners were admitted, one after another (etcd MemberRemove, any of them,
    /// the leader included). A removed member stops by itself, for good, once it applies its removal (as the server
    /// does); the operator stops one that is still running a second after the cluster answered (a member cut off while
    /// it was removed never learns it). At most one fewer than the founders.
    /// </summary>
    public int RemovingMembers { get; init; }
    /// <summary>The run's length for <c>--join</c> (<see cref="DurationMs"/>): the 5-s fault window, then a 5-s calm tail.</summary>
    public const long JoinDurationMs = 10_000;
    /// <summary>The calm tail for <c>--join</c> (<see cref="CalmTailMs"/>).</summary>
    public const long JoinCalmTailMs = 5_000;
}

/// <summary>
/// Keel nodes (the real <see cref="KeelNode"/>, WAL on the simulated disk) under every fault of the simulator, with
/// clients issuing get (linearizable), put, delete and compare-and-swap (a Txn comparing the value) on a few keys. Each
/// operation is recorded in a <see cref="History{TInput,TOutput}"/>: completed with its answer, pending when the
/// outcome is unknown (leader changed, timed out, node crashed), left out when it certainly had no effect (no leader,
/// a read that failed). At the end the history must be linearizable under <see cref="KvModel"/>, replicas at the same
/// applied index must hold the same store, and the healed cluster must have a leader and have served requests.
/// </summary>
public sealed class KvScenario : ISimulationScenario
{
    private readonly KvScenarioOptions _options;
    private readonly History<KvInput, KvOutput> _history = new();
    private readonly Dictionary<ulong, ClientOp> _inFlight = [];
    // Raft member id of each simulated machine, by machine index.
    private readonly List<ulong> _raftIds = [];

    /// <summary>The Raft ids of every machine of the run, founders and joiners.</summary>
    internal IReadOnlyList<ulong> AllRaftIds => _raftIds;
    private ulong? _committedBeforeEnd;
    private Sim _simulation = null!;
    private DeterministicRandom _random = null!;
    private long _healAtUs;
    private ulong _nextRequestId;
    private long _nextValue;
    private int _completedAfterHeal;
    private int _completed;
    private int _unknown;
    private int _refused;

    /// <summary>Creates the scenario.</summary>
    public KvScenario(KvScenarioOptions? options = null) => _options = options ?? new KvScenarioOptions();

    /// <inheritdoc />
    public string Name => "kv";
    /// <inheritdoc />
    public string ReplayArguments => string.Join(' ', new[]
    {
        _options.Nodes is { } n ? $"--nodes {n}" : "",
        _options.SnapshotEveryEntries is { } every ? $"--snapshot-every {every}" : "",
        _options.BackgroundSnapshots ? "--background-snapshots" : "",
        _options.SnapshotChunkBytes is { } chunk ? $"--snapshot-chunk-bytes {chunk}" : "",
        _options.JoiningMembers > 0 ? $"--join {_options.JoiningMembers}" : "",
        _options.RemovingMembers > 0 ? $"--remove {_options.RemovingMembers}" : "",
        _options.Bug != PlantedBug.None ? $"--plant-bug {_options.Bug}" : "",
    }.Where(a => a.Length > 0));
    /// <summary>Snapshots installed from a leader, over all nodes and boots (after Finish).</summary>
    public int SnapshotsInstalled { get; internal set; }

    /// <summary>Entries the live members read back from their WALs (released from memory) by the end of the run.</summary>
    public long EntriesReadBack { get; private set; }

    /// <summary>Values the live members' compactions moved out of sparse value segments by the end of the run.</summary>
    public long ValuesMoved { get; private set; }

    /// <summary>Pipelined WAL syncs the live members ran since their last start (after Finish).</summary>
    public long PipelinedSyncs { get; private set; }

    /// <summary>The most Readys this process had written and waiting for their syncs at once since its last start.</summary>
    public int MaxReadiesAwaitingSync { get; private set; }
    /// <summary>
    /// Snapshot transfers a leader abandoned because retention deleted the file it streamed (a newer snapshot was
    /// saved), counted over the nodes alive at the end (after Finish).
    /// </summary>
    public long SnapshotTransfersAbandoned { get; private set; }
    /// <summary>Snapshots taken, as the highest snapshot index any live node reached (after Finish).</summary>
    public ulong HighestSnapshotIndex { get; private set; }
    /// <summary>Keyed writes answered by a replay of their first answer.</summary>
    public int IdempotentReplays { get; private set; }
    /// <summary>Joined members that were voters of the leader's configuration, caught up, at the end (after Finish).</summary>
    public int JoinedMembers { get; private set; }
    /// <summary>Leases granted by the lease clients.</summary>
    public int LeasesGranted { get; private set; }
    /// <inheritdoc />
    public long DurationMs => _options.DurationMs;
    /// <summary>Cluster size of this run.</summary>
    public int NodeCount { get; private set; }
    /// <summary>The linearizability report of the run (after Finish).</summary>
    public LinearizabilityReport? Report { get; private set; }
    /// <summary>The recorded client history.</summary>
    public History<KvInput, KvOutput> History => _history;

    /// <inheritdoc />
    public FaultPlan DrawPlan(DeterministicRandom random) => FaultPlan.All(new FaultLimits
    {
        MaxLossProbability = 0.10,
        MaxDuplicateProbability = 0.10,
        MaxReorderProbability = 0.20,
        MaxPauseMs = 1_500,
        MaxClockStepMs = 3_000,
    });

    /// <inheritdoc />
    public void Build(Sim simulation, FaultPlan plan)
    {
        ArgumentNullException.ThrowIfNull(simulation);
        ArgumentNullException.ThrowIfNull(plan);
        _simulation = simulation;
        var random = simulation.Random.Split("node-kv-scenario");
        NodeCount = _options.Nodes ?? (random.Chance(0.5) ? 3 : 5);
        var voters = Enumerable.Range(1, NodeCount).Select(i => (ulong)i).ToArray();
        for (var i = 0; i < NodeCount; i++)
        {
            _raftIds.Add((ulong)i + 1);
            simulation.AddNode(id => new KeelProcess(this, id, RaftIdOf(id), voters, joining: false), plan.DrawClock(random.Split("clock", i)));
        }
        _random = random.Split("clients");
        simulation.AddInvariant(CheckStep);
        var faultWindowMs = _options.DurationMs - _options.CalmTailMs;
        _healAtUs = faultWindowMs * 1000;
        var nemesis = new Nemesis(simulation, plan);
        simulation.StartAll();
        // Joining machines exist from the start but run nothing until the cluster has admitted them.
        for (var j = 0; j < _options.JoiningMembers; j++)
        {
            _raftIds.Add(KeelNode.MemberIdFor([JoinerPeerUrl(j)]));
            simulation.AddNode(id => new KeelProcess(this, id, RaftIdOf(id), voters, joining: true), plan.DrawClock(random.Split("clock", NodeCount + j)));
        }
        if (_options.RemovingMembers >= NodeCount)
            throw new ArgumentException($"cannot remove {_options.RemovingMembers} of {NodeCount} founding members: one must stay");
        if (_options.JoiningMembers > 0 || _options.RemovingMembers > 0)
        {
            var members = new MembershipClient(this);
            simulation.Schedule(_random.NextInt64(200_000, faultWindowMs * 500), members.Next, "membership-client");
            // What the leader has committed a second before the end: a joined member must have applied it by then.
            simulation.Schedule(CatchUpMarkUs, () => _committedBeforeEnd = Leader()?.Node.Raft.Log.Committed, "joiner-catch-up");
        }
        nemesis.Start(faultWindowMs);
        for (var client = 0; client < _options.Clients; client++)
        {
            var id = client;
            simulation.Schedule(_random.NextInt64(1_000, 50_000), () => IssueNext(id), "client");
        }
        for (var client = 0; client < _options.LeaseClients; client++)
        {
            var lease = new LeaseClient(this, client);
            simulation.Schedule(_random.NextInt64(1_000, 50_000), lease.Next, "lease-client");
        }
    }

    /// <inheritdoc />
    public string? Finish(Sim simulation)
    {
        // Operations still in flight have an unknown outcome: they may or may not have taken effect.
        foreach (var op in _inFlight.Values.OrderBy(o => o.RequestId)) RecordUnknown(op);
        _inFlight.Clear();
        var checker = new LinearizabilityChecker<string?, KvInput, KvOutput>(new KvModel());
        Report = checker.Check(_history);
        if (Report.Verdict == LinearizabilityVerdict.NotLinearizable) return "not linearizable: " + Report;
        if (Report.Verdict == LinearizabilityVerdict.Unknown) return "linearizability checker gave up: " + Report;
        var live = Processes().ToList();
        foreach (var process in live) process.Node.AssertInvariants();
        HighestSnapshotIndex = live.Count == 0 ? 0 : live.Max(p => p.Node.SnapshotIndex);
        SnapshotsInstalled += live.Sum(p => p.Node.SnapshotsInstalled);
        EntriesReadBack = live.Sum(p => p.Node.EntriesReadBack);
        ValuesMoved = live.Sum(p => p.Node.Store.ValuesMoved);
        PipelinedSyncs = live.Sum(p => p.PipelinedSyncs);
        MaxReadiesAwaitingSync = live.Count == 0 ? 0 : live.Max(p => p.MaxReadiesAwaitingSync);
        SnapshotTransfersAbandoned += live.Sum(p => p.Node.Raft.SnapshotTransfersAbandoned);
        if (!live.Any(p => p.Node.IsLeader)) return "liveness: no leader after healing";
        if (_completedAfterHeal == 0) return "liveness: no request completed after healing";
        if (CheckJoiners() is { } joinFailure) return joinFailure;
        if (CheckRemovals() is { } removalFailure) return removalFailure;
        return CheckReplicas();
    }

    internal static string JoinerPeerUrl(int joiner) => "sim://joiner-" + joiner.ToString(CultureInfo.InvariantCulture);

    internal ulong RaftIdOf(int simId) => _raftIds[simId];

    /// <summary>The simulated machine of Raft member <paramref name="raftId"/>, or -1 for an id no machine has.</summary>
    /// <summary>Whether machine <paramref name="simId"/>'s transport dials <paramref name="raftId"/> (so an answer can come back on its connection).</summary>
    internal bool HasPeer(int simId, ulong raftId) =>
        _simulation.Nodes[simId].Process is KeelProcess { Started: true } process && process.PeerView.Contains(raftId);

    internal int SimIdOf(ulong raftId)
    {
        // Founding members are 1..N; only joiners have hashed ids, and there are few of them.
        if (raftId >= 1 && raftId <= (ulong)NodeCount) return (int)raftId - 1;
        for (var i = NodeCount; i < _raftIds.Count; i++)
            if (_raftIds[i] == raftId) return i;
        return -1;
    }

    // Every machine's Raft state, configuration, member table and peers, for a failure message.
    private string DescribeNodes() => string.Join("; ", _simulation.Nodes.Select((n, i) =>
        n.Process is KeelProcess { Started: true } p
            ? $"machine {i}: {p.Node.Raft} {p.Node.Raft.Membership} members [{string.Join(' ', p.Node.Members.Select(m => m.Id.ToString("x")))}] peers [{string.Join(' ', p.PeerView.Select(id => id.ToString("x")))}]"
            : $"machine {i}: {n.State}"));

    internal KeelProcess? Leader() => Processes().Where(p => p.Node.IsLeader).MaxBy(p => p.Node.Raft.Term);

    // Joiners are added one after another, each an add and maybe a promotion that may time out and be retried (a
    // proposal forwarded to a node that is campaigning is dropped, and the waiting member answers only at its request
    // timeout), so only the first must have finished by the end. Every joiner whose admission finished is a voter of
    // the leader's configuration; every joiner that started at least two seconds before the mark (a second before the
    // end) has applied what the leader had committed at the mark (one started later may still be receiving snapshots:
    // with tiny chunks and few trailing entries, a transfer can be outrun by the log and need another).
    private string? CheckJoiners()
    {
        if (_options.JoiningMembers == 0) return null;
        var leader = Leader()!;
        var membership = leader.Node.Raft.Membership;
        if (_joinersAdmitted == 0) return "liveness: the first joiner was not admitted (and promoted, if a learner) by the end";
        for (var j = 0; j < _options.JoiningMembers; j++)
        {
            var simId = NodeCount + j;
            var raftId = _raftIds[simId];
            var node = _simulation.Nodes[simId];
            if (node.State == NodeState.NotStarted) continue;
            if (node.Process is not KeelProcess { Started: true } process) return $"liveness: joiner {j} is not running at the end";
            if (_committedBeforeEnd is { } committed && _joinerStartedUs[j] < CatchUpMarkUs - 2_000_000 && process.Node.AppliedIndex < committed)
                return $"liveness: joiner {j} applied {process.Node.AppliedIndex}, below the {committed} committed a second before the end; " + DescribeNodes();
            if (j >= _joinersAdmitted) continue;
            if (membership.IsJoint || !membership.Voters.Incoming.Contains(raftId))
                return $"joiner {j} ({raftId:x16}) was admitted as a voter but is not one in leader {leader.Node.Id}'s configuration";
            JoinedMembers++;
        }
        return null;
    }

    // Every removal the client saw answered left the leader's configuration and the member tables, and its machine
    // was stopped.
    private string? CheckRemovals()
    {
        if (_removed.Count == 0) return null;
        var leader = Leader()!;
        var membership = leader.Node.Raft.Membership;
        foreach (var simId in _removed)
        {
            var raftId = _raftIds[simId];
            if (membership.Contains(raftId))
                return $"removed member {raftId:x} is still in leader {leader.Node.Id}'s configuration {membership}";
            if (leader.Node.Members.Any(m => m.Id == raftId)) return $"removed member {raftId:x} is still in leader {leader.Node.Id}'s member table";
            RemovedMembers++;
        }
        return null;
    }

    private readonly List<int> _removed = [];

    /// <summary>Founding members removed from the cluster (and stopped) whose removal was checked at the end (after Finish).</summary>
    public int RemovedMembers { get; private set; }

    /// <summary>Members that applied their own removal, or were told of it by a peer, and stopped by themselves (the server's behaviour).</summary>
    public int MembersStoppedThemselves { get; private set; }

    /// <summary>Of <see cref="MembersStoppedThemselves"/>, those a peer told of their removal (cut off from its commit).</summary>
    public int MembersToldTheyWereRemoved { get; private set; }

    /// <summary>Machine <paramref name="simId"/> applied its own removal: it stops for good.</summary>
    internal void MemberStoppedItself(int simId)
    {
        var node = _simulation.Nodes[simId];
        if (node.State == NodeState.Decommissioned) return;
        MembersStoppedThemselves++;
        if (node.Process is KeelProcess { Started: true } process && process.Node.RemovalNoticeFrom != 0) MembersToldTheyWereRemoved++;
        node.Decommission();
    }

    /// <summary>
    /// The cluster answered the removal of machine <paramref name="simId"/>. The member stops by itself once it applies
    /// its removal; one cut off may never learn it, so the operator stops it a second later if it still runs.
    /// </summary>
    internal void MemberRemoved(int simId)
    {
        _removed.Add(simId);
        _simulation.Schedule(1_000_000, () => _simulation.Nodes[simId].Decommission(), "operator-stops-removed-member");
    }

    /// <summary>A founding member not removed yet, drawn by the client (the leader may be drawn).</summary>
    internal int? FounderToRemove()
    {
        var candidates = Enumerable.Range(0, NodeCount).Where(i => !_removed.Contains(i)).ToList();
        return candidates.Count <= 1 ? null : candidates[_random.NextInt32(candidates.Count)];
    }

    private int _joinersAdmitted;
    private readonly Dictionary<int, long> _joinerStartedUs = [];
    private readonly Dictionary<int, ulong[]> _joinerFlagPeers = [];

    /// <summary>The member ids machine <paramref name="simId"/>'s flags name: the founders, or for a joiner the members when it was added.</summary>
    internal IReadOnlyCollection<ulong> FlagPeersOf(int simId, ulong[] founders) =>
        simId >= NodeCount && _joinerFlagPeers.TryGetValue(simId - NodeCount, out var flags) ? flags : founders;

    private long CatchUpMarkUs => (_options.DurationMs - 1_000) * 1000;

    /// <summary>The operator starts joiner <paramref name="joiner"/>'s machine (once the cluster admitted it).</summary>
    /// <param name="joiner">The joiner.</param>
    /// <param name="members">The member ids the add's answer listed: what `member add` prints as ETCD_INITIAL_CLUSTER and
    /// the operator passes as the new member's flags (null when the answer had none: then every founder and earlier joiner).</param>
    internal void StartJoiner(int joiner, IEnumerable<ulong>? members)
    {
        _joinerStartedUs.TryAdd(joiner, _simulation.NowUs);
        var node = _simulation.Nodes[NodeCount + joiner];
        // The flags are given once; a restart keeps them.
        _joinerFlagPeers.TryAdd(joiner, [.. members ?? _raftIds.Take(NodeCount + joiner)]);
        node.Start();
    }

    /// <summary>The membership client finished admitting the next joiner (added as a voter, or added and promoted).</summary>
    internal void JoinerAdmitted(bool promoted)
    {
        _joinersAdmitted++;
        if (promoted) LearnersPromoted++;
    }

    /// <summary>Joiners that were added as learners and then promoted to voters.</summary>
    public int LearnersPromoted { get; private set; }

    /// <inheritdoc />
    public string Summary() => string.Create(CultureInfo.InvariantCulture,
        $"{NodeCount} nodes{(_options.JoiningMembers > 0 ? $" + {JoinedMembers}/{_options.JoiningMembers} joined" : "")}{(_options.RemovingMembers > 0 ? $" - {RemovedMembers}/{_options.RemovingMembers} removed ({MembersStoppedThemselves} stopped by themselves, {MembersToldTheyWereRemoved} of them told by a peer)" : "")}; {_completed} ops completed ({_completedAfterHeal} after healing), {_unknown} unknown, {_refused} refused; history {_history.Count}; loop turns {Turns} ({BatchedTurns} batched), background snapshots written {BackgroundSnapshotsWritten}, snapshot transfers abandoned {SnapshotTransfersAbandoned}, entries read back from WALs {EntriesReadBack}, values moved between segments {ValuesMoved}, pipelined WAL syncs {PipelinedSyncs} (up to {MaxReadiesAwaitingSync} Readys waiting)");

    private IEnumerable<KeelProcess> AllProcesses() => _simulation.Nodes.Select(n => n.Process).OfType<KeelProcess>();

    /// <summary>Loop turns run by every process over the run (<see cref="NodeDriver.RunTurn"/>).</summary>
    public long Turns => AllProcesses().Sum(p => p.Turns);

    /// <summary>Turns that ran more than one work item as one batch (group commit).</summary>
    public long BatchedTurns => AllProcesses().Sum(p => p.BatchedTurns);

    /// <summary>Snapshots written by the background writer and reported back through the loop.</summary>
    public int BackgroundSnapshotsWritten => AllProcesses().Sum(p => p.BackgroundSnapshotsWritten);

    internal IEnumerable<KeelProcess> Processes()
    {
        foreach (var node in _simulation.Nodes)
            if (node.Process is KeelProcess process && node.State is NodeState.Up or NodeState.Paused && process.Started) yield return process;
    }

    private string? CheckStep()
    {
        // The full invariants walk the log and the store: checked on a stride, and at the end.
        if (_simulation.EventCount % 500 != 0) return null;
        foreach (var process in Processes()) process.Node.AssertInvariants();
        return null;
    }

    // Replicas that applied the same prefix of the log hold the same store: same revision and the same KV hash.
    private string? CheckReplicas()
    {
        var byIndex = Processes().GroupBy(p => p.Node.AppliedIndex);
        foreach (var group in byIndex)
        {
            var first = group.First();
            var hash = first.Node.Store.HashKv(0);
            foreach (var other in group.Skip(1))
            {
                var otherHash = other.Node.Store.HashKv(0);
                if (otherHash != hash)
                    return $"replica divergence at applied index {group.Key}: node {first.Node.Id} {hash} vs node {other.Node.Id} {otherHash}";
                if (!first.Node.Leases().SequenceEqual(other.Node.Leases()))
                    return $"lease divergence at applied index {group.Key}: node {first.Node.Id} [{string.Join(",", first.Node.Leases())}] vs node {other.Node.Id} [{string.Join(",", other.Node.Leases())}]";
                foreach (var lease in first.Node.Leases())
                    if (first.Node.LeaseTable.TimeToLive(lease, first.Node.LeaseTable.LastNowMs, true).Keys.Count !=
                        other.Node.LeaseTable.TimeToLive(lease, other.Node.LeaseTable.LastNowMs, true).Keys.Count)
                        return $"lease {lease} has different keys on nodes {first.Node.Id} and {other.Node.Id} at applied index {group.Key}";
                if (first.Node.Idempotency.Count != other.Node.Idempotency.Count)
                    return $"idempotency tables differ at applied index {group.Key}: {first.Node.Idempotency.Count} vs {other.Node.Idempotency.Count} entries";
                if (!first.Node.Members.SequenceEqual(other.Node.Members))
                    return $"member tables differ at applied index {group.Key}";
            }
        }
        return null;
    }

    private sealed record ClientOp(int Client, ulong RequestId, KvInput Input, long CallUs, KvCommand? Command = null, string? IdempotencyKey = null, int Attempt = 1);

    internal KeelProcess? PickTarget()
    {
        var live = Processes().ToList();
        if (live.Count == 0) return null;
        var leader = Leader();
        return leader is not null && _random.Chance(_options.LeaderAffinity) ? leader : live[_random.NextInt32(live.Count)];
    }

    internal Sim Simulation => _simulation;
    internal DeterministicRandom ClientRandom => _random;
    internal ulong NextRequestId() => ++_nextRequestId;
    internal KvScenarioOptions Options => _options;
    internal void CountLeaseGranted() => LeasesGranted++;
    private readonly Dictionary<ulong, Action<KvResult?>> _otherRequests = [];
    /// <summary>
    /// A new request id whose answer goes to <paramref name="onAnswer"/>, or null after the client timeout if none came
    /// by then (a late answer is then dropped).
    /// </summary>
    internal ulong Expect(Action<KvResult?> onAnswer, string timeoutLabel)
    {
        var requestId = NextRequestId();
        _otherRequests[requestId] = onAnswer;
        _simulation.Schedule(_options.ClientTimeoutMs * 1000, () =>
        {
            if (_otherRequests.Remove(requestId)) onAnswer(null);
        }, timeoutLabel);
        return requestId;
    }

    // Sends (again) a write; the timeout fires only for the attempt it was set for.
    private void Send(ClientOp op, KeelProcess target)
    {
        _inFlight.Add(op.RequestId, op);
        _simulation.Schedule(_options.ClientTimeoutMs * 1000, () =>
        {
            if (_inFlight.Remove(op.RequestId, out var timedOut))
            {
                if (!Retry(timedOut))
                {
                    RecordUnknown(timedOut);
                    IssueNext(timedOut.Client);
                }
            }
        }, "client-timeout");
        target.Submit(op.RequestId, op.Command!, op.IdempotencyKey);
    }

    // A keyed write whose outcome is unknown is sent again with the same key, possibly to another node: it takes
    // effect at most once, and a definite answer to a retry is the answer to the operation.
    private bool Retry(ClientOp op)
    {
        if (op.IdempotencyKey is null || op.Attempt >= _options.IdempotentAttempts || _simulation.NowUs >= (_options.DurationMs - 200) * 1000) return false;
        var target = PickTarget();
        if (target is null) return false;
        Send(op with { RequestId = ++_nextRequestId, Attempt = op.Attempt + 1 }, target);
        return true;
    }

    private void IssueNext(int client)
    {
        if (_simulation.NowUs >= (_options.DurationMs - 200) * 1000) return;
        var live = Processes().ToList();
        if (live.Count == 0)
        {
            _simulation.Schedule(20_000, () => IssueNext(client), "client-retry");
            return;
        }
        var target = PickTarget()!;
        var key = _options.Keys[_random.NextInt32(_options.Keys.Length)];
        var roll = _random.NextDouble();
        var requestId = ++_nextRequestId;
        KvInput input;
        if (roll < 0.45) input = KvInput.Get(key);
        else if (roll < 0.75) input = KvInput.Put(key, NewValue());
        else if (roll < 0.80) input = KvInput.Delete(key);
        else input = KvInput.Cas(key, LastValue(key), NewValue());
        if (input.Kind != KvOperationKind.Get && _random.Chance(_options.IdempotentWriteChance))
        {
            var command = CommandOf(input);
            var idempotencyKey = "client-" + client.ToString(CultureInfo.InvariantCulture) + "-" + requestId.ToString(CultureInfo.InvariantCulture);
            Send(new ClientOp(client, requestId, input, _simulation.NowUs, command, idempotencyKey), target);
            return;
        }
        var op = new ClientOp(client, requestId, input, _simulation.NowUs);
        _inFlight.Add(requestId, op);
        // The client gives up after its own timeout (a crashed node never answers); the outcome stays unknown.
        _simulation.Schedule(_options.ClientTimeoutMs * 1000, () =>
        {
            if (_inFlight.Remove(requestId, out var timedOut))
            {
                RecordUnknown(timedOut);
                IssueNext(client);
            }
        }, "client-timeout");
        var key8 = Encoding.UTF8.GetBytes(key);
        switch (input.Kind)
        {
            case KvOperationKind.Get:
                target.Read(requestId, new RangeRequest { Key = key8 }, linearizable: true);
                break;
            default:
                target.Submit(requestId, CommandOf(input), null);
                break;
        }
    }

    private static KvCommand CommandOf(KvInput input)
    {
        var key8 = Encoding.UTF8.GetBytes(input.Key);
        return input.Kind switch
        {
            KvOperationKind.Put => KvCommand.Of(new PutRequest { Key = key8, Value = Encoding.UTF8.GetBytes(input.Value!) }),
            KvOperationKind.Delete => KvCommand.Of(new DeleteRangeRequest { Key = key8 }),
            _ => KvCommand.Of(new TxnRequest
            {
                Compares = [new Compare { Key = key8, Target = CompareTarget.Value, Result = CompareResult.Equal, ValueOperand = Encoding.UTF8.GetBytes(input.Expected!) }],
                Success = [RequestOp.Of(new PutRequest { Key = key8, Value = Encoding.UTF8.GetBytes(input.Value!) })],
            }),
        };
    }

    private readonly Dictionary<string, string> _lastValue = new(StringComparer.Ordinal);

    private string NewValue() => "v" + (++_nextValue).ToString(CultureInfo.InvariantCulture);

    // CAS expects a value recently written to the key, so that some swaps succeed.
    private string LastValue(string key) => _lastValue.TryGetValue(key, out var value) ? value : "v0";

    internal void OnResponse(KvResult result)
    {
        if (_otherRequests.Remove(result.RequestId, out var onAnswer))
        {
            onAnswer(result);
            return;
        }
        if (!_inFlight.Remove(result.RequestId, out var op)) return; // the client already gave up
        if (result.Error is { } error)
        {
            // After an unknown first attempt, a retry's refusal says nothing about the first: still unknown.
            if (!error.IsDefinite && Retry(op)) return;
            if (error.IsDefinite && op.Attempt == 1) _refused++;
            else RecordUnknown(op);
        }
        else
        {
            var output = op.Input.Kind switch
            {
                KvOperationKind.Get => result.Range!.Kvs.Count == 0 ? KvOutput.NotFound : KvOutput.Found(Encoding.UTF8.GetString(result.Range.Kvs[0].Value)),
                KvOperationKind.CompareAndSwap => KvOutput.Cas(result.Txn!.Succeeded),
                _ => KvOutput.Ok,
            };
            if (op.Input.Kind == KvOperationKind.Get && output.Value is { } seen) _lastValue[op.Input.Key] = seen;
            if (op.Input.Kind is KvOperationKind.Put) _lastValue[op.Input.Key] = op.Input.Value!;
            // Whole milliseconds, widened outwards: a coarser interval never hides a real violation's order.
            _history.AddCompleted(op.Client, op.Input, op.CallUs / 1000, output, (_simulation.NowUs + 999) / 1000);
            _completed++;
            if (result.IsIdempotentReplay) IdempotentReplays++;
            if (op.CallUs >= _healAtUs) _completedAfterHeal++;
        }
        var client = op.Client;
        _simulation.Schedule(_random.NextInt64(500, 20_000), () => IssueNext(client), "client-next");
    }

    private void RecordUnknown(ClientOp op)
    {
        _unknown++;
        // A read with an unknown outcome had no effect; the checker ignores pending reads anyway.
        if (op.Input.Kind != KvOperationKind.Get) _history.AddPending(op.Client, op.Input, op.CallUs / 1000);
    }

    internal long TickMs => _options.TickMs;
    internal PlantedBug Bug => _options.Bug;
    internal bool UnsafeLocalReadsOnLeader => _options.UnsafeLocalReadsOnLeader;
}

/// <summary>
/// One simulated machine running a <see cref="KeelNode"/> through the server's own loop logic (<see cref="NodeDriver"/>,
/// issue 11 item 6): requests, peer messages and finished snapshot writes are queued as work items and run in turns,
/// as group-committed batches, with appends sent before the node's own WAL write, ticks when due, and every peer
/// message through the wire codec (<see cref="RaftMessageCodec"/>) both ways.
/// </summary>
internal sealed class KeelProcess : ISimProcess, INodeDriverHost
{
    private const int TurnTag = 5;
    private const int TickTag = 6;
    private const int SnapshotWrittenTag = 7;
    private const int LogSyncedTag = 8;
    // A pipelined WAL sync finishes up to this long after it was handed off (the loop goes on meanwhile).
    private const long MaxLogSyncUs = 3_000;
    // One sync in five is slow (a busy or a cloud disk), so the loop writes several Readys ahead and crashes hit them.
    private const long MaxSlowLogSyncUs = 30_000;
    // The loop wakes up to this long after work is queued: work arriving meanwhile joins the same turn (a batch).
    private const long MaxTurnWakeUpUs = 300;

    private readonly KvScenario _scenario;
    private readonly ulong[] _voters;
    private readonly bool _joining;
    private readonly Queue<Action> _work = new();
    private NodeContext _context = null!;
    private NodeDriver _driver = null!;
    private bool _turnScheduled;
    private SnapshotToPersist? _pendingSnapshot;
    private readonly List<WalSyncTicket> _syncQueued = [];
    private bool _syncScheduled;

    /// <summary>Pipelined WAL syncs this process ran (each may cover several tickets).</summary>
    public long PipelinedSyncs { get; private set; }

    /// <summary>The most Readys this process had written and waiting for their syncs at once since its last start.</summary>
    public int MaxReadiesAwaitingSync { get; private set; }

    public KeelProcess(KvScenario scenario, int simId, ulong raftId, ulong[] voters, bool joining)
    {
        _scenario = scenario;
        SimId = simId;
        RaftId = raftId;
        _voters = voters;
        _joining = joining;
    }

    /// <summary>
    /// The members its flags (--initial-cluster) name, whose addresses its transport has from the start: the founders
    /// for a founder; for a joiner, the members of the cluster when it was added.
    /// </summary>
    public IReadOnlyCollection<ulong> FlagPeers => _scenario.FlagPeersOf(SimId, _voters);

    public int SimId { get; }

    public ulong RaftId { get; }
    public KeelNode Node { get; private set; } = null!;
    public bool Started { get; private set; }

    /// <summary>Turns this process ran.</summary>
    public long Turns { get; private set; }

    /// <summary>Turns that ran more than one work item.</summary>
    public long BatchedTurns { get; private set; }

    /// <summary>Background snapshots this process encoded and wrote durably.</summary>
    public int BackgroundSnapshotsWritten { get; private set; }

    /// <summary>Bytes per value segment in the simulation (a few values each).</summary>
    internal const int ValueSegmentBytes = 256;

    /// <summary>History the simulated leader keeps: it compacts at the revision of a second ago, every second.</summary>
    internal const long AutoCompactionRetentionMs = 1_000;

    public void Start(NodeContext context)
    {
        _context = context;
        Node = KeelNode.Open(new KeelNodeOptions
        {
            NodeId = RaftId,
            // A joining member ignores the founders and learns everything, its own admission included, from the leader
            // (as the server does for a member whose identity file says it joined).
            Voters = _voters,
            JoinExisting = _joining,
            Random = context.Random.Split("keel"),
            TickMs = _scenario.TickMs,
            RequestTimeoutMs = 2_000,
            WalSegmentSizeBytes = 256 * 1024,
            UnsafeLocalReadsOnLeader = _scenario.UnsafeLocalReadsOnLeader,
            SnapshotEveryEntries = _scenario.Options.SnapshotEveryEntries ?? 10_000,
            SnapshotTrailingEntries = _scenario.Options.SnapshotTrailingEntries,
            SnapshotChunkBytes = _scenario.Options.SnapshotChunkBytes ?? KeelNodeOptions.DefaultSnapshotChunkBytes,
            PersistSnapshotsInBackground = _scenario.Options.BackgroundSnapshots,
            // Pipelined syncs (the server's default) with one or eight in flight, or syncs on the loop, drawn per boot.
            MaxWalSyncsInFlight = context.Random.Chance(0.5) ? 1 : 8,
            // A log of a few entries in memory: every catch-up of a lagging member reads entries back from its WAL.
            RaftLogMemoryBytes = 1024,
            // Values in segments as the server keeps them, tiny ones so every run fills, seals and empties many; the
            // leader compacts every simulated second (the server's periodic compactor), so compaction moves the live
            // values out of sparse segments while snapshots and reads hold captures of the old ones.
            ValueSegments = new HeapValueSegmentSource(ValueSegmentBytes),
            AutoCompaction = new AutoCompactionPolicy(AutoCompactionMode.Periodic, AutoCompactionRetentionMs),
        }, new SimStorageDirectory(context.Disk, "wal/"));
        _work.Clear();
        _turnScheduled = false;
        _pendingSnapshot = null;
        // Syncs in flight at a crash never finished: what they covered survives only as the disk's crash rules say.
        _syncQueued.Clear();
        _syncScheduled = false;
        PipelinedSyncs = 0;
        MaxReadiesAwaitingSync = 0;
        _syncsLogInBackground = !context.Random.Chance(1.0 / 3);
        _transportPeers.Clear();
        _transportPeers.UnionWith(FlagPeers);
        _transportPeers.Remove(RaftId);
        _peerViewVersion = -1;
        _peerViewLeader = 0;
        SyncPeers();
        _driver = new NodeDriver(Node, this, (int)_scenario.TickMs);
        Started = true;
        _driver.Start();
        context.SetTimer(_scenario.TickMs, TickTag);
    }

    public void OnMessage(NodeContext context, int from, object message)
    {
        if (message is RemovalNotice notice)
        {
            Enqueue(() => Node.AcceptRemovalNotice(notice.From, notice.RemovedAtIndex));
            return;
        }
        // Every message crosses the wire codec, as between real members.
        var decoded = RaftMessageCodec.Decode((byte[])message);
        // As the server's transport: a member this one knows was removed is told so instead of being heard
        // (PeerTransport.SetRemovedMembers, KeelNode.RemovedMembersToNotify).
        if (Started && Node.RemovalNoticeFor(decoded.From) is { } removedAtIndex)
        {
            RemovalNoticesSent++;
            context.Send(from, new RemovalNotice(Node.Id, removedAtIndex), sizeBytes: 16);
            return;
        }
        Enqueue(() => Node.Step(decoded));
    }

    /// <summary>The removal notice a member's transport answers a removed member with (PeerTransport's marker and index).</summary>
    private sealed record RemovalNotice(ulong From, ulong RemovedAtIndex);

    /// <summary>Removal notices this machine answered removed members with.</summary>
    public int RemovalNoticesSent { get; private set; }

    public void OnTimer(NodeContext context, long timerId, int tag)
    {
        switch (tag)
        {
            case SnapshotWrittenTag:
                WriteSnapshot(context);
                return;
            case LogSyncedTag:
                SyncLog();
                return;
            case TurnTag:
                _turnScheduled = false;
                RunTurn();
                return;
            default:
                // The loop's own clock: a turn, with no work if none is queued, ticks the node once a tick is due.
                RunTurn();
                context.SetTimer(Math.Max(1, _driver.NextTickMs - context.MonotonicMs), TickTag);
                return;
        }
    }

    public void Submit(ulong requestId, KvCommand command, string? idempotencyKey) =>
        Enqueue(() => Node.Submit(requestId, command, idempotencyKey));

    public void Read(ulong requestId, RangeRequest request, bool linearizable) =>
        Enqueue(() => Node.Read(requestId, request, linearizable));

    public void ChangeMember(ulong requestId, MemberChange change) =>
        Enqueue(() => Node.SubmitMemberChange(requestId, change));

    private void Enqueue(Action work)
    {
        _work.Enqueue(work);
        if (_turnScheduled) return;
        _turnScheduled = true;
        _context.SetTimerUs(_context.Random.NextInt64(0, MaxTurnWakeUpUs + 1), TurnTag);
    }

    private void RunTurn()
    {
        var ran = _driver.RunTurn((out Action work) => _work.TryDequeue(out work!));
        Turns++;
        if (ran > 1) BatchedTurns++;
        // More than one turn's worth was queued: the rest runs in the next turn, as the server's loop does.
        if (_work.Count > 0 && !_turnScheduled)
        {
            _turnScheduled = true;
            _context.SetTimerUs(0, TurnTag);
        }
    }

    /// <summary>The background write finished: encode the captured image now (late, after the node went on), write it, report it through the loop.</summary>
    private void WriteSnapshot(NodeContext context)
    {
        if (_pendingSnapshot is not { } snapshot) return;
        _pendingSnapshot = null;
        var durable = false;
        try
        {
            new SnapshotStore(new SimStorageDirectory(context.Disk, "wal/")).Save(snapshot.Index, snapshot.Term, snapshot.Image.SizeBytes, snapshot.Image.EncodeTo, snapshot.StreamedSnapshotIndexes);
            durable = true;
        }
        catch (IOException)
        {
            // A disk fault: the node keeps its log and takes another snapshot later.
        }
        BackgroundSnapshotsWritten += durable ? 1 : 0;
        Enqueue(() => _driver.SnapshotWritten(snapshot.Index, snapshot.Term, durable));
    }

    /// <summary>
    /// The WAL sync thread's work, late in virtual time: one sync of each file among the queued tickets (what a real
    /// fdatasync covers), then the completions through the loop. Until then the node went on writing; a crash before this
    /// loses the unsynced writes as the simulated disk decides.
    /// </summary>
    private void SyncLog()
    {
        _syncScheduled = false;
        if (_syncQueued.Count == 0) return;
        var tickets = _syncQueued.ToArray();
        _syncQueued.Clear();
        Exception? error = null;
        try
        {
            // The planted bug: a sync thread (or a disk cache) that reports a sync it never did.
            if (_scenario.Bug != PlantedBug.WalSyncLies) WalSyncTicket.SyncAll(tickets);
            PipelinedSyncs++;
        }
        catch (IOException exception)
        {
            error = exception;
        }
        Enqueue(() =>
        {
            foreach (var ticket in tickets) _driver.LogSynced(ticket, error);
        });
    }

    private bool _syncsLogInBackground;

    bool INodeDriverHost.SyncsLogInBackground => _syncsLogInBackground;

    void INodeDriverHost.SyncLogInBackground(WalSyncTicket ticket)
    {
        _syncQueued.Add(ticket);
        MaxReadiesAwaitingSync = Math.Max(MaxReadiesAwaitingSync, Node.ReadiesAwaitingSync);
        if (_syncScheduled) return;
        _syncScheduled = true;
        var random = _context.Random;
        _context.SetTimerUs(random.Chance(0.2) ? random.NextInt64(MaxLogSyncUs, MaxSlowLogSyncUs + 1) : random.NextInt64(0, MaxLogSyncUs + 1), LogSyncedTag);
    }

    long INodeDriverHost.MonotonicMs => _context.MonotonicMs;

    long INodeDriverHost.WallClockMs => _context.WallClockMs;

    void INodeDriverHost.Send(Message message)
    {
        var bytes = RaftMessageCodec.Encode(message);
        // As the server's transport: a member reaches the peers it has an address for (SyncPeers below), and answers
        // any other over the connection that one opened to it (it has this member among its own transport's peers).
        // Until 2026-12-05 a member it never knew was reached here regardless, hiding that a joiner or a lagging member
        // restored from a snapshot older than the leader's admission could not answer that leader (seed 1050 of
        // --join 2 --remove 1, once the simulator modelled addresses).
        var to = _scenario.SimIdOf(message.To);
        if (to < 0) return;
        if (!_transportPeers.Contains(message.To) && !_scenario.HasPeer(to, RaftId)) return;
        _context.Send(to, bytes, sizeBytes: bytes.Length);
    }

    void INodeDriverHost.Answer(KvResult result) => _scenario.OnResponse(result);

    void INodeDriverHost.WriteSnapshotInBackground(SnapshotToPersist snapshot)
    {
        _pendingSnapshot = snapshot;
        _context.SetTimer(_context.Random.NextInt64(1, _scenario.Options.BackgroundSnapshotMaxDelayMs + 1), SnapshotWrittenTag);
    }

    void INodeDriverHost.OnTicked(long monotonicMs) { }

    void INodeDriverHost.BeforeAnswers() { }

    void INodeDriverHost.AfterTurn() => SyncPeers();

    // The server's transport (NodeHost.SyncPeers), after each turn's messages went out: the ids it has an address for.
    // At boot those its flags name; when the leader changes, the leader if the flags name it (a joiner restored from a
    // snapshot older than the leader's admission has no table entry for it); when the member table or configuration
    // changes, every member of the table, and every id that is no longer a peer (KeelNode.IsPeer) is dropped. A peer
    // dropped by a turn still got what that turn sent it.
    private readonly HashSet<ulong> _transportPeers = [];

    /// <summary>Whom this machine sends to: the peers its transport has an address for, as of the end of its last turn.</summary>
    public IReadOnlyCollection<ulong> PeerView => _transportPeers;
    private long _peerViewVersion;
    private ulong _peerViewLeader;

    private void SyncPeers()
    {
        var leader = Node.Raft.Leader;
        if (Node.MemberTableVersion == _peerViewVersion && leader == _peerViewLeader) return;
        _peerViewLeader = leader;
        if (leader != 0 && leader != RaftId && FlagPeers.Contains(leader)) _transportPeers.Add(leader);
        if (Node.MemberTableVersion == _peerViewVersion) return;
        _peerViewVersion = Node.MemberTableVersion;
        foreach (var member in Node.Members)
            if (member.Id != RaftId) _transportPeers.Add(member.Id);
        _transportPeers.RemoveWhere(id => !Node.IsPeer(id));
    }

    // As the server does: a member that applied its own removal stops, for good (after this event, not inside it).
    void INodeDriverHost.Removed() => _scenario.Simulation.Schedule(0, () => _scenario.MemberStoppedItself(SimId), "removed-member-stops");
}

/// <summary>
/// A client of leases: grants a short lease, puts a key with it, keeps it alive a few times, then either revokes it or
/// abandons it for the leader to expire. Its keys are outside the checked history; what it exercises is checked by
/// the node's invariants (a live key is attached to exactly its lease) and by replica comparison (same leases, same
/// attached keys at the same applied index).
/// </summary>
internal sealed class LeaseClient
{
    private readonly KvScenario _scenario;
    private readonly int _id;
    private long _lease;
    private int _keepAlives;
    private int _round;

    public LeaseClient(KvScenario scenario, int id)
    {
        _scenario = scenario;
        _id = id;
    }

    public void Next()
    {
        var simulation = _scenario.Simulation;
        if (simulation.NowUs >= (_scenario.Options.DurationMs - 200) * 1000) return;
        var target = _scenario.PickTarget();
        if (target is null)
        {
            simulation.Schedule(50_000, Next, "lease-client-retry");
            return;
        }
        var random = _scenario.ClientRandom;
        KvCommand command;
        if (_lease == 0) command = KvCommand.LeaseGrant(0, 2);
        else if (_keepAlives == 0) command = KvCommand.Of(new PutRequest { Key = Encoding.UTF8.GetBytes($"lease/{_id}/{_round}"), Value = [1], Lease = _lease });
        else if (_keepAlives < 6) command = KvCommand.LeaseKeepAlive(_lease);
        else if (random.Chance(0.5)) command = KvCommand.LeaseRevoke(_lease);
        else
        {
            // Abandon the lease: the leader must expire it.
            _lease = 0;
            _keepAlives = 0;
            _round++;
            simulation.Schedule(random.NextInt64(100_000, 400_000), Next, "lease-client-next");
            return;
        }
        var requestId = _scenario.Expect(result => OnAnswer(command, result), "lease-client-timeout");
        target.Submit(requestId, command, command.Kind == KvCommandKind.LeaseGrant ? $"lease-client-{_id}-{_round}" : null);
    }

    private void OnAnswer(KvCommand command, KvResult? result)
    {
        var random = _scenario.ClientRandom;
        switch (command.Kind)
        {
            case KvCommandKind.LeaseGrant when result?.LeaseGrant is { } grant:
                _lease = grant.LeaseId;
                _scenario.CountLeaseGranted();
                break;
            case KvCommandKind.Put when result is { IsError: false }:
                _keepAlives = 1;
                break;
            case KvCommandKind.LeaseKeepAlive when result?.LeaseKeepAlive is { } renewed:
                if (renewed.TtlSeconds == 0) { _lease = 0; _keepAlives = 0; _round++; }
                else _keepAlives++;
                break;
            case KvCommandKind.LeaseRevoke when result is not null:
                _lease = 0;
                _keepAlives = 0;
                _round++;
                break;
            case KvCommandKind.Put when result is { Error.Code: KeelErrorCode.Lease }:
                _lease = 0;
                _round++;
                break;
        }
        _scenario.Simulation.Schedule(random.NextInt64(100_000, 600_000), Next, "lease-client-next");
    }
}

/// <summary>
/// The operator who changes the cluster: asks a member to add each joiner (etcd MemberAdd; as a learner on a coin flip),
/// retrying on errors and timeouts, starts the joiner's machine once the cluster answered, and promotes a learner
/// (etcd MemberPromote); then removes founders (etcd MemberRemove) and stops each once its removal was answered. An add
/// whose answer was lost is recognised by "member ID already exist" on the retry, a promotion whose answer was lost by
/// "can only promote a learner member", a removal by "member not found".
/// </summary>
internal sealed class MembershipClient
{
    private readonly KvScenario _scenario;
    private int _joiner;
    private bool _asLearner;
    private bool _promoting;
    private int _removals;
    private int? _removing;

    public MembershipClient(KvScenario scenario)
    {
        _scenario = scenario;
        _asLearner = scenario.ClientRandom.Chance(0.5);
    }

    public void Next()
    {
        var simulation = _scenario.Simulation;
        if (simulation.NowUs >= (_scenario.Options.DurationMs - 200) * 1000) return;
        var joining = _joiner < _scenario.Options.JoiningMembers;
        if (!joining && _removals >= _scenario.Options.RemovingMembers) return;
        var target = _scenario.PickTarget();
        if (target is null)
        {
            simulation.Schedule(50_000, Next, "membership-client-retry");
            return;
        }
        MemberChange change;
        if (joining)
        {
            var simId = _scenario.NodeCount + _joiner;
            change = _promoting
                ? MemberChange.Promote(_scenario.RaftIdOf(simId))
                : MemberChange.Add([KvScenario.JoinerPeerUrl(_joiner)], _asLearner);
        }
        else
        {
            _removing ??= _scenario.FounderToRemove();
            if (_removing is not { } victim) return;
            change = MemberChange.Remove(_scenario.RaftIdOf(victim));
        }
        var requestId = _scenario.Expect(OnAnswer, "membership-client-timeout");
        target.ChangeMember(requestId, change);
    }

    private void OnAnswer(KvResult? result)
    {
        var simulation = _scenario.Simulation;
        var random = _scenario.ClientRandom;
        var message = result?.Error?.Message;
        if (_removing is { } victim)
        {
            if (result is { IsError: false } || message == "etcdserver: member not found")
            {
                _scenario.MemberRemoved(victim);
                _removing = null;
                _removals++;
                simulation.Schedule(random.NextInt64(200_000, 1_500_000), Next, "membership-client-next");
            }
            else
            {
                simulation.Schedule(random.NextInt64(100_000, 400_000), Next, "membership-client-retry");
            }
            return;
        }
        var done = result is { IsError: false } ||
            message == (_promoting ? "etcdserver: can only promote a learner member" : "etcdserver: member ID already exist");
        if (!done)
        {
            simulation.Schedule(random.NextInt64(100_000, 400_000), Next, "membership-client-retry");
            return;
        }
        if (!_promoting)
        {
            // Admitted: the operator starts the new machine now, as after `etcdctl member add`.
            _scenario.StartJoiner(_joiner, result?.Members?.Select(m => m.Id));
            if (_asLearner)
            {
                _promoting = true;
                simulation.Schedule(random.NextInt64(200_000, 800_000), Next, "membership-client-promote");
                return;
            }
        }
        _scenario.JoinerAdmitted(promoted: _promoting);
        _promoting = false;
        _joiner++;
        _asLearner = random.Chance(0.5);
        simulation.Schedule(random.NextInt64(200_000, 1_500_000), Next, "membership-client-next");
    }
}
