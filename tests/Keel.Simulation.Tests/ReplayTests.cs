using Keel.Simulation;
using Keel.Simulation.Scenarios;

namespace Keel.Simulation.Tests;

/// <summary>The simulator's promise: a broken invariant is caught, reported with its seed, and replays exactly.</summary>
public sealed class ReplayTests
{
    [Fact]
    public void A_run_replays_to_the_same_trace_hash()
    {
        var first = SimulationRunner.Run(new HeartbeatScenario(), 7);
        var second = SimulationRunner.Run(new HeartbeatScenario(), 7);
        Assert.True(first.Passed, first.Failure?.Message);
        Assert.Equal(first.TraceHash, second.TraceHash);
        Assert.Equal(first.EventCount, second.EventCount);
        Assert.NotEqual(first.TraceHash, SimulationRunner.Run(new HeartbeatScenario(), 8).TraceHash);
    }

    [Theory]
    [InlineData(PlantedBug.HlcIgnoresRemote, "happens-before violated")]
    [InlineData(PlantedBug.HlcForgetsUpperBound, "went backwards or repeated")]
    public void A_planted_bug_is_caught_reported_with_its_seed_and_replays_to_the_same_failure(PlantedBug bug, string expected)
    {
        HeartbeatScenario Scenario() => new(new HeartbeatScenarioOptions { Bug = bug, EnforceGoals = false, MaxClockStepMs = 5_000, NemesisCrashes = true });
        SimulationResult? caught = null;
        for (ulong seed = 1; seed <= 100 && caught is null; seed++)
        {
            var result = SimulationRunner.Run(Scenario(), seed);
            if (!result.Passed) caught = result;
        }
        Assert.NotNull(caught);
        Assert.Contains(expected, caught.Failure!.Violation, StringComparison.Ordinal);
        Assert.Equal($"./keel sim heartbeat --seed {caught.Seed} --max-clock-step-ms 5000 --nemesis-crashes --plant-bug {bug}", caught.ReplayCommand);
        Assert.Contains($"seed {caught.Seed}", caught.Failure.Message, StringComparison.Ordinal);

        var replay = SimulationRunner.Run(Scenario(), caught.Seed);
        Assert.False(replay.Passed);
        Assert.Equal(caught.Failure.Violation, replay.Failure!.Violation);
        Assert.Equal(caught.Failure.TraceHash, replay.Failure.TraceHash);
        Assert.Equal(caught.Failure.EventNumber, replay.Failure.EventNumber);
    }

    [Fact]
    public void Without_the_bug_the_same_seeds_pass()
    {
        for (ulong seed = 1; seed <= 20; seed++)
        {
            var result = SimulationRunner.Run(new HeartbeatScenario(new HeartbeatScenarioOptions { MaxClockStepMs = 5_000, NemesisCrashes = true, EnforceGoals = false }), seed);
            Assert.True(result.Passed, result.Failure?.Message);
        }
    }
}
