using System.Globalization;
using System.Text;
using Keel.Core;
using Keel.Linearizability;
using Keel.Mvcc;
using Keel.Node;
using Keel.Raft;
using Keel.Simulation;
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
    public string ReplayArguments => _options.Nodes is { } n ? $"--nodes {n}" : "";
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
            simulation.AddNode(id => new KeelProcess(this, id, voters), plan.DrawClock(random.Split("clock", i)));
        _random = random.Split("clients");
        simulation.AddInvariant(CheckStep);
        var faultWindowMs = _options.DurationMs - _options.CalmTailMs;
        _healAtUs = faultWindowMs * 1000;
        var nemesis = new Nemesis(simulation, plan);
        simulation.StartAll();
        nemesis.Start(faultWindowMs);
        for (var client = 0; client < _options.Clients; client++)
        {
            var id = client;
            simulation.Schedule(_random.NextInt64(1_000, 50_000), () => IssueNext(id), "client");
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
        if (!live.Any(p => p.Node.IsLeader)) return "liveness: no leader after healing";
        if (_completedAfterHeal == 0) return "liveness: no request completed after healing";
        return CheckReplicas();
    }

    /// <inheritdoc />
    public string Summary() => string.Create(CultureInfo.InvariantCulture,
        $"{NodeCount} nodes; {_completed} ops completed ({_completedAfterHeal} after healing), {_unknown} unknown, {_refused} refused; history {_history.Count}");

    internal IEnumerable<KeelProcess> Processes()
    {
        foreach (var node in _simulation.Nodes)
            if (node.Process is KeelProcess process && node.State != NodeState.Crashed && process.Started) yield return process;
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
            }
        }
        return null;
    }

    private sealed record ClientOp(int Client, ulong RequestId, KvInput Input, long CallUs);

    private void IssueNext(int client)
    {
        if (_simulation.NowUs >= (_options.DurationMs - 200) * 1000) return;
        var live = Processes().ToList();
        if (live.Count == 0)
        {
            _simulation.Schedule(20_000, () => IssueNext(client), "client-retry");
            return;
        }
        var leader = live.Where(p => p.Node.IsLeader).MaxBy(p => p.Node.Raft.Term);
        var target = leader is not null && _random.Chance(_options.LeaderAffinity) ? leader : live[_random.NextInt32(live.Count)];
        var key = _options.Keys[_random.NextInt32(_options.Keys.Length)];
        var roll = _random.NextDouble();
        var requestId = ++_nextRequestId;
        KvInput input;
        if (roll < 0.45) input = KvInput.Get(key);
        else if (roll < 0.75) input = KvInput.Put(key, NewValue());
        else if (roll < 0.80) input = KvInput.Delete(key);
        else input = KvInput.Cas(key, LastValue(key), NewValue());
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
            case KvOperationKind.Put:
                target.Submit(requestId, KvCommand.Of(new PutRequest { Key = key8, Value = Encoding.UTF8.GetBytes(input.Value!) }));
                break;
            case KvOperationKind.Delete:
                target.Submit(requestId, KvCommand.Of(new DeleteRangeRequest { Key = key8 }));
                break;
            default:
                target.Submit(requestId, KvCommand.Of(new TxnRequest
                {
                    Compares = [new Compare { Key = key8, Target = CompareTarget.Value, Result = CompareResult.Equal, ValueOperand = Encoding.UTF8.GetBytes(input.Expected!) }],
                    Success = [RequestOp.Of(new PutRequest { Key = key8, Value = Encoding.UTF8.GetBytes(input.Value!) })],
                }));
                break;
        }
    }

    private readonly Dictionary<string, string> _lastValue = new(StringComparer.Ordinal);

    private string NewValue() => "v" + (++_nextValue).ToString(CultureInfo.InvariantCulture);

    // CAS expects a value recently written to the key, so that some swaps succeed.
    private string LastValue(string key) => _lastValue.TryGetValue(key, out var value) ? value : "v0";

    internal void OnResponse(KvResult result)
    {
        if (!_inFlight.Remove(result.RequestId, out var op)) return; // the client already gave up
        if (result.Error is { } error)
        {
            if (error.IsDefinite) _refused++;
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
    internal bool UnsafeLocalReadsOnLeader => _options.UnsafeLocalReadsOnLeader;
}

/// <summary>One simulated machine running a <see cref="KeelNode"/>: routes its outbox to the network and the clients.</summary>
internal sealed class KeelProcess : ISimProcess
{
    private readonly KvScenario _scenario;
    private readonly ulong[] _voters;
    private readonly List<Message> _messages = [];
    private readonly List<KvResult> _responses = [];
    private NodeContext _context = null!;

    public KeelProcess(KvScenario scenario, int simId, ulong[] voters)
    {
        _scenario = scenario;
        RaftId = (ulong)simId + 1;
        _voters = voters;
    }

    public ulong RaftId { get; }
    public KeelNode Node { get; private set; } = null!;
    public bool Started { get; private set; }

    public void Start(NodeContext context)
    {
        _context = context;
        Node = KeelNode.Open(new KeelNodeOptions
        {
            NodeId = RaftId,
            Voters = _voters,
            Random = context.Random.Split("keel"),
            TickMs = _scenario.TickMs,
            RequestTimeoutMs = 2_000,
            WalSegmentSizeBytes = 256 * 1024,
            UnsafeLocalReadsOnLeader = _scenario.UnsafeLocalReadsOnLeader,
        }, new SimStorageDirectory(context.Disk, "wal/"));
        Started = true;
        Node.Tick(context.MonotonicMs, context.WallClockMs);
        Drain();
        context.SetTimer(_scenario.TickMs);
    }

    public void OnMessage(NodeContext context, int from, object message)
    {
        Node.Step((Message)message);
        Drain();
    }

    public void OnTimer(NodeContext context, long timerId, int tag)
    {
        Node.Tick(context.MonotonicMs, context.WallClockMs);
        Drain();
        context.SetTimer(_scenario.TickMs);
    }

    public void Submit(ulong requestId, KvCommand command)
    {
        Node.Submit(requestId, command);
        Drain();
    }

    public void Read(ulong requestId, RangeRequest request, bool linearizable)
    {
        Node.Read(requestId, request, linearizable);
        Drain();
    }

    private void Drain()
    {
        _messages.Clear();
        _responses.Clear();
        Node.Outbox.DrainTo(_messages, _responses);
        foreach (var message in _messages)
            _context.Send((int)message.To - 1, message, sizeBytes: 64 + (int)Math.Min(message.PayloadBytes, int.MaxValue - 64));
        // Copied: answering a client may make it issue its next request to this very node.
        foreach (var response in _responses.ToArray()) _scenario.OnResponse(response);
    }
}
