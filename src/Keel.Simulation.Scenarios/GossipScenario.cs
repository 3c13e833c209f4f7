using System.Globalization;
using System.Text;
using Keel.Core;
using Keel.Gossip;

namespace Keel.Simulation.Scenarios;

/// <summary>One protocol configuration run side by side with the others on the same nodes, network and faults.</summary>
/// <param name="Name">Label in the table.</param>
/// <param name="Options">The gossip settings of this variant.</param>
public sealed record GossipVariant(string Name, GossipOptions Options);

/// <summary>Settings of <see cref="GossipScenario"/>.</summary>
public sealed record GossipScenarioOptions
{
    /// <summary>Members.</summary>
    public int Nodes { get; init; } = 100;

    /// <summary>Configurations compared in the same run (each node runs one core per variant).</summary>
    public IReadOnlyList<GossipVariant> Variants { get; init; } =
    [
        new("lifeguard", new GossipOptions()),
        new("plain-swim", new GossipOptions { LifeguardEnabled = false }),
    ];

    /// <summary>Total simulated time.</summary>
    public long DurationMs { get; init; } = 60_000;

    /// <summary>When a member changes its tags (the propagation measurement).</summary>
    public long TagChangeAtMs { get; init; } = 5_000;

    /// <summary>When the victim crashes for good (0: no crash).</summary>
    public long CrashAtMs { get; init; } = 20_000;

    /// <summary>Steady-state bandwidth window (before the crash and churn).</summary>
    public (long FromMs, long ToMs) SteadyWindowMs { get; init; } = (2_000, 18_000);

    /// <summary>Fraction of members that leave and rejoin during the churn window (0: no churn).</summary>
    public double ChurnFraction { get; init; }

    /// <summary>Churn window; bandwidth is also measured over it.</summary>
    public (long FromMs, long ToMs) ChurnWindowMs { get; init; } = (30_000, 45_000);

    /// <summary>Packet loss probability.</summary>
    public double LossProbability { get; init; } = 0.01;

    /// <summary>Longest stop-the-world pause (0: no pauses).</summary>
    public long MaxPauseMs { get; init; } = 3_000;

    /// <summary>Mean interval between pauses across the cluster (nemesis).</summary>
    public long MeanPauseIntervalMs { get; init; } = 1_000;

    /// <summary>How often a node drives its cores.</summary>
    public long TickMs { get; init; } = 50;

    /// <summary>Minimum time between two pauses of the same node, so "pauses up to X s" never chain into a longer stall.</summary>
    public long MinPauseSpacingMs { get; init; } = 5_000;
}

/// <summary>
/// N gossip members on the simulator, one core per <see cref="GossipVariant"/> on every node (so Lifeguard and plain
/// SWIM, or digest and full-state anti-entropy, see the same losses, pauses and crash). Every packet goes through the
/// real codec and HMAC envelope, and its encoded size is what the network carries. Measures: time and gossip rounds until
/// a tag change reaches every live member; bytes per member per second, steady and under churn, with anti-entropy
/// separated out; false "dead" verdicts about members that were never down; and time to suspect and to convict a real
/// crash. Members start knowing each other (<see cref="SwimMember.Bootstrap"/>), as after a completed join.
/// </summary>
public sealed class GossipScenario : ISimulationScenario
{
    private readonly GossipScenarioOptions _options;
    private readonly VariantStats[] _stats;
    private readonly bool[] _started;
    private readonly bool[] _churned;
    private Simulation _simulation = null!;

    /// <summary>
    /// One id table for every simulated member (ids are 1..N): each member's view is then two flat arrays, which is
    /// what lets 10,000 members with full views (10^8 entries) fit in memory.
    /// </summary>
    internal MemberDirectory Directory { get; } = new();

    /// <summary>Creates the scenario.</summary>
    public GossipScenario(GossipScenarioOptions? options = null)
    {
        _options = options ?? new GossipScenarioOptions();
        _stats = _options.Variants.Select(v => new VariantStats(v.Name)).ToArray();
        _started = new bool[_options.Nodes];
        _churned = new bool[_options.Nodes];
        for (var i = 1; i <= _options.Nodes; i++) Directory.Intern((ulong)i);
    }

    /// <inheritdoc />
    public string Name => "gossip";

    /// <inheritdoc />
    public string ReplayArguments => $"--nodes {_options.Nodes}";

    /// <inheritdoc />
    public long DurationMs => _options.DurationMs;

    /// <summary>Settings.</summary>
    public GossipScenarioOptions Options => _options;

    /// <summary>The crashed member's node, or -1.</summary>
    public int Victim { get; private set; } = -1;

