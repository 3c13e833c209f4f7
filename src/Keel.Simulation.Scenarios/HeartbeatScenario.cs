using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Keel.Core;
using Keel.Heartbeat;
using Keel.HybridClock;

namespace Keel.Simulation.Scenarios;

/// <summary>The failure detectors compared by <see cref="HeartbeatScenario"/>.</summary>
public enum DetectorKind
{
    /// <summary>Phi-accrual with Healthy/Suspect/Failed states and local health awareness (Keel's detector).</summary>
    PhiAccrual,
    /// <summary>A fixed 5 s silence timeout.</summary>
    FixedFiveSeconds,
    /// <summary>A fixed 3 s silence timeout: as tight as a fixed timeout can be made against 3 s pauses.</summary>
    FixedThreeSeconds,
    /// <summary>Kubernetes' node-monitor grace period: 40 s of silence.</summary>
    KubernetesGracePeriod,
}

/// <summary>
/// Nodes heartbeat each other over a lossy network (1% loss, plus swarm-drawn duplication and reordering) while the
/// nemesis pauses them for up to 3 s and steps their wall clocks; one node really crashes mid-run and restarts much
/// later. Every node watches every other with each <see cref="DetectorKind"/>, so the run measures false "Failed"
/// verdicts and time to detect the real crash for each detector side by side. Heartbeats carry hybrid-clock
/// timestamps, and after every event the checker verifies happens-before and per-node monotonicity across restarts.
/// </summary>
public sealed class HeartbeatScenario : ISimulationScenario
{
    private readonly HeartbeatScenarioOptions _options;
    private readonly List<Verdict> _verdicts = [];
    private readonly HybridTimestamp[] _lastIssued;
    private readonly long[] _rejectedRemotes;
    private readonly long[,] _lastHeardUs;
    private Simulation _simulation = null!;
    private string? _violation;
    private long _crashAtUs = -1;
    private long _restartAtUs = -1;

    /// <summary>Creates the scenario.</summary>
    public HeartbeatScenario(HeartbeatScenarioOptions? options = null)
    {
        _options = options ?? new HeartbeatScenarioOptions();
        _lastIssued = new HybridTimestamp[_options.Nodes];
        _rejectedRemotes = new long[_options.Nodes];
        _lastHeardUs = new long[_options.Nodes, _options.Nodes];
    }

    /// <inheritdoc />
    public string Name => "heartbeat";

    /// <inheritdoc />
    public string ReplayArguments => _options.ReplayArguments();

    /// <inheritdoc />
    public long DurationMs => _options.DurationMs;

    /// <summary>The node that really crashes.</summary>
    public int Victim { get; private set; }

    /// <summary>When the victim crashed, in true milliseconds.</summary>
    public long CrashAtMs => _crashAtUs / 1000;

    /// <summary>Every Failed verdict: who judged whom, with which detector, when, and whether the accused was really down.</summary>
    public IReadOnlyList<Verdict> Verdicts => _verdicts;

    /// <inheritdoc />
    public FaultPlan DrawPlan(DeterministicRandom random)
    {
        // Loss and pauses are always on (the experiment's conditions); the rest is swarm-drawn. No partitions and no
        // nemesis crashes: the one real crash is the scenario's own, so every other silence is a false alarm.
        var swarm = FaultPlan.Draw(random, new FaultLimits
        {
            MaxLossProbability = 0,
            Partitions = false,
            Crashes = false,
            MaxPauseMs = _options.MaxPauseMs,
            MaxClockStepMs = _options.MaxClockStepMs,
            MaxDuplicateProbability = 0.05,
            MaxReorderProbability = 0.05,
        });
        return swarm with
        {
            LossProbability = _options.LossProbability,
            MeanPauseIntervalMs = random.NextInt64(2_000, 10_000),
            MaxPauseMs = _options.MaxPauseMs,
            MeanCrashIntervalMs = _options.NemesisCrashes ? random.NextInt64(2_000, 10_000) : 0,
            MaxRestartDelayMs = 1_000,
        };
    }

