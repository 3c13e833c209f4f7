using System.Globalization;
using System.Text;
using Keel.Core;
using Keel.Node;
using Keel.Raft;
using Keel.Storage;

namespace Keel.Simulation.Scenarios;

/// <summary>
/// A Raft cluster of 3, 5 or 7 nodes (drawn from the seed unless fixed) under every fault of the simulator: loss,
/// duplication, reordering, symmetric and asymmetric partitions, clogged links, crashes with restarts that lose or
/// tear unsynced writes, pauses and clock steps, while clients propose a stream of unique values. After every event the
/// checker verifies election safety (at most one leader per term), state-machine safety (every node applies the same
/// entry at each index, and a committed entry never changes), leader completeness (a new leader holds every committed
/// entry), and that restarts lose nothing that was committed. Then everything heals, and the liveness phase requires a
/// leader and every proposal accepted from then on to commit everywhere within a bound.
/// </summary>
public sealed class RaftScenario : ISimulationScenario
{
    private readonly RaftScenarioOptions _options;
    private readonly Dictionary<ulong, ulong> _leaderOfTerm = [];
    private readonly Dictionary<ulong, (ulong Term, byte[] Data)> _committed = [];
    private readonly Dictionary<string, long> _acceptedAtUs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _committedAtUs = new(StringComparer.Ordinal);
    private readonly (RaftRole Role, ulong Term)[] _lastRole;
    private Simulation _simulation = null!;
    private DeterministicRandom _clientRandom = null!;
    private string? _violation;
    private long _nextValue;
    private long _healAtUs;
    private int _leaderChanges;
    private int _dropped;

    /// <summary>Creates the scenario.</summary>
    public RaftScenario(RaftScenarioOptions? options = null)
    {
        _options = options ?? new RaftScenarioOptions();
        _lastRole = new (RaftRole, ulong)[8];
    }

    /// <inheritdoc />
    public string Name => "raft";

    /// <inheritdoc />
    public string ReplayArguments => _options.ReplayArguments();

    /// <inheritdoc />
    public long DurationMs => _options.DurationMs;

    /// <summary>Cluster size of this run.</summary>
    public int NodeCount { get; private set; }

    /// <summary>Entries committed (distinct indexes applied by any node).</summary>
    public int CommittedCount => _committed.Count;

    internal RaftScenarioOptions Options => _options;

    /// <inheritdoc />
    public FaultPlan DrawPlan(DeterministicRandom random) => FaultPlan.Draw(random, new FaultLimits
    {
        MaxLossProbability = 0.20,
        MaxDuplicateProbability = 0.20,
        MaxReorderProbability = 0.30,
        MaxPauseMs = 3_000,
        MaxClockStepMs = 5_000,
    });

    /// <inheritdoc />
    public void Build(Simulation simulation, FaultPlan plan)
    {
        _simulation = simulation;
        var random = simulation.Random.Split("raft-scenario");
        NodeCount = _options.Nodes ?? (3 + 2 * random.NextInt32(3));
        Invariant.Check(NodeCount is >= 1 and <= 7, "the scenario supports 1 to 7 nodes");
        var voters = Enumerable.Range(1, NodeCount).Select(i => (ulong)i).ToArray();
        for (var i = 0; i < NodeCount; i++)
            simulation.AddNode(id => new RaftProcess(this, id, voters), plan.DrawClock(random.Split("clock", i)));
        _clientRandom = random.Split("clients");
        simulation.AddInvariant(CheckStep);
        var faultWindowMs = _options.DurationMs - _options.CalmTailMs;
        _healAtUs = faultWindowMs * 1000;
        var nemesis = new Nemesis(simulation, plan);
        simulation.StartAll();
        nemesis.Start(faultWindowMs);
        ScheduleClient();
    }