    /// <summary>The member whose tag change is timed.</summary>
    public int TagChanger { get; private set; }

    /// <summary>Per-variant measurements.</summary>
    public IReadOnlyList<VariantStats> Stats => _stats;

    /// <inheritdoc />
    public FaultPlan DrawPlan(DeterministicRandom random) => new()
    {
        LossProbability = _options.LossProbability,
        MeanPauseIntervalMs = _options.MaxPauseMs > 0 ? _options.MeanPauseIntervalMs : 0,
        MaxPauseMs = _options.MaxPauseMs,
    };

    /// <inheritdoc />
    public void Build(Simulation simulation, FaultPlan plan)
    {
        _simulation = simulation;
        var random = simulation.Random.Split("gossip-scenario");
        for (var i = 0; i < _options.Nodes; i++) simulation.AddNode(id => new GossipProcess(this, id));
        TagChanger = random.NextInt32(_options.Nodes);
        if (_options.CrashAtMs > 0)
        {
            do Victim = random.NextInt32(_options.Nodes); while (Victim == TagChanger);
            simulation.Schedule(_options.CrashAtMs * 1000, () =>
            {
                simulation.Nodes[Victim].Crash();
                foreach (var s in _stats) s.CrashedAtUs = simulation.NowUs;
            }, "crash-victim");
        }
        simulation.Schedule(_options.TagChangeAtMs * 1000, () =>
        {
            if (simulation.Nodes[TagChanger].Process is not GossipProcess p || simulation.Nodes[TagChanger].State != NodeState.Up) return;
            for (var v = 0; v < _stats.Length; v++)
            {
                var member = p.Members[v];
                member.UpdateTags(new MemberTags("zone-b", "agent", "2.0.0", 500), simulation.NowMs);
                _stats[v].TagChangeIncarnation = member.Incarnation;
                _stats[v].TagChangedAtUs = simulation.NowUs;
            }
        }, "tag-change");
        ScheduleChurn(random.Split("churn"));
        var nemesis = new Nemesis(simulation, plan) { MayCrash = _ => false, MinPauseSpacingMs = _options.MinPauseSpacingMs };
        simulation.StartAll();
        nemesis.Start(_options.DurationMs);
    }

    private void ScheduleChurn(DeterministicRandom random)
    {
        var count = (int)(_options.Nodes * _options.ChurnFraction);
        if (count == 0) return;
        var (fromMs, toMs) = _options.ChurnWindowMs;
        var chosen = new List<int>();
        while (chosen.Count < count)
        {
            var n = random.NextInt32(_options.Nodes);
            if (n != Victim && n != TagChanger && !chosen.Contains(n)) chosen.Add(n);
        }
        foreach (var node in chosen)
        {
            var leaveAtMs = random.NextInt64(fromMs, toMs - 3_000);
            var rejoinAtMs = leaveAtMs + random.NextInt64(1_000, 3_000);
            _simulation.Schedule(leaveAtMs * 1000, () =>
            {
                _churned[node] = true;
                if (_simulation.Nodes[node].Process is GossipProcess p && _simulation.Nodes[node].State == NodeState.Up) p.LeaveAndFlush();
            }, "churn-leave");
            _simulation.Schedule(leaveAtMs * 1000 + 500_000, () => _simulation.Nodes[node].Crash(), "churn-stop");
            _simulation.Schedule(rejoinAtMs * 1000, () => _simulation.Nodes[node].Restart(), "churn-rejoin");
        }
    }

    internal bool FirstStart(int node)
    {
        var first = !_started[node];
        _started[node] = true;
        return first;
    }

    internal void OnSent(int variant, long bytes, GossipMessage message)
    {
        var s = _stats[variant];
        var nowMs = _simulation.NowMs;
        if (nowMs >= _options.SteadyWindowMs.FromMs && nowMs < _options.SteadyWindowMs.ToMs)
        {
            s.SteadyBytes += bytes;
            if (message.IsAntiEntropy) s.SteadyAntiEntropyBytes += bytes;
        }
        if (_options.ChurnFraction > 0 && nowMs >= _options.ChurnWindowMs.FromMs && nowMs < _options.ChurnWindowMs.ToMs)
        {
            s.ChurnBytes += bytes;
            if (message.IsAntiEntropy) s.ChurnAntiEntropyBytes += bytes;
            if (message.IsJoin) s.ChurnJoinBytes += bytes;
        }
    }

    /// <summary>Called with (variant, observer node, simulated ms, event) for every membership event: tracing experiments.</summary>
    public Action<int, int, long, MembershipEvent>? EventObserver { get; set; }

