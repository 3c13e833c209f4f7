using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Keel.Simulation;
using Keel.Simulation.Scenarios;

namespace Keel.Cli;

/// <summary>
/// <c>./keel sim [scenario] --seed S | --seeds N</c>: the deterministic simulator's front door. One seed prints a
/// summary ending in the trace hash (equal on every run and machine); many seeds print each failing seed with the
/// command that replays it, and exit non-zero if any failed.
/// </summary>
internal static class SimulateCommand
{
    public static Command Create()
    {
        var scenario = new Argument<string?>("scenario")
        {
            Description = "The scenario: " + string.Join("; ", ScenarioCatalog.Scenarios.Select(s => $"{s.Name}: {s.Description}")),
            Arity = ArgumentArity.ZeroOrOne,
        };
        var seed = new Option<ulong?>("--seed") { Description = "Run this one seed and print its summary and trace hash." };
        var seeds = new Option<int?>("--seeds") { Description = "Run this many seeds (default 20) and report the failing ones." };
        var startSeed = new Option<ulong>("--start-seed") { Description = "First seed of --seeds.", DefaultValueFactory = _ => 1UL };
        var nodes = new Option<int?>("--nodes") { Description = "Cluster size (the scenario's default when omitted)." };
        var bug = new Option<PlantedBug>("--plant-bug") { Description = "Plant a known bug to see the checkers catch it." };
        var maxStep = new Option<long?>("--max-clock-step-ms") { Description = "Largest wall-clock step the nemesis applies." };
        var crashes = new Option<bool>("--nemesis-crashes") { Description = "Let the nemesis crash and restart nodes too." };
        var snapshotEvery = new Option<int?>("--snapshot-every") { Description = "kv: take a snapshot every N applied entries (10 kept for slow followers)." };
        var background = new Option<bool>("--background-snapshots") { Description = "kv: snapshots as the server takes them: captured on the loop, encoded and written later." };
        var join = new Option<int>("--join") { Description = "kv: add this many members to the running cluster (member add, then the new machine joins; some as learners promoted later)." };
        var chunk = new Option<int?>("--snapshot-chunk-bytes") { Description = "kv: the largest snapshot piece a leader streams in one message (64 KiB by default)." };
        var remove = new Option<int>("--remove") { Description = "kv: after the joiners, remove this many founding members (member remove; the leader may be one) and stop them." };
        var table = new Option<bool>("--table") { Description = "Print the scenario's measurements as a Markdown table (aggregated over --seeds)." };
        var command = new Command("sim", "Run the deterministic simulator.") { scenario, seed, seeds, startSeed, nodes, bug, maxStep, crashes, snapshotEvery, background, join, chunk, remove, table };
        command.SetAction(parse => Run(parse.GetValue(scenario), parse.GetValue(seed), parse.GetValue(seeds), parse.GetValue(startSeed),
            new ScenarioSettings(parse.GetValue(nodes), parse.GetValue(bug), parse.GetValue(maxStep), parse.GetValue(crashes), parse.GetValue(snapshotEvery), parse.GetValue(background), parse.GetValue(join), parse.GetValue(chunk), parse.GetValue(remove)), parse.GetValue(table)));
        return command;
    }

    public static int Run(string? scenario, ulong? seed, int? seeds, ulong startSeed, ScenarioSettings settings, bool table)
    {
        var name = scenario ?? ScenarioCatalog.DefaultScenario;
        try
        {
            _ = ScenarioCatalog.Create(name, settings);
        }
        catch (ArgumentException error)
        {
            Console.Error.WriteLine(error.Message);
            return 2;
        }
        return seed is { } one ? RunOne(name, settings, one, table) : RunMany(name, settings, startSeed, seeds ?? 20, table);
    }

    private static int RunOne(string name, ScenarioSettings settings, ulong seed, bool table)
    {
        var stopwatch = Stopwatch.StartNew();
        var scenario = ScenarioCatalog.Create(name, settings);
        var result = SimulationRunner.Run(scenario, seed);
        var elapsed = stopwatch.Elapsed;
        Console.WriteLine($"scenario:   {name}");
        Console.WriteLine($"seed:       {seed}");
        Console.WriteLine($"faults:     {result.Plan}");
        Console.WriteLine($"events:     {result.EventCount:N0}");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"simulated:  {result.SimulatedMs / 1000.0:F1} s in {elapsed.TotalSeconds:F2} s wall ({Speed(result.SimulatedMs, elapsed)} simulated seconds per wall second)"));
        Console.WriteLine(result.Summary);
        if (table && scenario is GossipScenario gossip) Console.WriteLine(gossip.Table());
        if (table && scenario is HeartbeatScenario heartbeat) Console.WriteLine(HeartbeatScenario.Table([heartbeat]));
        if (result.Failure is { } failure)
        {
            Console.WriteLine($"FAILED:     {failure.Violation}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"at:         t={failure.TimeUs / 1000.0:F3} ms, event {failure.EventNumber}"));
            Console.WriteLine($"replay:     {result.ReplayCommand}");
            // An exception thrown inside a node: where it came from is the first thing to read.
            if (failure.InnerException is { } thrown) Console.WriteLine($"thrown at:{Environment.NewLine}{thrown.StackTrace}");
        }
        else
        {
            Console.WriteLine("result:     passed");
        }
        Console.WriteLine($"trace hash: {result.TraceHash:x16}");
        return result.Passed ? 0 : 1;
    }

    private static int RunMany(string name, ScenarioSettings settings, ulong startSeed, int count, bool table)
    {
        var stopwatch = Stopwatch.StartNew();
        var scenarios = new ISimulationScenario[count];
        var results = new SimulationResult[count];
        // Seeds are independent single-threaded simulations: run them on every core, report them in seed order.
        Parallel.For(0, count, i =>
        {
            scenarios[i] = ScenarioCatalog.Create(name, settings);
            results[i] = SimulationRunner.Run(scenarios[i], startSeed + (ulong)i);
        });
        var elapsed = stopwatch.Elapsed;
        var failed = results.Where(r => !r.Passed).ToList();
        foreach (var result in failed)
        {
            Console.WriteLine($"FAIL seed {result.Seed}: {result.Failure!.Violation}");
            Console.WriteLine($"     replay: {result.ReplayCommand}");
        }
        if (table && scenarios is [HeartbeatScenario, ..])
            Console.WriteLine(HeartbeatScenario.Table(scenarios.Cast<HeartbeatScenario>().ToList()));
        var simulatedMs = results.Sum(r => r.SimulatedMs);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{name}: seeds {startSeed}..{startSeed + (ulong)count - 1}: {count - failed.Count} passed, {failed.Count} failed; " +
            $"{simulatedMs / 1000.0:N0} simulated seconds in {elapsed.TotalSeconds:F1} s wall ({Speed(simulatedMs, elapsed)} simulated seconds per wall second, {Environment.ProcessorCount} cores)"));
        return failed.Count == 0 ? 0 : 1;
    }

    private static string Speed(long simulatedMs, TimeSpan elapsed) =>
        (simulatedMs / 1000.0 / Math.Max(elapsed.TotalSeconds, 1e-6)).ToString("N0", CultureInfo.InvariantCulture);
}