    /// <inheritdoc />
    public string? Finish(Simulation simulation)
    {
        if (_violation is not null) return _violation;
        if (CheckLogMatching() is { } mismatch) return mismatch;
        EntriesReadBack = Processes().Sum(p => p.EntriesReadBack);
        // Liveness: a leader exists, every node has applied every committed entry (nothing committed was lost across
        // crashes), and every proposal accepted by a leader once the cluster had a second to settle committed in time.
        var leaders = Processes().Where(p => p.Node.Role == RaftRole.Leader).ToList();
        if (leaders.Count == 0) return $"liveness: no leader {_options.CalmTailMs} ms after healing";
        var maxCommitted = _committed.Count == 0 ? 0 : _committed.Keys.Max();
        foreach (var process in Processes())
        {
            if (process.AppliedIndex < maxCommitted)
                return $"liveness: node {process.RaftId} applied up to {process.AppliedIndex} of {maxCommitted} committed entries after healing";
        }
        var settleUs = _healAtUs + _options.SettleAfterHealMs * 1000;
        var quietUs = _options.DurationMs * 1000 - _options.CommitBoundMs * 1000;
        foreach (var (value, acceptedUs) in _acceptedAtUs.OrderBy(kv => kv.Value))
        {
            if (acceptedUs < settleUs || acceptedUs > quietUs) continue;
            if (!_committedAtUs.TryGetValue(value, out var committedUs))
                return $"liveness: proposal {value} accepted at {acceptedUs / 1000} ms, after healing, never committed";
            if (committedUs - acceptedUs > _options.CommitBoundMs * 1000)
                return $"liveness: proposal {value} took {(committedUs - acceptedUs) / 1000} ms to commit after healing (bound {_options.CommitBoundMs} ms)";
        }
        return null;
    }

    /// <inheritdoc />
    public string Summary() => string.Create(CultureInfo.InvariantCulture,
        $"{NodeCount} nodes; {_committed.Count} entries committed, {_acceptedAtUs.Count} proposals appended by a leader, {_dropped} refused; " +
        $"{_leaderOfTerm.Count} terms with a leader, {_leaderChanges} leadership changes observed; {EntriesReadBack} entries read back from WALs");

    /// <summary>Entries the live nodes read back from their WALs (released from memory) by the end of the run.</summary>
    public long EntriesReadBack { get; private set; }

    internal IEnumerable<RaftProcess> Processes()
    {
        foreach (var node in _simulation.Nodes)
            if (node.Process is RaftProcess process && node.State != NodeState.Crashed) yield return process;
    }

    internal void OnApplied(RaftProcess process, Entry entry)
    {
        var data = entry.Data.ToArray();
        if (_committed.TryGetValue(entry.Index, out var known))
        {
            if (known.Term != entry.Term || !known.Data.AsSpan().SequenceEqual(data))
                _violation ??= $"state machine safety: node {process.RaftId} applied {entry.Term}/{entry.Index}, but {known.Term}/{entry.Index} was applied before with other data";
            return;
        }
        _committed[entry.Index] = (entry.Term, data);
        if (data.Length > 0) _committedAtUs.TryAdd(Encoding.ASCII.GetString(data), _simulation.NowUs);
        _simulation.Trace(0x4150504C /* APPL */, (long)entry.Index, (long)entry.Term);
    }

    private string? CheckStep()
    {
        if (_violation is not null) return _violation;
        // Log matching costs O(log length) per pair of nodes: checked on a stride, and always at the end.
        if (_simulation.EventCount % _options.LogMatchingStrideEvents == 0 && CheckLogMatching() is { } mismatch) return mismatch;
        foreach (var process in Processes())
        {
            var node = process.Node;
            var slot = (int)process.RaftId;
            if (node.Role == RaftRole.Leader)
            {
                if (_leaderOfTerm.TryGetValue(node.Term, out var leader))
                {
                    if (leader != process.RaftId) return $"election safety: nodes {leader} and {process.RaftId} both led term {node.Term}";
                }
                else
                {
                    _leaderOfTerm[node.Term] = process.RaftId;
                }
                if (_lastRole[slot].Role != RaftRole.Leader || _lastRole[slot].Term != node.Term)
                {
                    _leaderChanges++;
                    var missing = MissingCommittedEntry(node);
                    if (missing is not null) return $"leader completeness: node {process.RaftId}, leader of term {node.Term}, {missing}";
                }
            }
            _lastRole[slot] = (node.Role, node.Term);
        }
        return null;
    }