    internal void OnEvent(int variant, int observer, MembershipEvent e)
    {
        EventObserver?.Invoke(variant, observer, _simulation.NowMs, e);
        var s = _stats[variant];
        var subject = (int)(e.Member - 1);
        var nowUs = _simulation.NowUs;
        if (subject == TagChanger && s.TagChangedAtUs >= 0 && e.To == MemberStatus.Alive && e.Incarnation >= s.TagChangeIncarnation)
        {
            if (s.TagSeenBy.Add(observer)) s.TagLastSeenAtUs = nowUs;
        }
        if (subject == Victim && s.CrashedAtUs >= 0)
        {
            if (e.To == MemberStatus.Suspect && s.FirstSuspectAtUs < 0) s.FirstSuspectAtUs = nowUs;
            if (e.To == MemberStatus.Dead && s.DeadSeenBy.Add(observer))
            {
                s.DeadLastSeenAtUs = nowUs;
                s.DeadSeenAtUs[observer] = nowUs;
                if (_simulation.Nodes[observer].WasPausedDuring(s.CrashedAtUs, nowUs)) s.DeadSeenByPaused.Add(observer);
            }
            return;
        }
        // A member that was never down (not crashed, not churned) declared dead is a false positive.
        var node = _simulation.Nodes[subject];
        if (e.To == MemberStatus.Dead && !_churned[subject] && node.State != NodeState.Crashed)
        {
            s.FalseDeaths++;
            if (s.FalseDeathLog.Count < 20)
                s.FalseDeathLog.Add($"at {nowUs / 1000} ms node {observer} declared node {subject} dead; subject pauses {Pauses(subject, nowUs)}; observer pauses {Pauses(observer, nowUs)}");
        }
        if (e.To == MemberStatus.Suspect && !_churned[subject] && node.State != NodeState.Crashed) s.FalseSuspicions++;
    }

    private string Pauses(int node, long nowUs) =>
        string.Join(", ", _simulation.Nodes[node].PauseHistory.Where(p => p.StartUs > nowUs - 30_000_000).Select(p => $"{p.StartUs / 1000}-{p.EndUs / 1000}"));

    /// <inheritdoc />
    public string? Finish(Simulation simulation)
    {
        foreach (var node in simulation.Nodes)
            if (node.State == NodeState.Up && node.Process is GossipProcess p)
                foreach (var m in p.Members) m.AssertInvariants();
        return null;
    }

    /// <summary>Live members other than the victim and the tag changer (who must all hear both pieces of news).</summary>
    public int Observers => _options.Nodes - (Victim >= 0 ? 1 : 0) - 1;

    /// <inheritdoc />
    public string Summary()
    {
        var text = new StringBuilder();
        foreach (var s in _stats) text.AppendLine(s.Describe(this));
        return text.ToString();
    }

