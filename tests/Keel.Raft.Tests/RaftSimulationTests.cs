using Keel.Simulation;
using Keel.Simulation.Scenarios;

namespace Keel.Raft.Tests;

/// <summary>
/// The Raft core on the project's deterministic simulator: 3, 5 and 7 node clusters under every fault (loss,
/// duplication, reordering, partitions, crashes that lose or tear unsynced writes, pauses, clock steps), safety checked
/// after every event, then liveness after healing. `./keel sim raft --seeds N` runs more.
/// </summary>
public sealed class RaftSimulationTests
{
    private const int Seeds = 500;

    [Fact]
    public void Five_hundred_seeds_keep_every_safety_property_and_recover_after_healing()
    {
        var failures = Enumerable.Range(1, Seeds).AsParallel()
            .Select(seed => SimulationRunner.Run(new RaftScenario(), (ulong)seed))
            .Where(result => !result.Passed)
            .OrderBy(result => result.Seed)
            .Select(result => $"{result.Failure!.Violation}\n  replay: {result.ReplayCommand}")
            .ToList();
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public void Every_cluster_size_is_exercised_and_entries_commit()
    {
        var sizes = new HashSet<int>();
        long readBack = 0;
        for (ulong seed = 1; seed <= 12; seed++)
        {
            var scenario = new RaftScenario();
            var result = SimulationRunner.Run(scenario, seed);
            Assert.True(result.Passed, result.Failure?.Message);
            Assert.True(scenario.CommittedCount > 100, $"seed {seed} committed only {scenario.CommittedCount} entries");
            sizes.Add(scenario.NodeCount);
            readBack += scenario.EntriesReadBack;
        }
        Assert.Equal([3, 5, 7], sizes.Order());
        // The nodes keep 256 bytes of applied entries in memory: catch-ups and the log comparison read from the WALs.
        Assert.True(readBack > 1000, $"only {readBack} entries were read back from a WAL");
    }

    [Fact]
    public void A_planted_double_vote_is_caught_and_replays_exactly()
    {
        RaftScenario Scenario() => new(new RaftScenarioOptions { Bug = PlantedBug.RaftVoteTwiceInTerm });
        SimulationResult? caught = null;
        for (ulong seed = 1; seed <= 100 && caught is null; seed++)
        {
            var result = SimulationRunner.Run(Scenario(), seed);
            if (!result.Passed) caught = result;
        }
        Assert.NotNull(caught);
        Assert.Contains("vote", caught.Failure!.Violation + caught.Failure.InnerException?.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Equal($"./keel sim raft --seed {caught.Seed} --plant-bug RaftVoteTwiceInTerm", caught.ReplayCommand);
        var replay = SimulationRunner.Run(Scenario(), caught.Seed);
        Assert.Equal(caught.Failure.Violation, replay.Failure?.Violation);
        Assert.Equal(caught.Failure.TraceHash, replay.Failure!.TraceHash);
    }
}
