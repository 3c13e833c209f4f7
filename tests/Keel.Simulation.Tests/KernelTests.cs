using Keel.Simulation;
using Sim = Keel.Simulation.Simulation;

namespace Keel.Simulation.Tests;

/// <summary>A process that echoes pings and records what it saw, for kernel tests.</summary>
internal sealed class EchoProcess : ISimProcess
{
    public readonly List<(long AtUs, int From, object Message)> Received = [];
    public readonly List<(long AtUs, int Tag)> Timers = [];
    private readonly Sim _simulation;
    private readonly long _pingEveryMs;

    public EchoProcess(Sim simulation, long pingEveryMs = 0)
    {
        _simulation = simulation;
        _pingEveryMs = pingEveryMs;
    }

    public void Start(NodeContext context)
    {
        if (_pingEveryMs > 0) context.SetTimer(_pingEveryMs, tag: 1);
    }

    public void OnMessage(NodeContext context, int from, object message)
    {
        Received.Add((_simulation.NowUs, from, message));
        if (message is string text && text.StartsWith("ping", StringComparison.Ordinal)) context.Send(from, "pong" + text[4..]);
    }

    public void OnTimer(NodeContext context, long timerId, int tag)
    {
        Timers.Add((_simulation.NowUs, tag));
        for (var peer = 0; peer < context.ClusterSize; peer++)
            if (peer != context.NodeId) context.Send(peer, $"ping{context.Random.NextInt32(1000)}");
        if (_pingEveryMs > 0) context.SetTimer(_pingEveryMs, tag: 1);
    }
}

public sealed class KernelTests
{
    private static (Sim Simulation, List<EchoProcess> Processes) Cluster(ulong seed, int nodes, NetworkOptions? network = null, long pingEveryMs = 100)
    {
        var simulation = new Sim(seed, network);
        var processes = new List<EchoProcess>();
        for (var i = 0; i < nodes; i++)
        {
            simulation.AddNode(_ =>
            {
                var process = new EchoProcess(simulation, pingEveryMs);
                processes.Add(process);
                return process;
            });
        }
        simulation.StartAll();
        return (simulation, processes);
    }

    private static ulong RunChaos(ulong seed)
    {
        var simulation = new Sim(seed);
        for (var i = 0; i < 5; i++) simulation.AddNode(_ => new EchoProcess(simulation, 50));
        var nemesis = new Nemesis(simulation, FaultPlan.All(new FaultLimits()));
        simulation.StartAll();
        nemesis.Start(durationMs: 20_000);
        simulation.RunUntil(25_000_000);
        return simulation.TraceHash;
    }

    [Fact]
    public void Same_seed_gives_the_same_trace_hash_and_different_seeds_differ()
    {
        var first = RunChaos(42);
        Assert.Equal(first, RunChaos(42));
        Assert.NotEqual(first, RunChaos(43));
    }

    [Fact]
    public void Events_at_the_same_time_run_in_the_order_they_were_scheduled()
    {
        var simulation = new Sim(1);
        var order = new List<int>();
        for (var i = 0; i < 10; i++)
        {
            var captured = i;
            simulation.Schedule(1_000, () => order.Add(captured));
        }
        simulation.Schedule(500, () => order.Add(-1));
        simulation.RunFor(2_000);
        Assert.Equal([-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9], order);
        Assert.Equal(2_000, simulation.NowUs);
    }

    [Fact]
    public void A_symmetric_partition_stops_messages_both_ways_until_healed()
    {
        var (simulation, processes) = Cluster(7, 3);
        simulation.Network.Partition([0]);
        simulation.RunFor(1_000_000);
        Assert.DoesNotContain(processes[0].Received, r => r.From != 0);
        Assert.DoesNotContain(processes[1].Received, r => r.From == 0);
        Assert.Contains(processes[1].Received, r => r.From == 2);

        simulation.Network.HealAll();
        var healedAtUs = simulation.NowUs;
        simulation.RunFor(1_000_000);
        Assert.Contains(processes[0].Received, r => r.AtUs > healedAtUs && r.From == 1);
    }

    [Fact]
    public void Successive_cuts_split_the_cluster_into_groups_and_isolation_cuts_one_node_off()
    {
        var (simulation, _) = Cluster(15, 5);
        var network = simulation.Network;
        network.Partition([0, 1]);
        network.Partition([1, 2]);
        Assert.False(network.IsConnected(0, 1)); // 1 moved away from 0
        Assert.False(network.IsConnected(1, 2)); // 2 was on the other side of the first cut
        Assert.False(network.IsConnected(0, 3));
        Assert.True(network.IsConnected(3, 4));
        network.HealAll();
        network.Isolate(4);
        Assert.False(network.IsConnected(4, 0));
        Assert.False(network.IsConnected(3, 4));
        Assert.True(network.IsConnected(0, 3));
    }

