using Keel.Core;

namespace Keel.Simulation;

/// <summary>
/// A workload run in the simulator: it builds the nodes, the invariants checked after every event, the nemesis and
/// the clients, and at the end checks what must hold once everything has healed (the liveness phase).
/// </summary>
public interface ISimulationScenario
{
    /// <summary>The name used on the command line (<c>./keel sim NAME</c>).</summary>
    string Name { get; }

    /// <summary>Arguments besides the seed that the replay command must repeat (e.g. <c>--nodes 7</c>); empty if none.</summary>
    string ReplayArguments { get; }

    /// <summary>Draws the faults of this run from the seed (swarm testing within the scenario's limits).</summary>
    FaultPlan DrawPlan(DeterministicRandom random);

    /// <summary>Total simulated run time.</summary>
    long DurationMs { get; }

    /// <summary>Creates nodes, invariants, nemesis and workload in <paramref name="simulation"/> under <paramref name="plan"/>.</summary>
    void Build(Simulation simulation, FaultPlan plan);

    /// <summary>Final checks after the run; returns null when all is well, else the violation.</summary>
    string? Finish(Simulation simulation);

    /// <summary>A few lines of scenario statistics for the summary.</summary>
    string Summary();
}

/// <summary>The outcome of one seed.</summary>
/// <param name="Seed">The seed.</param>
/// <param name="Scenario">The scenario's name.</param>
/// <param name="Plan">The faults that were on.</param>
/// <param name="EventCount">Events processed.</param>
/// <param name="SimulatedMs">Simulated time covered.</param>
/// <param name="TraceHash">Hash of every event: equal for equal seeds.</param>
/// <param name="Failure">The violation, or null.</param>
/// <param name="Summary">The scenario's statistics.</param>
public sealed record SimulationResult(ulong Seed, string Scenario, FaultPlan Plan, long EventCount, long SimulatedMs,
    ulong TraceHash, SimulationFailureException? Failure, string Summary)
{
    /// <summary>True when no invariant was violated.</summary>
    public bool Passed => Failure is null;

    /// <summary>The exact command that replays this seed.</summary>
    public string ReplayCommand { get; init; } = SimulationRunner.ReplayCommand(Scenario, Seed);
}

/// <summary>Runs scenarios seed by seed and turns any violation into a report with its replay command.</summary>
public static class SimulationRunner
{
    /// <summary>The command line that replays <paramref name="seed"/> of <paramref name="scenario"/>.</summary>
    public static string ReplayCommand(string scenario, ulong seed, string arguments = "") =>
        $"./keel sim {scenario} --seed {seed}" + (arguments.Length == 0 ? "" : " " + arguments);

    /// <summary>Runs one seed of a fresh scenario; never throws for a violation, which is reported in the result.</summary>
    public static SimulationResult Run(ISimulationScenario scenario, ulong seed)
    {
        var simulation = new Simulation(seed);
        var plan = scenario.DrawPlan(simulation.Random.Split("fault-plan"));
        SimulationFailureException? failure = null;
        try
        {
            scenario.Build(simulation, plan);
            simulation.RunUntil(scenario.DurationMs * 1000);
            var violation = scenario.Finish(simulation);
            if (violation is not null)
                failure = new SimulationFailureException(seed, simulation.NowUs, simulation.EventCount, simulation.TraceHash, violation);
        }
        catch (SimulationFailureException violation)
        {
            failure = violation;
        }
        catch (InvariantViolationException violation)
        {
            // A core's own always-on assertion fired: the same report, the same replay.
            failure = new SimulationFailureException(seed, simulation.NowUs, simulation.EventCount, simulation.TraceHash,
                "invariant: " + violation.Message, violation);
        }
        catch (Exception crash)
        {
            failure = new SimulationFailureException(seed, simulation.NowUs, simulation.EventCount, simulation.TraceHash,
                $"unhandled {crash.GetType().Name}: {crash.Message}", crash);
        }
        return new SimulationResult(seed, scenario.Name, plan, simulation.EventCount, simulation.NowMs,
            simulation.TraceHash, failure, scenario.Summary())
        {
            ReplayCommand = ReplayCommand(scenario.Name, seed, scenario.ReplayArguments),
        };
    }
}