    /// <summary>
    /// Raft's log matching property: if two logs hold an entry with the same index and term, they are identical in all
    /// entries up to it. For each pair of live nodes, finds the highest index where their terms agree and compares
    /// every retained entry at or below it.
    /// </summary>
    private string? CheckLogMatching()
    {
        var live = Processes().ToList();
        for (var a = 0; a < live.Count; a++)
        for (var b = a + 1; b < live.Count; b++)
        {
            var left = live[a].Node.Log;
            var right = live[b].Node.Log;
            var low = Math.Max(left.FirstIndex, right.FirstIndex);
            var high = Math.Min(left.LastIndex, right.LastIndex);
            if (high < low) continue;
            var match = high;
            while (match >= low && !(TermAt(left, match) is { } t && t == TermAt(right, match))) match--;
            if (match < low) continue;
            _leftEntries.Clear();
            _rightEntries.Clear();
            if (left.TryGetEntries(low, match + 1, long.MaxValue, _leftEntries) != StorageStatus.Ok ||
                right.TryGetEntries(low, match + 1, long.MaxValue, _rightEntries) != StorageStatus.Ok) continue;
            for (var i = 0; i < _leftEntries.Count; i++)
            {
                var (x, y) = (_leftEntries[i], _rightEntries[i]);
                if (x.Term != y.Term || x.Type != y.Type || !x.Data.Span.SequenceEqual(y.Data.Span))
                    return $"log matching: nodes {live[a].RaftId} and {live[b].RaftId} agree on {TermAt(left, match)}/{match} but differ at index {x.Index} ({x.Term} vs {y.Term})";
            }
        }
        return null;
    }

    private static ulong? TermAt(RaftLog log, ulong index) => log.TryGetTerm(index, out var term) == StorageStatus.Ok ? term : null;

    private readonly List<Entry> _leftEntries = [];
    private readonly List<Entry> _rightEntries = [];

    private string? MissingCommittedEntry(RaftNode leader)
    {
        foreach (var (index, (term, _)) in _committed)
        {
            if (index < leader.Log.FirstIndex) continue; // compacted into its snapshot
            if (leader.Log.TryGetTerm(index, out var ourTerm) != StorageStatus.Ok || ourTerm != term)
                return $"lacks committed entry {term}/{index}";
        }
        return null;
    }

    private void ScheduleClient()
    {
        var delayUs = _clientRandom.NextInt64(_options.ProposalIntervalMs * 500, _options.ProposalIntervalMs * 1500);
        _simulation.Schedule(delayUs, () =>
        {
            ProposeOne();
            // Clients stop one commit bound before the end, so the run ends quiet and every node can catch up.
            if (_simulation.NowUs < (_options.DurationMs - _options.CommitBoundMs) * 1000) ScheduleClient();
        }, "client");
    }

    private void ProposeOne()
    {
        var live = Processes().ToList();
        if (live.Count == 0) return;
        // Clients mostly find the leader (as etcd clients do after a redirect), sometimes ask a follower, which forwards.
        var leader = live.Where(p => p.Node.Role == RaftRole.Leader).MaxBy(p => p.Node.Term);
        var target = leader is not null && _clientRandom.Chance(0.8) ? leader : live[_clientRandom.NextInt32(live.Count)];
        var value = string.Create(CultureInfo.InvariantCulture, $"v{++_nextValue}");
        var result = target.Propose(Encoding.ASCII.GetBytes(value));
        if (result.Status == ProposeStatus.Appended) _acceptedAtUs[value] = _simulation.NowUs;
        else if (result.Status == ProposeStatus.Dropped) _dropped++;
    }
}

/// <summary>Settings of <see cref="RaftScenario"/>.</summary>
public sealed record RaftScenarioOptions
{
    /// <summary>Cluster size; null draws 3, 5 or 7 from the seed.</summary>
    public int? Nodes { get; init; }
    /// <summary>Total simulated run.</summary>
    public long DurationMs { get; init; } = 30_000;
    /// <summary>Fault-free tail: the liveness phase.</summary>
    public long CalmTailMs { get; init; } = 10_000;
    /// <summary>Time after healing before proposals must commit within the bound (one election and a catch-up).</summary>
    public long SettleAfterHealMs { get; init; } = 3_000;
    /// <summary>The liveness bound: an accepted proposal commits everywhere within this after the cluster settled.</summary>
    public long CommitBoundMs { get; init; } = 2_000;
    /// <summary>Length of one Raft tick.</summary>
    public long TickMs { get; init; } = 20;
    /// <summary>How often (in events) the pairwise log-matching check runs; it always runs at the end.</summary>
    public long LogMatchingStrideEvents { get; init; } = 500;
    /// <summary>Mean time between client proposals.</summary>
    public long ProposalIntervalMs { get; init; } = 10;
    /// <summary>A bug planted on purpose to prove the checkers catch it.</summary>
    public PlantedBug Bug { get; init; }