    /// <inheritdoc />
    public void Build(Simulation simulation, FaultPlan plan)
    {
        _simulation = simulation;
        var random = simulation.Random.Split("scenario");
        for (var i = 0; i < _options.Nodes; i++)
            simulation.AddNode(id => new HeartbeatProcess(this, id), plan.DrawClock(random.Split("clock", i)));
        Victim = random.NextInt32(_options.Nodes);
        _crashAtUs = random.NextInt64(_options.CrashWindowStartMs, _options.CrashWindowEndMs) * 1000;
        _restartAtUs = _crashAtUs + _options.DownForMs * 1000;
        simulation.Schedule(_crashAtUs, () => simulation.Nodes[Victim].Crash(), "crash-victim");
        simulation.Schedule(_restartAtUs, () => simulation.Nodes[Victim].Restart(), "restart-victim");
        simulation.AddInvariant(() => _violation);
        // Extra crashes (if on) spare the victim, whose crash and restart the scenario times itself.
        var nemesis = new Nemesis(simulation, plan)
        {
            MayCrash = node => node != Victim,
            MaxCrashedAtOnce = 1,
            MinPauseSpacingMs = _options.MinPauseSpacingMs,
        };
        simulation.StartAll();
        nemesis.Start(_options.DurationMs - _options.CalmTailMs);
    }

    /// <inheritdoc />
    public string? Finish(Simulation simulation)
    {
        if (_options.EnforceGoals)
        {
            var falsePhi = _verdicts.Count(v => v.Detector == DetectorKind.PhiAccrual && !v.AccusedWasDown);
            if (falsePhi > 0)
            {
                var first = _verdicts.First(v => v.Detector == DetectorKind.PhiAccrual && !v.AccusedWasDown);
                return $"phi-accrual gave {falsePhi} false Failed verdict(s), the first by node {first.Monitor} on node {first.Accused} " +
                    $"at {first.AtUs / 1000} ms; its last heartbeat received was sent at {first.LastHeardSentAtUs / 1000} ms; " +
                    $"pauses in the 10 s before: accused {RecentPauses(first.Accused, first.AtUs)}, monitor {RecentPauses(first.Monitor, first.AtUs)}";
            }
            foreach (var (monitor, detectionMs) in DetectionTimesMs(DetectorKind.PhiAccrual, onlyUndisturbed: true))
            {
                if (detectionMs is null) return $"phi-accrual on node {monitor} never detected the crash of node {Victim}";
                if (detectionMs > _options.DetectionGoalMs) return $"phi-accrual on node {monitor} took {detectionMs} ms to detect the crash of node {Victim} (goal {_options.DetectionGoalMs} ms)";
            }
        }
        // Liveness: after the restart and the calm tail, every live node sees every other node Healthy again.
        foreach (var node in simulation.Nodes)
        {
            if (node.Process is not HeartbeatProcess process) continue;
            foreach (var peer in process.Monitors[DetectorKind.PhiAccrual].Peers)
            {
                var state = process.Monitors[DetectorKind.PhiAccrual].StateOf(peer);
                if (state != HealthState.Healthy) return $"after healing, node {node.Id} still sees node {peer} as {state}";
            }
        }
        return null;
    }

    /// <summary>
    /// For each monitoring node, how long after the crash its detector first declared the victim Failed (null: never).
    /// With <paramref name="onlyUndisturbed"/>, monitors that were themselves paused during the detection window are
    /// left out: a paused process cannot detect anything, whatever its detector.
    /// </summary>
    public IEnumerable<(int Monitor, long? DetectionMs)> DetectionTimesMs(DetectorKind detector, bool onlyUndisturbed)
    {
        for (var monitor = 0; monitor < _options.Nodes; monitor++)
        {
            if (monitor == Victim) continue;
            var first = _verdicts.FirstOrDefault(v => v.Detector == detector && v.Monitor == monitor && v.Accused == Victim && v.AccusedWasDown);
            var detectionMs = first is null ? (long?)null : first.AtUs / 1000 - CrashAtMs;
            var windowEndUs = _crashAtUs + (detectionMs ?? _options.DownForMs) * 1000;
            if (onlyUndisturbed && _simulation.Nodes[monitor].WasPausedDuring(_crashAtUs - 1_000_000, windowEndUs)) continue;
            yield return (monitor, detectionMs);
        }
    }

