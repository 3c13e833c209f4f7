using Keel.Core;

namespace Keel.Simulation;

/// <summary>The code a simulated node runs: a thin driver around I/O-free cores, created anew at every restart.</summary>
public interface ISimProcess
{
    /// <summary>Called when the node boots (first start and every restart); volatile state starts empty.</summary>
    void Start(NodeContext context);

    /// <summary>A message from <paramref name="from"/> arrived.</summary>
    void OnMessage(NodeContext context, int from, object message);

    /// <summary>A timer set with <see cref="NodeContext.SetTimer"/> fired.</summary>
    void OnTimer(NodeContext context, long timerId, int tag);
}

/// <summary>Whether a node is running, paused (a stop-the-world pause: it handles nothing), or crashed.</summary>
public enum NodeState
{
    /// <summary>Added but not yet booted.</summary>
    NotStarted,
    /// <summary>Running and handling events.</summary>
    Up,
    /// <summary>Stopped the world: events wait in a backlog.</summary>
    Paused,
    /// <summary>Down: events are dropped until a restart.</summary>
    Crashed,
    /// <summary>Stopped for good by the operator (a member removed from its cluster): events are dropped, no restart.</summary>
    Decommissioned,
}

/// <summary>
/// A simulated machine: its process, its clock, its disk, and its state. Events for a paused node are held and
/// delivered all at once when the pause ends (the backlog after a GC pause); events for a crashed node are dropped,
/// and timers and messages scheduled for an earlier incarnation never reach a restarted one.
/// </summary>
public sealed class SimNode
{
    private readonly Simulation _simulation;
    private readonly Func<int, ISimProcess> _processFactory;
    private readonly DeterministicRandom _random;
    private readonly List<ScheduledEvent> _backlog = [];
    private readonly List<(long StartUs, long EndUs)> _pauses = [];
    private long _nextTimerNumber;
    private long _pausedUntilUs;

    internal SimNode(Simulation simulation, int id, Func<int, ISimProcess> processFactory, ClockOptions clock, DeterministicRandom random)
    {
        _simulation = simulation;
        Id = id;
        _processFactory = processFactory;
        _random = random;
        Clock = new SimClock(simulation, clock);
        Disk = new SimDisk(random.Split("disk"));
    }

    /// <summary>The node id, 0..N-1.</summary>
    public int Id { get; }

    /// <summary>The current state.</summary>
    public NodeState State { get; private set; }

    /// <summary>Bumped at every boot; events from earlier incarnations are stale.</summary>
    public long Incarnation { get; private set; }

    /// <summary>The node's own clock (skewed, drifting, stepping wall time; drifting monotonic time).</summary>
    public SimClock Clock { get; }

    /// <summary>The node's disk: survives crashes, losing or tearing what was not synced.</summary>
    public SimDisk Disk { get; }

    /// <summary>The running process, or null while crashed.</summary>
    public ISimProcess? Process { get; private set; }

    /// <summary>The context handed to the current incarnation.</summary>
    public NodeContext? Context { get; private set; }

    /// <summary>How many times the node crashed.</summary>
    public int CrashCount { get; private set; }

    /// <summary>True time of the latest crash in microseconds, or -1 if it never crashed.</summary>
    public long LastCrashUs { get; private set; } = -1;

    /// <summary>How many pauses it suffered.</summary>
    public int PauseCount => _pauses.Count;

    /// <summary>Every pause so far as (start, end) in true microseconds, for checkers that must tell a pause from a failure.</summary>
    public IReadOnlyList<(long StartUs, long EndUs)> PauseHistory => _pauses;

    /// <summary>True if the node was paused at any moment in [<paramref name="fromUs"/>, <paramref name="toUs"/>].</summary>
    public bool WasPausedDuring(long fromUs, long toUs) => _pauses.Any(p => p.StartUs <= toUs && p.EndUs >= fromUs);

    /// <summary>Crashes the node now: its process and timers vanish, unsynced disk writes are lost or torn.</summary>
    public void Crash() => GoDown(NodeState.Crashed);

    /// <summary>
    /// Stops the node for good, as an operator stops a member removed from its cluster: like a crash, but it is never
    /// restarted (<see cref="Restart"/> and a nemesis's healing leave it down).
    /// </summary>
    public void Decommission()
    {
        if (State == NodeState.Crashed) State = NodeState.Decommissioned;
        else GoDown(NodeState.Decommissioned);
    }

    private void GoDown(NodeState state)
    {
        if (State is NodeState.Crashed or NodeState.NotStarted or NodeState.Decommissioned) return;
        State = state;
        if (state == NodeState.Crashed)
        {
            CrashCount++;
            LastCrashUs = _simulation.NowUs;
        }
        Process = null;
        Context = null;
        _backlog.Clear();
        Disk.Crash();
        _simulation.Trace(0x43524153 /* CRAS */, Id, CrashCount);
    }

    /// <summary>
    /// Starts a node that has not run yet (a member that joins a running cluster): its first
    /// <see cref="ISimProcess.Start"/> runs now. Does nothing once the node has started.
    /// </summary>
    public void Start()
    {
        if (State != NodeState.NotStarted) return;
        Boot();
    }

    /// <summary>Restarts a crashed node: a fresh process over the same disk.</summary>
    public void Restart()
    {
        if (State != NodeState.Crashed) return;
        Boot();
    }