    [Fact]
    public void An_asymmetric_partition_blocks_one_direction_only()
    {
        var (simulation, processes) = Cluster(8, 2);
        simulation.Network.BlockOneWay(0, 1);
        simulation.RunFor(1_000_000);
        Assert.Empty(processes[1].Received);
        // Node 0 still hears node 1's pings (its pongs back are blocked).
        Assert.Contains(processes[0].Received, r => r.Message is string s && s.StartsWith("ping", StringComparison.Ordinal));
    }

    [Fact]
    public void Loss_and_duplication_happen_at_about_the_configured_rates()
    {
        var (simulation, _) = Cluster(9, 2, new NetworkOptions { LossProbability = 0.2, DuplicateProbability = 0.1 }, pingEveryMs: 1);
        simulation.RunFor(10_000_000);
        var network = simulation.Network;
        var lossRate = (double)network.DroppedCount / network.SentCount;
        Assert.InRange(lossRate, 0.17, 0.23);
        var delivered = (double)network.DeliveredCount / (network.SentCount - network.DroppedCount);
        Assert.InRange(delivered, 1.07, 1.13);
    }

    [Fact]
    public void A_paused_node_handles_nothing_then_its_whole_backlog_in_order_at_once()
    {
        var (simulation, processes) = Cluster(10, 2, pingEveryMs: 10);
        simulation.RunFor(100_000);
        var node = simulation.Nodes[1];
        node.Pause(2_000_000);
        var pausedAtUs = simulation.NowUs;
        simulation.RunFor(1_999_000);
        Assert.DoesNotContain(processes[1].Received, r => r.AtUs > pausedAtUs);
        Assert.DoesNotContain(processes[1].Timers, t => t.AtUs > pausedAtUs);
        simulation.RunFor(1_000);
        var backlog = processes[1].Received.Where(r => r.AtUs > pausedAtUs).ToList();
        Assert.True(backlog.Count >= 150, $"expected the backlog of about 200 pings, got {backlog.Count}");
        Assert.All(backlog, r => Assert.Equal(pausedAtUs + 2_000_000, r.AtUs));
        Assert.Equal(NodeState.Up, node.State);
    }

    [Fact]
    public void A_crash_drops_timers_of_the_old_incarnation_and_a_restart_boots_a_fresh_process()
    {
        var (simulation, processes) = Cluster(11, 2, pingEveryMs: 10);
        simulation.RunFor(50_000);
        var node = simulation.Nodes[0];
        var before = processes[0];
        node.Crash();
        var crashedAtUs = simulation.NowUs;
        simulation.RunFor(500_000);
        Assert.DoesNotContain(before.Timers, t => t.AtUs > crashedAtUs);
        Assert.Equal(2, processes.Count);
        node.Restart();
        Assert.Equal(3, processes.Count);
        Assert.Equal(2, node.Incarnation);
        simulation.RunFor(100_000);
        Assert.NotEmpty(processes[2].Timers);
        Assert.DoesNotContain(before.Timers, t => t.AtUs > crashedAtUs);
    }

    [Fact]
    public void Wall_clock_steps_backwards_while_monotonic_time_never_does()
    {
        var simulation = new Sim(12);
        var node = simulation.AddNode(_ => new EchoProcess(simulation), new ClockOptions(WallOffsetMs: 100, DriftPpm: 100));
        simulation.StartAll();
        simulation.RunFor(1_000_000);
        var wallBefore = node.Clock.WallUs;
        var monoBefore = node.Clock.MonotonicUs;
        Assert.Equal(1_000_100, monoBefore); // 1 s at +100 ppm
        node.Clock.Step(-5_000);
        Assert.True(node.Clock.WallUs < wallBefore - 4_000_000);
        Assert.Equal(monoBefore, node.Clock.MonotonicUs);
        simulation.RunFor(1);
        Assert.True(node.Clock.MonotonicUs > monoBefore);
    }

    [Fact]
    public void A_livelock_of_events_at_one_instant_is_reported_instead_of_hanging()
    {
        var simulation = new Sim(14) { MaxEventsPerInstant = 10_000 };
        void Again() => simulation.Schedule(0, Again);
        simulation.Schedule(5, Again);
        var failure = Assert.Throws<SimulationFailureException>(() => simulation.RunFor(1_000));
        Assert.Contains("livelock", failure.Violation, StringComparison.Ordinal);
        Assert.Equal(14UL, failure.Seed);
    }

    [Fact]
    public void A_timer_fires_after_the_duration_measured_by_the_nodes_drifting_clock()
    {
        var simulation = new Sim(13);
        var fast = simulation.AddNode(_ => new EchoProcess(simulation), new ClockOptions(DriftPpm: 100_000)); // 10% fast
        simulation.StartAll();
        var firedAtUs = 0L;
        simulation.Schedule(0, () => fast.Context!.SetTimer(1_100));
        simulation.RunFor(1);
        var process = (EchoProcess)fast.Process!;
        simulation.RunFor(2_000_000);
        firedAtUs = process.Timers.Single().AtUs;
        Assert.InRange(firedAtUs, 999_000, 1_001_000); // 1.1 s local = 1.0 s true
    }
}