    private string RecentPauses(int node, long atUs) => "[" + string.Join(", ", _simulation.Nodes[node].PauseHistory
        .Where(p => p.EndUs >= atUs - 10_000_000 && p.StartUs <= atUs)
        .Select(p => $"{p.StartUs / 1000}-{p.EndUs / 1000} ms")) + "]";

    /// <inheritdoc />
    public string Summary()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"victim node {Victim} crashed at {CrashAtMs / 1000.0:F1} s, restarted at {_restartAtUs / 1_000_000.0:F1} s; ");
        text.Append(CultureInfo.InvariantCulture, $"hlc remote timestamps rejected as too far ahead: {_rejectedRemotes.Sum()}\n");
        foreach (var kind in Enum.GetValues<DetectorKind>())
        {
            var falseVerdicts = _verdicts.Count(v => v.Detector == kind && !v.AccusedWasDown);
            var detections = DetectionTimesMs(kind, onlyUndisturbed: false).Select(d => d.DetectionMs).ToList();
            var detected = detections.Where(d => d is not null).Select(d => d!.Value).ToList();
            var detection = detected.Count == 0 ? "never" : $"{detected.Min() / 1000.0:F2}-{detected.Max() / 1000.0:F2} s";
            text.Append(CultureInfo.InvariantCulture, $"  {kind,-22} false Failed verdicts: {falseVerdicts,3}   crash detected after: {detection} ({detected.Count}/{detections.Count} monitors)\n");
        }
        return text.ToString().TrimEnd();
    }

    /// <summary>Aggregates many runs into the Markdown table of <c>docs/failure-detection.md</c>.</summary>
    public static string Table(IReadOnlyList<HeartbeatScenario> runs)
    {
        var text = new StringBuilder();
        text.AppendLine("| detector | false Failed verdicts (total over all runs) | runs with a false verdict | detection p50 | detection p99 | detection max | monitors that detected within 5 s |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        foreach (var kind in Enum.GetValues<DetectorKind>())
        {
            var falseTotal = runs.Sum(r => r.Verdicts.Count(v => v.Detector == kind && !v.AccusedWasDown));
            var runsWithFalse = runs.Count(r => r.Verdicts.Any(v => v.Detector == kind && !v.AccusedWasDown));
            var detections = runs.SelectMany(r => r.DetectionTimesMs(kind, onlyUndisturbed: true)).ToList();
            var times = detections.Where(d => d.DetectionMs is not null).Select(d => d.DetectionMs!.Value).Order().ToList();
            string Percentile(double p) => times.Count == 0 ? "never" : $"{times[(int)Math.Min(times.Count - 1, Math.Floor(p * times.Count))] / 1000.0:F2} s";
            var within = detections.Count(d => d.DetectionMs is not null && d.DetectionMs <= 5_000);
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {Describe(kind)} | {falseTotal} | {runsWithFalse} of {runs.Count} | {Percentile(0.50)} | {Percentile(0.99)} | {(times.Count == 0 ? "never" : $"{times[^1] / 1000.0:F2} s")} | {within} of {detections.Count} |");
        }
        return text.ToString();
    }

    private static string Describe(DetectorKind kind) => kind switch
    {
        DetectorKind.PhiAccrual => "phi-accrual (Keel)",
        DetectorKind.FixedFiveSeconds => "fixed 5 s timeout",
        DetectorKind.FixedThreeSeconds => "fixed 3 s timeout",
        _ => "Kubernetes 40 s grace period",
    };

    internal HeartbeatScenarioOptions Options => _options;

    internal void OnIssued(int node, HybridTimestamp timestamp)
    {
        if (timestamp <= _lastIssued[node])
            _violation ??= $"hybrid clock of node {node} went backwards or repeated: issued {timestamp} after {_lastIssued[node]}";
        _lastIssued[node] = timestamp;
        _simulation.Trace(node, unchecked((long)timestamp.Raw));
    }

    internal void OnReceived(int node, HybridTimestamp sent, HybridTimestamp received)
    {
        if (received <= sent)
            _violation ??= $"happens-before violated on node {node}: received at {received}, not after the send at {sent}";
    }

    internal void OnRejected(int node) => _rejectedRemotes[node]++;

    internal long NowUs => _simulation.NowUs;

    internal void OnHeard(int monitor, int peer, long sentAtUs) =>
        _lastHeardUs[monitor, peer] = Math.Max(_lastHeardUs[monitor, peer], sentAtUs);

    internal void OnTransition(int monitor, DetectorKind detector, HealthTransition transition)
    {
        _simulation.Trace(monitor, (long)transition.Peer << 8 | (long)detector << 4 | (long)transition.To);
        if (transition.To != HealthState.Failed) return;
        // A verdict is true when the accused really crashed after sending the last heartbeat the monitor received: the
        // silence was a failure (even if the node has restarted since and its first new heartbeat is still in flight).
        var accused = (int)transition.Peer;
        var accusedDown = _simulation.Nodes[accused].LastCrashUs >= _lastHeardUs[monitor, accused];
        _verdicts.Add(new Verdict(monitor, accused, detector, _simulation.NowUs, accusedDown, _lastHeardUs[monitor, accused]));
    }
}