    /// <summary>The measurements as a markdown table.</summary>
    public string Table()
    {
        var text = new StringBuilder();
        var n = _options.Nodes;
        var steadyS = (_options.SteadyWindowMs.ToMs - _options.SteadyWindowMs.FromMs) / 1000.0;
        var churnS = (_options.ChurnWindowMs.ToMs - _options.ChurnWindowMs.FromMs) / 1000.0;
        text.AppendLine("| variant | N | tag change reached | time (ms) | gossip rounds | steady B/member/s | steady anti-entropy B/member/s | churn B/member/s | churn anti-entropy B/member/s | churn join B/member/s | false suspicions | false deaths | crash first suspected (ms) | crash known dead by all (ms) |");
        text.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var s in _stats)
        {
            var variant = _options.Variants.First(v => v.Name == s.Name);
            var reached = $"{s.TagSeenBy.Count}/{Observers + (Victim >= 0 && s.TagSeenBy.Contains(Victim) ? 1 : 0)}";
            var propagationMs = s.TagLastSeenAtUs >= 0 ? (s.TagLastSeenAtUs - s.TagChangedAtUs) / 1000.0 : double.NaN;
            var rounds = propagationMs / variant.Options.GossipIntervalMs;
            string Rate(long bytes, double seconds) => seconds > 0 ? (bytes / (double)n / seconds).ToString("0", CultureInfo.InvariantCulture) : "-";
            var suspectMs = s.FirstSuspectAtUs >= 0 ? ((s.FirstSuspectAtUs - s.CrashedAtUs) / 1000).ToString(CultureInfo.InvariantCulture) : "-";
            var deadMs = s.DeadSeenBy.Count >= Observers && s.DeadLastSeenAtUs >= 0
                ? ((s.DeadLastSeenAtUs - s.CrashedAtUs) / 1000).ToString(CultureInfo.InvariantCulture)
                : $"not all ({s.DeadSeenBy.Count}/{Observers})";
            text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {s.Name} | {n} | {reached} | {propagationMs:0} | {rounds:0.0} | {Rate(s.SteadyBytes, steadyS)} | {Rate(s.SteadyAntiEntropyBytes, steadyS)} | {(_options.ChurnFraction > 0 ? Rate(s.ChurnBytes, churnS) : "-")} | {(_options.ChurnFraction > 0 ? Rate(s.ChurnAntiEntropyBytes, churnS) : "-")} | {(_options.ChurnFraction > 0 ? Rate(s.ChurnJoinBytes, churnS) : "-")} | {s.FalseSuspicions} | {s.FalseDeaths} | {suspectMs} | {deadMs} |"));
        }
        return text.ToString();
    }

    /// <summary>
    /// Crash detection per variant: first suspicion, first conviction, and when the observers learnt of the death
    /// (median, 99th percentile, last), also over only the observers that were not paused between the crash and their
    /// learning (a member frozen for 3 s cannot learn anything while frozen).
    /// </summary>
    public string DetectionTable()
    {
        var text = new StringBuilder();
        text.AppendLine("| variant | false suspicions | false deaths | first suspected (ms) | first convicted (ms) | known dead: median (ms) | p99 (ms) | all (ms) | all never-paused observers (ms) | observers paused meanwhile |");
        text.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var s in _stats)
        {
            string Ms(long us) => us < 0 ? "-" : ((us - s.CrashedAtUs) / 1000).ToString(CultureInfo.InvariantCulture);
            var times = s.DeadSeenAtUs.Values.Order().ToList();
            var awake = s.DeadSeenAtUs.Where(kv => !s.DeadSeenByPaused.Contains(kv.Key)).Select(kv => kv.Value).Order().ToList();
            long At(List<long> list, double q) => list.Count == 0 ? -1 : list[Math.Min(list.Count - 1, (int)Math.Ceiling(q * list.Count) - 1)];
            var complete = s.DeadSeenBy.Count >= Observers;
            text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {s.Name} | {s.FalseSuspicions} | {s.FalseDeaths} | {Ms(s.FirstSuspectAtUs)} | {Ms(times.Count > 0 ? times[0] : -1)} | {Ms(At(times, 0.5))} | {Ms(At(times, 0.99))} | {(complete ? Ms(At(times, 1)) : $"not all ({s.DeadSeenBy.Count}/{Observers})")} | {(complete ? Ms(At(awake, 1)) : "-")} | {s.DeadSeenByPaused.Count} |"));
        }
        return text.ToString();
    }

    /// <summary>What one variant measured.</summary>
    public sealed class VariantStats(string name)
    {
        /// <summary>The variant.</summary>
        public string Name { get; } = name;
        /// <summary>Incarnation the tag change produced.</summary>
        public long TagChangeIncarnation { get; internal set; } = long.MaxValue;
        /// <summary>When the tags changed.</summary>
        public long TagChangedAtUs { get; internal set; } = -1;
        /// <summary>Nodes that saw the change.</summary>
        public HashSet<int> TagSeenBy { get; } = [];
        /// <summary>When the last of them saw it.</summary>
        public long TagLastSeenAtUs { get; internal set; } = -1;
        /// <summary>When the victim crashed.</summary>
        public long CrashedAtUs { get; internal set; } = -1;
        /// <summary>First suspicion of the victim.</summary>
        public long FirstSuspectAtUs { get; internal set; } = -1;
        /// <summary>Nodes that declared the victim dead.</summary>
        public HashSet<int> DeadSeenBy { get; } = [];
        /// <summary>When the last of them did.</summary>
        public long DeadLastSeenAtUs { get; internal set; } = -1;
        /// <summary>When each observer learnt the victim was dead.</summary>
        public Dictionary<int, long> DeadSeenAtUs { get; } = [];
        /// <summary>Observers that were paused at some point between the crash and learning of it.</summary>
        public HashSet<int> DeadSeenByPaused { get; } = [];
        /// <summary>Bytes sent in the steady window.</summary>
        public long SteadyBytes { get; internal set; }
        /// <summary>Anti-entropy bytes in the steady window.</summary>
        public long SteadyAntiEntropyBytes { get; internal set; }
        /// <summary>Bytes sent in the churn window.</summary>
        public long ChurnBytes { get; internal set; }
        /// <summary>Anti-entropy bytes in the churn window.</summary>
        public long ChurnAntiEntropyBytes { get; internal set; }
        /// <summary>Join bytes (a rejoiner's one full-state pull) in the churn window, counted apart from anti-entropy.</summary>
        public long ChurnJoinBytes { get; internal set; }
        /// <summary>Members that were never down declared dead (per observer).</summary>
        public long FalseDeaths { get; internal set; }
        /// <summary>The first false deaths, with the pauses around them.</summary>
        public List<string> FalseDeathLog { get; } = [];
        /// <summary>Members that were never down suspected (per observer).</summary>
        public long FalseSuspicions { get; internal set; }

        internal string Describe(GossipScenario scenario) =>
            // Everyone but the tag changer should see its tag change; everyone but the victim should see the victim dead.
            $"{Name}: tag change seen by {TagSeenBy.Count}/{scenario.Observers + 1}, crash known dead by {DeadSeenBy.Count}/{scenario.Observers + 1}, false deaths {FalseDeaths}, false suspicions {FalseSuspicions}";
    }
}