    /// <summary>
    /// Pauses the node for <paramref name="durationUs"/> of true time: it processes nothing, then its whole backlog at
    /// once, as after a stop-the-world garbage collection.
    /// </summary>
    public void Pause(long durationUs)
    {
        if (State != NodeState.Up || durationUs <= 0) return;
        State = NodeState.Paused;
        _pausedUntilUs = _simulation.NowUs + durationUs;
        _pauses.Add((_simulation.NowUs, _pausedUntilUs));
        _simulation.Enqueue(new ScheduledEvent(EventKind.Resume, Id, Incarnation, 0, null, 0), _pausedUntilUs);
        _simulation.Trace(0x50415553 /* PAUS */, Id, durationUs);
    }

    internal void Boot()
    {
        State = NodeState.Up;
        Incarnation++;
        Process = _processFactory(Id);
        Context = new NodeContext(_simulation, this, _random.Split("incarnation", Incarnation));
        Process.Start(Context);
    }

    internal long NewTimerNumber() => ++_nextTimerNumber;

    internal void Dispatch(in ScheduledEvent scheduled)
    {
        if (scheduled.Incarnation != Incarnation || State is NodeState.Crashed or NodeState.NotStarted or NodeState.Decommissioned) return;
        if (scheduled.Kind == EventKind.Resume)
        {
            if (State == NodeState.Paused && _simulation.NowUs >= _pausedUntilUs) DrainBacklog();
            return;
        }
        if (State == NodeState.Paused)
        {
            _backlog.Add(scheduled);
            return;
        }
        Handle(scheduled);
    }

    private void DrainBacklog()
    {
        State = NodeState.Up;
        // The backlog runs in arrival order, all at the instant the pause ends; handling one may crash or pause the
        // node again, which ends the drain (the rest stays queued or is dropped, as on a real machine).
        var index = 0;
        while (index < _backlog.Count && State == NodeState.Up)
        {
            Handle(_backlog[index]);
            index++;
        }
        if (State is NodeState.Crashed or NodeState.Decommissioned) return;
        _backlog.RemoveRange(0, index);
    }

    private void Handle(in ScheduledEvent scheduled)
    {
        var context = Context!;
        switch (scheduled.Kind)
        {
            case EventKind.Deliver:
                var envelope = (Envelope)scheduled.Payload!;
                Process!.OnMessage(context, envelope.From, envelope.Message);
                break;
            case EventKind.Timer:
                if (context.TakeTimer(scheduled.Number, out var tag)) Process!.OnTimer(context, scheduled.Number, tag);
                break;
        }
    }
}

/// <summary>
/// What a simulated process may touch: its node's clocks, its seeded randomness, the network and its disk. The real
/// server hands the same cores a context backed by the system clock, sockets and files.
/// </summary>
public sealed class NodeContext
{
    private readonly Simulation _simulation;
    private readonly SimNode _node;
    private readonly Dictionary<long, int> _liveTimers = [];

    internal NodeContext(Simulation simulation, SimNode node, DeterministicRandom random)
    {
        _simulation = simulation;
        _node = node;
        Random = random;
    }

    /// <summary>This node's id.</summary>
    public int NodeId => _node.Id;

    /// <summary>This node's wall clock in Unix milliseconds: skewed, drifting, and subject to steps in both directions.</summary>
    public long WallClockMs => _node.Clock.WallUs / 1000;

    /// <summary>This node's monotonic clock in milliseconds: drifts, never steps, never goes backwards.</summary>
    public long MonotonicMs => _node.Clock.MonotonicUs / 1000;

    /// <summary>This node's monotonic clock in microseconds.</summary>
    public long MonotonicUs => _node.Clock.MonotonicUs;

    /// <summary>Seeded randomness for this incarnation.</summary>
    public DeterministicRandom Random { get; }

    /// <summary>This node's disk.</summary>
    public SimDisk Disk => _node.Disk;

    /// <summary>The number of nodes in the simulation.</summary>
    public int ClusterSize => _simulation.Nodes.Count;

    /// <summary>Sends <paramref name="message"/> of <paramref name="sizeBytes"/> to node <paramref name="to"/> through the faulty network.</summary>
    public void Send(int to, object message, int sizeBytes = 64) => _simulation.Network.Send(_node.Id, to, message, sizeBytes);

    /// <summary>Arms a timer that fires after <paramref name="delayMs"/> of this node's monotonic time; returns its id.</summary>
    public long SetTimer(long delayMs, int tag = 0) => SetTimerUs(delayMs * 1000, tag);

    /// <summary>Arms a timer in microseconds of this node's monotonic time; returns its id.</summary>
    public long SetTimerUs(long delayUs, int tag = 0)
    {
        Invariant.Check(delayUs >= 0, "a timer cannot fire in the past");
        var number = _node.NewTimerNumber();
        _liveTimers[number] = tag;
        var trueDelayUs = _node.Clock.TrueDurationUs(delayUs);
        _simulation.Enqueue(new ScheduledEvent(EventKind.Timer, _node.Id, _node.Incarnation, number, null, (ulong)tag), _simulation.NowUs + trueDelayUs);
        return number;
    }

    /// <summary>Cancels a timer; returns false if it already fired or was cancelled.</summary>
    public bool CancelTimer(long timerId) => _liveTimers.Remove(timerId);

    /// <summary>Folds an observation into the simulation's trace hash.</summary>
    public void Trace(long a, long b = 0) => _simulation.Trace(_node.Id, a, b);

    internal bool TakeTimer(long number, out int tag) => _liveTimers.Remove(number, out tag);
}
