using System.Buffers.Binary;
using System.IO.Hashing;
using Keel.Core;

namespace Keel.Simulation;

/// <summary>
/// The deterministic simulation kernel: virtual time, one single-threaded event queue totally ordered by
/// (virtual time, sequence number), a root seed split per component, simulated nodes with their own clocks and
/// disks, and a faulty network. Every event processed is folded into a trace hash, so two runs of the same seed can be
/// compared by one number.
/// </summary>
/// <remarks>
/// The shape follows FoundationDB's simulation and TigerBeetle's VOPR (see <c>shared/reference/simulation.md</c>):
/// nothing here reads a real clock, starts a thread or draws unseeded randomness, so a seed replays exactly.
/// </remarks>
public sealed class Simulation
{
    private readonly PriorityQueue<ScheduledEvent, EventOrder> _queue = new(EventOrderComparer.Instance);
    private readonly XxHash64 _trace = new();
    private readonly List<SimNode> _nodes = [];
    private readonly List<Func<string?>> _invariants = [];
    private long _nextSequence;
    private long _eventsThisInstant;

    /// <summary>Creates a simulation whose every random choice derives from <paramref name="seed"/>.</summary>
    public Simulation(ulong seed, NetworkOptions? network = null)
    {
        Seed = seed;
        Random = new DeterministicRandom(seed);
        Network = new SimNetwork(this, network ?? new NetworkOptions(), Random.Split("network"));
    }

    /// <summary>The root seed.</summary>
    public ulong Seed { get; }

    /// <summary>The root random generator; components take <see cref="DeterministicRandom.Split(string)"/> children.</summary>
    public DeterministicRandom Random { get; }

    /// <summary>The simulated network connecting the nodes.</summary>
    public SimNetwork Network { get; }

    /// <summary>True virtual time in microseconds since the start of the simulation (nodes see their own skewed clocks).</summary>
    public long NowUs { get; private set; }

    /// <summary>True virtual time in milliseconds.</summary>
    public long NowMs => NowUs / 1000;

    /// <summary>
    /// How many events may run at one virtual instant before the run is declared a livelock (a zero-delay timer that
    /// re-arms itself, a message storm with zero latency): the simulator reports it instead of hanging.
    /// </summary>
    public long MaxEventsPerInstant { get; init; } = 1_000_000;

    /// <summary>Events processed so far.</summary>
    public long EventCount { get; private set; }

    /// <summary>Events still queued.</summary>
    public int PendingEventCount => _queue.Count;

    /// <summary>The nodes, indexed by id (ids are 0..N-1).</summary>
    public IReadOnlyList<SimNode> Nodes => _nodes;

    /// <summary>The hash of every event processed so far: equal for equal seeds on every run and machine.</summary>
    public ulong TraceHash => _trace.GetCurrentHashAsUInt64();

    /// <summary>Adds a node running the process that <paramref name="processFactory"/> creates (again after every restart).</summary>
    public SimNode AddNode(Func<int, ISimProcess> processFactory, ClockOptions? clock = null)
    {
        var id = _nodes.Count;
        var node = new SimNode(this, id, processFactory, clock ?? new ClockOptions(), Random.Split("node", id));
        _nodes.Add(node);
        Network.OnNodeAdded(id);
        return node;
    }

    /// <summary>Starts every node that is not running yet (each gets its first <see cref="ISimProcess.Start"/> now).</summary>
    public void StartAll()
    {
        foreach (var node in _nodes)
            if (node.State == NodeState.NotStarted) node.Boot();
    }

    /// <summary>
    /// Registers a check run after every event; it returns null when all is well, or a description of the violation,
    /// which stops the run with a <see cref="SimulationFailureException"/>.
    /// </summary>
    public void AddInvariant(Func<string?> check) => _invariants.Add(check);

    /// <summary>Schedules a global action (a fault, a client request) after <paramref name="delayUs"/> of true time.</summary>
    public void Schedule(long delayUs, Action action, string label = "")
    {
        Invariant.Check(delayUs >= 0, "events cannot be scheduled in the past");
        Enqueue(new ScheduledEvent(EventKind.Action, -1, 0, 0, action, DeterministicRandom.StableHash(label)), NowUs + delayUs);
    }