/// <summary>A simulated member: one <see cref="SwimMember"/> and one secure channel per variant, ticked on a timer.</summary>
internal sealed class GossipProcess : ISimProcess
{
    private static readonly byte[] ClusterKey = "keel-simulated-gossip-cluster-k1"u8.ToArray();
    private static readonly MemberTags AgentTags = new("zone-a", "agent", "1.0.0", 100);
    private readonly GossipScenario _scenario;
    private readonly int _id;
    private readonly List<OutboundMessage> _outbox = [];
    private NodeContext _context = null!;

    public GossipProcess(GossipScenario scenario, int id)
    {
        _scenario = scenario;
        _id = id;
    }

    public SwimMember[] Members { get; private set; } = [];

    private GossipSecureChannel[] _channels = [];

    public void Start(NodeContext context)
    {
        _context = context;
        var variants = _scenario.Options.Variants;
        var nowMs = context.MonotonicMs;
        var first = _scenario.FirstStart(_id);
        Members = new SwimMember[variants.Count];
        _channels = new GossipSecureChannel[variants.Count];
        for (var v = 0; v < variants.Count; v++)
        {
            Members[v] = new SwimMember((ulong)_id + 1, variants[v].Options, context.Random.Split("swim", v), nowMs, AgentTags, _scenario.Directory);
            // Wall-clock microseconds: a restarted member's sequence numbers start above everything it sent before.
            _channels[v] = new GossipSecureChannel((ulong)_id + 1, new GossipKeyring(ClusterKey), (ulong)Math.Max(1, context.WallClockMs) * 1000, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)((ulong)_id + 1) << 40 ^ (ulong)((ulong)Math.Max(1, context.WallClockMs) * 1000))));
            if (first)
            {
                Members[v].Bootstrap(Enumerable.Range(1, _scenario.Options.Nodes).Select(i => ((ulong)i, 0L, (MemberTags?)null)), nowMs);
            }
            else
            {
                var seed = (ulong)context.Random.NextInt32(_scenario.Options.Nodes) + 1;
                Members[v].Join(seed == (ulong)_id + 1 ? (ulong)(_id + 1) % (ulong)_scenario.Options.Nodes + 1 : seed, nowMs, _outbox);
                Flush(v);
            }
        }
        context.SetTimer(context.Random.NextInt64(_scenario.Options.TickMs) + 1);
    }

    public void OnMessage(NodeContext context, int from, object message)
    {
        var (variant, packet) = ((int, byte[]))message;
        if (_channels[variant].Open(packet, out var sender, out var decoded) != OpenOutcome.Accepted) return;
        Members[variant].Receive(sender, decoded!, context.MonotonicMs, _outbox);
        Flush(variant);
    }

    public void OnTimer(NodeContext context, long timerId, int tag)
    {
        for (var v = 0; v < Members.Length; v++)
        {
            Members[v].Tick(context.MonotonicMs, _outbox);
            Flush(v);
        }
        context.SetTimer(_scenario.Options.TickMs);
    }

    public void LeaveAndFlush()
    {
        for (var v = 0; v < Members.Length; v++)
        {
            Members[v].Leave(_context.MonotonicMs);
            Members[v].Tick(_context.MonotonicMs, _outbox);
            Flush(v);
        }
    }

    private void Flush(int variant)
    {
        foreach (var e in Members[variant].DrainEvents()) _scenario.OnEvent(variant, _id, e);
        foreach (var m in _outbox)
        {
            var packet = _channels[variant].Seal(m.Message);
            Invariant.Check(m.Message.IsStream || packet.Length <= Members[variant].Options.MaxMessageBytes, "gossip packets respect the size limit");
            _scenario.OnSent(variant, packet.Length, m.Message);
            _context.Send((int)m.To - 1, (variant, packet), packet.Length);
        }
        _outbox.Clear();
    }
}
