using System.Text;
using Keel.Core;

namespace Keel.Simulation;

/// <summary>The strongest faults a scenario accepts; the swarm draws a plan within these bounds.</summary>
public sealed record FaultLimits
{
    /// <summary>Highest message loss probability.</summary>
    public double MaxLossProbability { get; init; } = 0.10;
    /// <summary>Highest duplication probability.</summary>
    public double MaxDuplicateProbability { get; init; } = 0.10;
    /// <summary>Highest reorder probability.</summary>
    public double MaxReorderProbability { get; init; } = 0.20;
    /// <summary>Whether partitions (symmetric, asymmetric, isolation) and clogged links may be drawn.</summary>
    public bool Partitions { get; init; } = true;
    /// <summary>Whether crashes with restarts may be drawn.</summary>
    public bool Crashes { get; init; } = true;
    /// <summary>Whether process pauses may be drawn.</summary>
    public bool Pauses { get; init; } = true;
    /// <summary>Longest process pause.</summary>
    public long MaxPauseMs { get; init; } = 3_000;
    /// <summary>Whether wall-clock steps may be drawn.</summary>
    public bool ClockSteps { get; init; } = true;
    /// <summary>Largest wall-clock step, either direction.</summary>
    public long MaxClockStepMs { get; init; } = 2_000;
    /// <summary>Largest clock drift.</summary>
    public double MaxDriftPpm { get; init; } = 200;
    /// <summary>Largest initial wall-clock offset.</summary>
    public long MaxInitialOffsetMs { get; init; } = 250;
}

/// <summary>
/// Which faults are on in a run and how strongly, itself drawn from the seed ("swarm testing", as TigerBeetle's VOPR
/// does): some seeds run a calm network with many crashes, others a lossy one with none, which finds bugs that a
/// uniform mix of every fault at once hides.
/// </summary>
public sealed record FaultPlan
{
    /// <summary>Message loss probability.</summary>
    public double LossProbability { get; init; }
    /// <summary>Duplication probability.</summary>
    public double DuplicateProbability { get; init; }
    /// <summary>Reorder probability.</summary>
    public double ReorderProbability { get; init; }
    /// <summary>Mean time between partition events (0 = none).</summary>
    public long MeanPartitionIntervalMs { get; init; }
    /// <summary>Mean time between crashes (0 = none).</summary>
    public long MeanCrashIntervalMs { get; init; }
    /// <summary>Longest downtime after a crash.</summary>
    public long MaxRestartDelayMs { get; init; } = 3_000;
    /// <summary>Mean time between pauses (0 = none).</summary>
    public long MeanPauseIntervalMs { get; init; }
    /// <summary>Longest pause.</summary>
    public long MaxPauseMs { get; init; }
    /// <summary>Mean time between wall-clock steps (0 = none).</summary>
    public long MeanClockStepIntervalMs { get; init; }
    /// <summary>Largest wall-clock step.</summary>
    public long MaxClockStepMs { get; init; }
    /// <summary>Largest drift given to a node.</summary>
    public double MaxDriftPpm { get; init; }
    /// <summary>Largest initial wall-clock offset.</summary>
    public long MaxInitialOffsetMs { get; init; }

    /// <summary>No faults at all.</summary>
    public static FaultPlan None { get; } = new();

    /// <summary>Every fault the limits allow, at full strength.</summary>
    public static FaultPlan All(FaultLimits limits) => new()
    {
        LossProbability = limits.MaxLossProbability,
        DuplicateProbability = limits.MaxDuplicateProbability,
        ReorderProbability = limits.MaxReorderProbability,
        MeanPartitionIntervalMs = limits.Partitions ? 2_000 : 0,
        MeanCrashIntervalMs = limits.Crashes ? 3_000 : 0,
        MeanPauseIntervalMs = limits.Pauses ? 2_000 : 0,
        MaxPauseMs = limits.MaxPauseMs,
        MeanClockStepIntervalMs = limits.ClockSteps ? 3_000 : 0,
        MaxClockStepMs = limits.MaxClockStepMs,
        MaxDriftPpm = limits.MaxDriftPpm,
        MaxInitialOffsetMs = limits.MaxInitialOffsetMs,
    };