    internal string ReplayArguments() => string.Join(' ', new[]
    {
        Nodes is { } n ? $"--nodes {n}" : "",
        Bug == PlantedBug.None ? "" : $"--plant-bug {Bug}",
    }.Where(part => part.Length > 0));
}

/// <summary>
/// One simulated Raft node: the I/O-free <see cref="RaftNode"/>, its log kept durably by <see cref="DurableRaftLog"/> (Keel's real
/// <see cref="WriteAheadLog"/>) on the node's simulated disk (synced before any vote, ack or apply that depends on it),
/// a tick timer, and a trivial state machine that reports applied entries to the checker. A restart recovers the WAL
/// from whatever the disk kept (a crash loses or tears unsynced writes) and rebuilds the in-memory Raft storage from it.
/// </summary>
internal sealed class RaftProcess : ISimProcess
{
    // Small segments: the simulated disk keeps files in memory, and several segments exercise rolls and recovery.
    private const long WalSegmentBytes = 256 * 1024;
    private const long RaftLogMemoryBytes = 256;

    private readonly RaftScenario _scenario;
    private readonly ulong[] _voters;
    private NodeContext _context = null!;
    private DurableRaftLog _log = null!;

    public RaftProcess(RaftScenario scenario, int simId, ulong[] voters)
    {
        _scenario = scenario;
        RaftId = (ulong)simId + 1;
        _voters = voters;
    }

    public ulong RaftId { get; }
    public RaftNode Node { get; private set; } = null!;
    public ulong AppliedIndex { get; private set; }
    public long EntriesReadBack => _log.EntriesReadBack;

    public void Start(NodeContext context)
    {
        _context = context;
        _log = DurableRaftLog.Open(new SimStorageDirectory(context.Disk, "wal/"), _voters, WalSegmentBytes);
        var options = new RaftOptions
        {
            Id = RaftId,
            Random = context.Random.Split("raft"),
            PlantedBug = _scenario.Options.Bug == PlantedBug.RaftVoteTwiceInTerm ? RaftPlantedBug.VoteTwiceInTerm : RaftPlantedBug.None,
        };
        Node = new RaftNode(options, _log.Storage);
        AppliedIndex = DurableRaftLog.BootstrapIndex;
        context.SetTimer(_scenario.Options.TickMs);
    }

    public void OnMessage(NodeContext context, int from, object message)
    {
        Node.Step((Message)message);
        HandleReady();
    }

    public void OnTimer(NodeContext context, long timerId, int tag)
    {
        Node.Tick();
        HandleReady();
        context.SetTimer(_scenario.Options.TickMs);
    }

    public ProposeResult Propose(byte[] value)
    {
        var result = Node.Propose(value);
        HandleReady();
        return result;
    }

    private void HandleReady()
    {
        while (Node.HasReady())
        {
            var ready = Node.GetReady();
            _log.Persist(ready);
            foreach (var message in ready.Messages) Send(message);
            foreach (var message in ready.MessagesAfterPersist) Send(message);
            foreach (var entry in ready.CommittedEntries)
            {
                if (entry.Index <= AppliedIndex) continue;
                _scenario.OnApplied(this, entry);
                AppliedIndex = entry.Index;
            }
            // A tiny in-memory log: a lagging follower's catch-up and the log comparison read entries back from the WAL.
            _log.ReleaseAppliedPayloads(AppliedIndex, RaftLogMemoryBytes);
            Node.Advance(ready);
        }
        Node.AssertInvariants();
    }

    private void Send(Message message) =>
        _context.Send((int)message.To - 1, message, sizeBytes: 64 + (int)Math.Min(message.PayloadBytes, int.MaxValue - 64));
}
