using Keel.Simulation;
using Keel.Simulation.Scenarios;

namespace Keel.Heartbeat.Tests;

/// <summary>
/// The failure detector under the deterministic simulator: 5 nodes heartbeating over a 1% lossy network while they
/// are paused for up to 3 s and their wall clocks step; one node really crashes. Every seed must end with no false
/// Failed verdict from phi-accrual and the crash detected within 5 s by every monitor that was not itself paused.
/// </summary>
public sealed class FailureDetectionSimulationTests
{
    private const int Seeds = 200;

    [Fact]
    public void Phi_accrual_gives_no_false_verdicts_and_detects_a_crash_within_5_s_over_200_seeds()
    {
        var results = Enumerable.Range(1, Seeds).AsParallel()
            .Select(seed => SimulationRunner.Run(new HeartbeatScenario(), (ulong)seed))
            .OrderBy(result => result.Seed)
            .ToList();
        var failures = results.Where(result => !result.Passed)
            .Select(result => $"{result.Failure!.Violation}\n  replay: {result.ReplayCommand}")
            .ToList();
        Assert.True(failures.Count == 0, string.Join('\n', failures));
    }

    [Fact]
    public void The_scenario_measures_what_the_table_reports()
    {
        var runs = new List<HeartbeatScenario>();
        for (ulong seed = 1; seed <= 20; seed++)
        {
            var scenario = new HeartbeatScenario();
            Assert.True(SimulationRunner.Run(scenario, seed).Passed);
            runs.Add(scenario);
        }
        // The 3 s fixed timeout cannot tell a 3 s pause from a crash: it must have convicted live nodes somewhere,
        // which is what makes the phi-accrual row meaningful.
        Assert.Contains(runs, run => run.Verdicts.Any(v => v.Detector == DetectorKind.FixedThreeSeconds && !v.AccusedWasDown));
        // Every detector eventually convicts the real crash; the grace period takes about 40 s.
        foreach (var run in runs)
        {
            var k8s = run.DetectionTimesMs(DetectorKind.KubernetesGracePeriod, onlyUndisturbed: true).Where(d => d.DetectionMs is not null);
            Assert.All(k8s, d => Assert.InRange(d.DetectionMs!.Value, 39_000, 45_000));
        }
        var table = HeartbeatScenario.Table(runs);
        Assert.Contains("| phi-accrual (Keel) | 0 | 0 of 20 |", table, StringComparison.Ordinal);
    }
}