/// <summary>One Failed verdict.</summary>
/// <param name="Monitor">The node that gave it.</param>
/// <param name="Accused">The node declared Failed.</param>
/// <param name="Detector">Which detector.</param>
/// <param name="AtUs">True time of the verdict.</param>
/// <param name="AccusedWasDown">Whether the accused had really crashed (false = a false verdict).</param>
/// <param name="LastHeardSentAtUs">True send time of the accused's last heartbeat that the monitor had received.</param>
public sealed record Verdict(int Monitor, int Accused, DetectorKind Detector, long AtUs, bool AccusedWasDown, long LastHeardSentAtUs);

/// <summary>Settings of <see cref="HeartbeatScenario"/>.</summary>
public sealed record HeartbeatScenarioOptions
{
    /// <summary>Cluster size.</summary>
    public int Nodes { get; init; } = 5;
    /// <summary>Heartbeat interval; 10-20% jitter is added.</summary>
    public long HeartbeatIntervalMs { get; init; } = 200;
    /// <summary>Jitter as a fraction of the interval.</summary>
    public double JitterFraction { get; init; } = 0.15;
    /// <summary>How often each monitor evaluates its peers.</summary>
    public long CheckIntervalMs { get; init; } = 100;
    /// <summary>Packet loss.</summary>
    public double LossProbability { get; init; } = 0.01;
    /// <summary>Longest pause the nemesis inflicts.</summary>
    public long MaxPauseMs { get; init; } = 3_000;
    /// <summary>
    /// Quiet time between two pauses of the same node. Without it two chained 3 s pauses are one 6 s stall, which no
    /// detector can tell from a crash within 5 s; the fault model is "pauses of up to 3 s", so they are kept apart.
    /// </summary>
    public long MinPauseSpacingMs { get; init; } = 1_000;
    /// <summary>Largest wall-clock step the nemesis may apply, either direction.</summary>
    public long MaxClockStepMs { get; init; } = 2_000;
    /// <summary>Whether the nemesis also crashes and quickly restarts other nodes (exercises restart paths).</summary>
    public bool NemesisCrashes { get; init; }
    /// <summary>Earliest crash time of the victim.</summary>
    public long CrashWindowStartMs { get; init; } = 15_000;
    /// <summary>Latest crash time of the victim.</summary>
    public long CrashWindowEndMs { get; init; } = 25_000;
    /// <summary>How long the victim stays down (long enough for the 40 s grace period to fire).</summary>
    public long DownForMs { get; init; } = 45_000;
    /// <summary>Total run.</summary>
    public long DurationMs { get; init; } = 85_000;
    /// <summary>Fault-free time at the end, for the liveness check.</summary>
    public long CalmTailMs { get; init; } = 10_000;
    /// <summary>Detection goal for phi-accrual.</summary>
    public long DetectionGoalMs { get; init; } = 5_000;
    /// <summary>Fail the run when phi-accrual gives a false verdict or misses the detection goal.</summary>
    public bool EnforceGoals { get; init; } = true;
    /// <summary>A bug planted on purpose (to prove the checkers work).</summary>
    public PlantedBug Bug { get; init; }

