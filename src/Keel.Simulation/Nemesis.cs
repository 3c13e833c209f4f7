using Keel.Core;

namespace Keel.Simulation;

/// <summary>
/// Injects the faults of a <see cref="FaultPlan"/> into a simulation during a window of time, each as a Poisson process
/// of events, then heals everything (network, crashed nodes) so a liveness phase can require progress. Which nodes may
/// be crashed or paused is the scenario's choice.
/// </summary>
public sealed class Nemesis
{
    private readonly Simulation _simulation;
    private readonly FaultPlan _plan;
    private readonly DeterministicRandom _random;
    private readonly NetworkOptions _baseline;
    private long _endUs;

    /// <summary>Prepares a nemesis; nothing happens until <see cref="Start"/>.</summary>
    public Nemesis(Simulation simulation, FaultPlan plan, NetworkOptions? baseline = null)
    {
        _simulation = simulation;
        _plan = plan;
        _random = simulation.Random.Split("nemesis");
        _baseline = baseline ?? simulation.Network.Options;
    }

    /// <summary>Nodes that may be crashed (default: all).</summary>
    public Func<int, bool> MayCrash { get; init; } = _ => true;
    /// <summary>Nodes that may be paused (default: all).</summary>
    public Func<int, bool> MayPause { get; init; } = _ => true;
    /// <summary>
    /// A node is not paused again until this long after its last pause ended (default 0: pauses may chain). A scenario
    /// whose fault model is "pauses of at most N seconds" needs spacing, or two chained pauses make one longer stall.
    /// </summary>
    public long MinPauseSpacingMs { get; init; }

    /// <summary>At most this many nodes down at once (default: a minority of a cluster).</summary>
    public int MaxCrashedAtOnce { get; init; } = int.MaxValue;

    /// <summary>Faults injected so far, by kind.</summary>
    public int Partitions { get; private set; }
    /// <summary>Crashes injected.</summary>
    public int Crashes { get; private set; }
    /// <summary>Pauses injected.</summary>
    public int Pauses { get; private set; }
    /// <summary>Clock steps injected.</summary>
    public int ClockSteps { get; private set; }

    /// <summary>Injects faults from now until <paramref name="durationMs"/> later, then heals.</summary>
    public void Start(long durationMs)
    {
        _endUs = _simulation.NowUs + durationMs * 1000;
        _simulation.Network.Options = _plan.Network(_baseline);
        Every(_plan.MeanPartitionIntervalMs, PartitionOrHeal);
        Every(_plan.MeanCrashIntervalMs, CrashOne);
        Every(_plan.MeanPauseIntervalMs, PauseOne);
        Every(_plan.MeanClockStepIntervalMs, StepOne);
        _simulation.Schedule(_endUs - _simulation.NowUs, HealEverything, "heal");
    }

    /// <summary>Heals the network, restores the baseline network behaviour and restarts every crashed node.</summary>
    public void HealEverything()
    {
        _simulation.Network.HealAll();
        _simulation.Network.Options = _baseline;
        foreach (var node in _simulation.Nodes) node.Restart();
    }

    private void Every(long meanIntervalMs, Action fault)
    {
        if (meanIntervalMs <= 0) return;
        void Next()
        {
            var delayUs = (long)_random.NextExponential(meanIntervalMs * 1000.0) + 1;
            if (_simulation.NowUs + delayUs >= _endUs) return;
            _simulation.Schedule(delayUs, () => { fault(); Next(); }, "fault");
        }
        Next();
    }

    private void PartitionOrHeal()
    {
        var network = _simulation.Network;
        var n = _simulation.Nodes.Count;
        Partitions++;
        switch (_random.NextInt32(5))
        {
            case 0:
                network.HealAll();
                break;
            case 1: // symmetric split into two random sides
                var side = new List<int>();
                for (var i = 0; i < n; i++) if (_random.Chance(0.5)) side.Add(i);
                network.Partition(side);
                break;
            case 2:
                network.Isolate(_random.NextInt32(n));
                break;
            case 3: // asymmetric: one direction of one link
                network.BlockOneWay(_random.NextInt32(n), _random.NextInt32(n));
                break;
            default: // a clogged link
                network.Clog(_random.NextInt32(n), _random.NextInt32(n), _random.NextInt64(1_000, 500_000));
                break;
        }
        // Partitions heal by themselves after a while, or the run would spend most of its time split.
        _simulation.Schedule(_random.NextInt64(100_000, 5_000_000), () => { if (_simulation.NowUs < _endUs) network.HealAll(); }, "heal-partition");
    }

    private void CrashOne()
    {
        var candidates = _simulation.Nodes.Where(node => node.State == NodeState.Up && MayCrash(node.Id)).ToList();
        var down = _simulation.Nodes.Count(node => node.State == NodeState.Crashed);
        if (candidates.Count == 0 || down >= MaxCrashedAtOnce) return;
        var victim = candidates[_random.NextInt32(candidates.Count)];
        victim.Crash();
        Crashes++;
        _simulation.Schedule(_random.NextInt64(1_000, _plan.MaxRestartDelayMs * 1000 + 1_001), victim.Restart, "restart");
    }

    private void PauseOne()
    {
        var candidates = _simulation.Nodes.Where(node => node.State == NodeState.Up && MayPause(node.Id) &&
            (node.PauseHistory.Count == 0 || _simulation.NowUs - node.PauseHistory[^1].EndUs >= MinPauseSpacingMs * 1000)).ToList();
        if (candidates.Count == 0 || _plan.MaxPauseMs <= 0) return;
        candidates[_random.NextInt32(candidates.Count)].Pause(_random.NextInt64(1_000, _plan.MaxPauseMs * 1000 + 1));
        Pauses++;
    }

    private void StepOne()
    {
        if (_plan.MaxClockStepMs <= 0) return;
        var node = _simulation.Nodes[_random.NextInt32(_simulation.Nodes.Count)];
        node.Clock.Step(_random.NextInt64(-_plan.MaxClockStepMs, _plan.MaxClockStepMs + 1));
        ClockSteps++;
    }
}