    /// <summary>Folds extra data into the trace hash (a scenario's observations: values read, verdicts given).</summary>
    public void Trace(long a, long b = 0, long c = 0)
    {
        Span<byte> buffer = stackalloc byte[24];
        BinaryPrimitives.WriteInt64LittleEndian(buffer, a);
        BinaryPrimitives.WriteInt64LittleEndian(buffer[8..], b);
        BinaryPrimitives.WriteInt64LittleEndian(buffer[16..], c);
        _trace.Append(buffer);
    }

    /// <summary>Runs events until the queue is empty or true time passes <paramref name="untilUs"/>; returns events run.</summary>
    public long RunUntil(long untilUs)
    {
        var before = EventCount;
        while (_queue.TryPeek(out _, out var order) && order.TimeUs <= untilUs)
        {
            var scheduled = _queue.Dequeue();
            if (order.TimeUs == NowUs)
            {
                if (++_eventsThisInstant > MaxEventsPerInstant)
                    throw new SimulationFailureException(Seed, NowUs, EventCount, TraceHash,
                        $"livelock: more than {MaxEventsPerInstant} events at one instant");
            }
            else
            {
                _eventsThisInstant = 1;
            }
            NowUs = order.TimeUs;
            Execute(scheduled, order);
        }
        if (NowUs < untilUs) NowUs = untilUs;
        return EventCount - before;
    }

    /// <summary>Runs for <paramref name="durationUs"/> more microseconds of true time.</summary>
    public long RunFor(long durationUs) => RunUntil(NowUs + durationUs);

    internal void Enqueue(ScheduledEvent scheduled, long timeUs) =>
        _queue.Enqueue(scheduled, new EventOrder(timeUs, _nextSequence++));

    private void Execute(ScheduledEvent scheduled, EventOrder order)
    {
        EventCount++;
        Trace(order.TimeUs, ((long)scheduled.Kind << 32) | (uint)scheduled.NodeId, scheduled.TraceTag);
        switch (scheduled.Kind)
        {
            case EventKind.Action:
                ((Action)scheduled.Payload!).Invoke();
                break;
            default:
                _nodes[scheduled.NodeId].Dispatch(scheduled);
                break;
        }
        CheckInvariants();
    }

    private void CheckInvariants()
    {
        foreach (var check in _invariants)
        {
            var violation = check();
            if (violation is not null)
                throw new SimulationFailureException(Seed, NowUs, EventCount, TraceHash, violation);
        }
    }
}

/// <summary>What an event does when it fires.</summary>
internal enum EventKind { Action = 1, Deliver = 2, Timer = 3, Resume = 4 }

/// <summary>One queued event. Node events carry the incarnation they were scheduled for: a crash makes them stale.</summary>
internal readonly record struct ScheduledEvent(EventKind Kind, int NodeId, long Incarnation, long Number, object? Payload, ulong TraceTagUnsigned)
{
    public long TraceTag => unchecked((long)TraceTagUnsigned);
}

internal readonly record struct EventOrder(long TimeUs, long Sequence);

internal sealed class EventOrderComparer : IComparer<EventOrder>
{
    public static readonly EventOrderComparer Instance = new();
    public int Compare(EventOrder x, EventOrder y)
    {
        var byTime = x.TimeUs.CompareTo(y.TimeUs);
        return byTime != 0 ? byTime : x.Sequence.CompareTo(y.Sequence);
    }
}

/// <summary>
/// A simulated run broke an invariant. Carries the seed, the moment and the trace hash at the failure, so the run can
/// be replayed exactly.
/// </summary>
public sealed class SimulationFailureException : Exception
{
    /// <summary>Creates the failure report.</summary>
    public SimulationFailureException(ulong seed, long timeUs, long eventNumber, ulong traceHash, string violation, Exception? inner = null)
        : base($"seed {seed}: {violation} (at t={timeUs / 1000.0:F3} ms, event {eventNumber}, trace {traceHash:x16})", inner)
    {
        Seed = seed;
        TimeUs = timeUs;
        EventNumber = eventNumber;
        TraceHash = traceHash;
        Violation = violation;
    }

    /// <summary>The seed that reproduces the failure.</summary>
    public ulong Seed { get; }
    /// <summary>True virtual time of the failure.</summary>
    public long TimeUs { get; }
    /// <summary>The number of the event during which it failed.</summary>
    public long EventNumber { get; }
    /// <summary>The trace hash at the failure: a replay reaches the same value.</summary>
    public ulong TraceHash { get; }
    /// <summary>What was violated.</summary>
    public string Violation { get; }
}
