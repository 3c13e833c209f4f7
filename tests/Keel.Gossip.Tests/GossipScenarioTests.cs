using Keel.Gossip;
using Keel.Simulation;
using Keel.Simulation.Scenarios;

namespace Keel.Gossip.Tests;

public sealed class GossipScenarioTests
{
    [Fact]
    public void A_small_simulated_cluster_spreads_a_change_and_convicts_a_crash_in_every_variant()
    {
        var scenario = new GossipScenario(new GossipScenarioOptions
        {
            Nodes = 30,
            DurationMs = 40_000,
            CrashAtMs = 12_000,
            SteadyWindowMs = (1_000, 10_000),
            MaxPauseMs = 0,
            LossProbability = 0.01,
        });
        var result = SimulationRunner.Run(scenario, 7);
        Assert.True(result.Passed, result.Failure?.Message);
        foreach (var s in scenario.Stats)
        {
            Assert.True(s.TagSeenBy.Count >= scenario.Observers, $"{s.Name}: tag change seen by {s.TagSeenBy.Count}");
            Assert.True(s.DeadSeenBy.Count >= scenario.Observers, $"{s.Name}: crash convicted by {s.DeadSeenBy.Count}");
            Assert.Equal(0, s.FalseDeaths);
            Assert.True(s.SteadyBytes > 0);
        }
        Assert.Contains("| lifeguard | 30 |", scenario.Table());
    }

    [Fact]
    public void The_same_seed_gives_the_same_run()
    {
        GossipScenarioOptions Options() => new() { Nodes = 20, DurationMs = 15_000, CrashAtMs = 8_000, SteadyWindowMs = (1_000, 7_000) };
        var a = SimulationRunner.Run(new GossipScenario(Options()), 3);
        var b = SimulationRunner.Run(new GossipScenario(Options()), 3);
        Assert.Equal(a.TraceHash, b.TraceHash);
        Assert.Equal(a.EventCount, b.EventCount);
    }

    [Fact]
    public void Digest_anti_entropy_sends_far_fewer_bytes_than_full_state_in_steady_state()
    {
        var scenario = new GossipScenario(new GossipScenarioOptions
        {
            Nodes = 40,
            DurationMs = 25_000,
            CrashAtMs = 0,
            MaxPauseMs = 0,
            LossProbability = 0,
            SteadyWindowMs = (2_000, 22_000),
            Variants =
            [
                new("digest", new GossipOptions { AntiEntropy = AntiEntropyMode.Digest, PushPullIntervalMs = 5_000 }),
                new("full-state", new GossipOptions { AntiEntropy = AntiEntropyMode.FullState, PushPullIntervalMs = 5_000 }),
            ],
        });
        Assert.True(SimulationRunner.Run(scenario, 5).Passed);
        var digest = scenario.Stats[0].SteadyAntiEntropyBytes;
        var full = scenario.Stats[1].SteadyAntiEntropyBytes;
        Assert.True(full > 0 && digest * 10 <= full, $"digest {digest} B vs full {full} B");
    }

    [Fact]
    public void Under_churn_digests_still_cut_anti_entropy_by_ninety_percent_and_joins_are_counted_apart()
    {
        var scenario = new GossipScenario(new GossipScenarioOptions
        {
            Nodes = 80,
            DurationMs = 30_000,
            CrashAtMs = 0,
            MaxPauseMs = 0,
            LossProbability = 0,
            ChurnFraction = 0.1,
            ChurnWindowMs = (8_000, 24_000),
            Variants =
            [
                new("digest", new GossipOptions { AntiEntropy = AntiEntropyMode.Digest, PushPullIntervalMs = 3_000 }),
                new("full-state", new GossipOptions { AntiEntropy = AntiEntropyMode.FullState, PushPullIntervalMs = 3_000 }),
            ],
        });
        Assert.True(SimulationRunner.Run(scenario, 11).Passed);
        var digest = scenario.Stats[0];
        var full = scenario.Stats[1];
        Assert.True(digest.ChurnJoinBytes > 0 && full.ChurnJoinBytes > 0, "rejoiners pulled the view once each");
        Assert.True(full.ChurnAntiEntropyBytes > 0 && digest.ChurnAntiEntropyBytes * 10 <= full.ChurnAntiEntropyBytes,
            $"digest {digest.ChurnAntiEntropyBytes} B vs full {full.ChurnAntiEntropyBytes} B under churn");
    }
}