    internal string ReplayArguments()
    {
        var defaults = new HeartbeatScenarioOptions();
        return string.Join(' ', new[]
        {
            Nodes == defaults.Nodes ? "" : $"--nodes {Nodes}",
            MaxClockStepMs == defaults.MaxClockStepMs ? "" : $"--max-clock-step-ms {MaxClockStepMs}",
            NemesisCrashes ? "--nemesis-crashes" : "",
            Bug == PlantedBug.None ? "" : $"--plant-bug {Bug}",
        }.Where(part => part.Length > 0));
    }
}

/// <summary>
/// The driver of one simulated node: a heartbeat schedule, a hybrid clock whose upper bound is persisted to the
/// node's disk, and one <see cref="HeartbeatMonitor"/> per detector kind. It is the thin shell around the cores that
/// a real host would be, with the simulator's clock, network and disk behind it.
/// </summary>
internal sealed class HeartbeatProcess : ISimProcess
{
    private const int SendTimer = 1;
    private const int CheckTimer = 2;
    private const string UpperBoundFile = "hlc-upper-bound";

    private readonly HeartbeatScenario _scenario;
    private readonly int _id;
    private readonly List<HealthTransition> _transitions = [];
    private HybridLogicalClock _clock = null!;
    private HeartbeatSchedule _schedule = null!;

    public HeartbeatProcess(HeartbeatScenario scenario, int id)
    {
        _scenario = scenario;
        _id = id;
    }

    public SortedDictionary<DetectorKind, HeartbeatMonitor> Monitors { get; } = [];

    public void Start(NodeContext context)
    {
        var options = _scenario.Options;
        var disk = context.Disk;
        if (disk.Exists(UpperBoundFile) && disk.Length(UpperBoundFile) == 8 && options.Bug != PlantedBug.HlcForgetsUpperBound)
        {
            Span<byte> bound = stackalloc byte[8];
            disk.Read(UpperBoundFile, 0, bound);
            _clock = HybridLogicalClock.Restore(null, BinaryPrimitives.ReadInt64LittleEndian(bound));
        }
        else
        {
            _clock = new HybridLogicalClock();
        }
        var nowMs = context.MonotonicMs;
        _schedule = new HeartbeatSchedule(new HeartbeatScheduleOptions { IntervalMs = options.HeartbeatIntervalMs, JitterFraction = options.JitterFraction },
            context.Random.Split("heartbeat-schedule"), nowMs);
        var monitorOptions = new HeartbeatMonitorOptions
        {
            CheckIntervalMs = options.CheckIntervalMs,
            Detector = new PhiAccrualOptions
            {
                FirstHeartbeatEstimateMs = options.HeartbeatIntervalMs,
                // The pauses this deployment must ride out (3 s) plus one heartbeat of margin.
                AcceptableHeartbeatPauseMs = options.MaxPauseMs + options.HeartbeatIntervalMs,
                // Gaps of five missed heartbeats or more are pauses, budgeted above: keep them out of the statistics.
                MaxRecordedIntervalMs = 5 * options.HeartbeatIntervalMs,
            },
        };
        Monitors[DetectorKind.PhiAccrual] = new HeartbeatMonitor(monitorOptions);
        Monitors[DetectorKind.FixedFiveSeconds] = new HeartbeatMonitor(monitorOptions, _ => new FixedTimeoutFailureDetector(5_000));
        Monitors[DetectorKind.FixedThreeSeconds] = new HeartbeatMonitor(monitorOptions, _ => new FixedTimeoutFailureDetector(3_000));
        Monitors[DetectorKind.KubernetesGracePeriod] = new HeartbeatMonitor(monitorOptions, _ => FixedTimeoutFailureDetector.KubernetesGracePeriod());
        for (var peer = 0; peer < context.ClusterSize; peer++)
        {
            if (peer == _id) continue;
            foreach (var monitor in Monitors.Values) monitor.AddPeer((ulong)peer, nowMs);
        }
        context.SetTimer(_schedule.NextSendMs - nowMs, SendTimer);
        context.SetTimer(options.CheckIntervalMs, CheckTimer);
    }