    /// <summary>Draws which faults are on, and how strongly, from <paramref name="random"/>, within <paramref name="limits"/>.</summary>
    public static FaultPlan Draw(DeterministicRandom random, FaultLimits limits)
    {
        // Each fault is on with probability 1/2 (swarm testing), then its strength is drawn uniformly.
        double Maybe(double max) => random.Chance(0.5) ? max * random.NextDouble() : 0;
        long Interval(bool allowed, long minMs, long maxMs) => allowed && random.Chance(0.5) ? random.NextInt64(minMs, maxMs) : 0;
        return new FaultPlan
        {
            LossProbability = Maybe(limits.MaxLossProbability),
            DuplicateProbability = Maybe(limits.MaxDuplicateProbability),
            ReorderProbability = Maybe(limits.MaxReorderProbability),
            MeanPartitionIntervalMs = Interval(limits.Partitions, 500, 10_000),
            MeanCrashIntervalMs = Interval(limits.Crashes, 1_000, 15_000),
            MaxRestartDelayMs = random.NextInt64(10, 5_000),
            MeanPauseIntervalMs = Interval(limits.Pauses, 500, 10_000),
            MaxPauseMs = limits.Pauses ? random.NextInt64(1, limits.MaxPauseMs + 1) : 0,
            MeanClockStepIntervalMs = Interval(limits.ClockSteps, 1_000, 15_000),
            MaxClockStepMs = limits.ClockSteps ? random.NextInt64(1, limits.MaxClockStepMs + 1) : 0,
            MaxDriftPpm = Maybe(limits.MaxDriftPpm),
            MaxInitialOffsetMs = (long)Maybe(limits.MaxInitialOffsetMs),
        };
    }

    /// <summary>One line naming the faults that are on.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        void Add(string part) => text.Append(text.Length == 0 ? "" : ", ").Append(part);
        if (LossProbability > 0) Add($"loss {LossProbability:P1}");
        if (DuplicateProbability > 0) Add($"dup {DuplicateProbability:P1}");
        if (ReorderProbability > 0) Add($"reorder {ReorderProbability:P1}");
        if (MeanPartitionIntervalMs > 0) Add($"partitions every ~{MeanPartitionIntervalMs} ms");
        if (MeanCrashIntervalMs > 0) Add($"crashes every ~{MeanCrashIntervalMs} ms (down <= {MaxRestartDelayMs} ms)");
        if (MeanPauseIntervalMs > 0) Add($"pauses every ~{MeanPauseIntervalMs} ms (<= {MaxPauseMs} ms)");
        if (MeanClockStepIntervalMs > 0) Add($"clock steps every ~{MeanClockStepIntervalMs} ms (<= {MaxClockStepMs} ms)");
        if (MaxDriftPpm > 0) Add($"drift <= {MaxDriftPpm:F0} ppm");
        if (MaxInitialOffsetMs > 0) Add($"offsets <= {MaxInitialOffsetMs} ms");
        return text.Length == 0 ? "no faults" : text.ToString();
    }

    /// <summary>A node's initial clock under this plan, drawn from <paramref name="random"/>.</summary>
    public ClockOptions DrawClock(DeterministicRandom random) => new(
        WallOffsetMs: MaxInitialOffsetMs == 0 ? 0 : random.NextInt64(-MaxInitialOffsetMs, MaxInitialOffsetMs + 1),
        DriftPpm: MaxDriftPpm == 0 ? 0 : (random.NextDouble() * 2 - 1) * MaxDriftPpm);

    /// <summary>The network behaviour under this plan.</summary>
    public NetworkOptions Network(NetworkOptions baseline) => baseline with
    {
        LossProbability = LossProbability,
        DuplicateProbability = DuplicateProbability,
        ReorderProbability = ReorderProbability,
    };
}