    public void OnMessage(NodeContext context, int from, object message)
    {
        var heartbeat = (HeartbeatMessage)message;
        var wallMs = context.WallClockMs;
        HybridTimestamp received;
        bool accepted;
        if (_scenario.Options.Bug == PlantedBug.HlcIgnoresRemote)
        {
            received = _clock.Now(wallMs); // the planted bug: the remote timestamp is never looked at
            accepted = true;
        }
        else
        {
            accepted = _clock.TryUpdate(heartbeat.SentAt, wallMs, out received);
        }
        if (accepted)
        {
            _scenario.OnReceived(_id, heartbeat.SentAt, received);
        }
        else
        {
            // Too far ahead: counted by the clock, never adopted. The heartbeat still proves the sender is alive.
            _scenario.OnRejected(_id);
            received = _clock.Now(wallMs);
        }
        Issue(context, received);
        _scenario.OnHeard(_id, from, heartbeat.SentAtTrueUs);
        var nowMs = context.MonotonicMs;
        foreach (var monitor in Monitors.Values) monitor.OnHeartbeat((ulong)from, nowMs, heartbeat.Sequence);
    }

    public void OnTimer(NodeContext context, long timerId, int tag)
    {
        var nowMs = context.MonotonicMs;
        if (tag == SendTimer)
        {
            var sentAt = _clock.Now(context.WallClockMs);
            Issue(context, sentAt);
            // The hybrid timestamp doubles as the heartbeat's sequence number: it increases across restarts (the upper
            // bound is persisted), so a restarted node's heartbeats are never mistaken for replays of old ones.
            for (var peer = 0; peer < context.ClusterSize; peer++)
                if (peer != _id) context.Send(peer, new HeartbeatMessage(unchecked((long)sentAt.Raw), sentAt, _scenario.NowUs), sizeBytes: 32);
            context.SetTimer(_schedule.ScheduleNext(nowMs) - nowMs, SendTimer);
            return;
        }
        foreach (var (kind, monitor) in Monitors)
        {
            _transitions.Clear();
            monitor.Check(nowMs, _transitions);
            foreach (var transition in _transitions) _scenario.OnTransition(_id, kind, transition);
        }
        context.SetTimer(_scenario.Options.CheckIntervalMs, CheckTimer);
    }

    private void Issue(NodeContext context, HybridTimestamp timestamp)
    {
        if (_clock.IsUpperBoundPersistPending && _scenario.Options.Bug != PlantedBug.HlcForgetsUpperBound)
        {
            // The bound must be durable before the timestamp is used: write, fsync, acknowledge.
            Span<byte> bound = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(bound, _clock.UpperBoundMs);
            var disk = context.Disk;
            if (!disk.Exists(UpperBoundFile))
            {
                disk.Create(UpperBoundFile);
                disk.SyncDirectory();
            }
            disk.Write(UpperBoundFile, 0, bound);
            disk.Sync(UpperBoundFile);
            _clock.UpperBoundPersisted(_clock.UpperBoundMs);
        }
        _scenario.OnIssued(_id, timestamp);
    }
}

/// <summary>
/// A heartbeat: the sender's sequence number and hybrid-clock send time, plus the true send time, which only the
/// checker reads (a verdict is false unless the accused crashed after its last heartbeat that got through was sent).
/// </summary>
internal sealed record HeartbeatMessage(long Sequence, HybridTimestamp SentAt, long SentAtTrueUs);
