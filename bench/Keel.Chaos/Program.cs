using System.Globalization;
using System.Text.Json;
using Keel.Chaos;
using Keel.TestCluster;

// keel-chaos [--server keel|etcd|both] [--faults a,b|all] [--rounds N] [--fault-seconds S] [--json FILE]
// Runs every chosen fault against each server, interleaved (fault by fault, round by round, Keel then etcd), and prints
// a markdown table of the figures. Needs root (ip netns, iptables).
var servers = new List<ServerKind> { ServerKind.Keel, ServerKind.Etcd };
var faults = Fault.All.Select(f => f().Name).ToList();
var rounds = 1;
var timing = new ScenarioTiming();
string? json = null;
for (var i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--server":
            servers = Next() switch { "keel" => [ServerKind.Keel], "etcd" => [ServerKind.Etcd], _ => [ServerKind.Keel, ServerKind.Etcd] };
            break;
        case "--faults":
            var list = Next();
            if (list != "all") faults = [.. list.Split(',', StringSplitOptions.RemoveEmptyEntries)];
            break;
        case "--rounds": rounds = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--fault-seconds": timing = timing with { Fault = TimeSpan.FromSeconds(double.Parse(Next(), CultureInfo.InvariantCulture)) }; break;
        case "--json": json = Next(); break;
        case "--clock":
            // A probe for libfaketime: prints the wall clock as .NET sees it.
            Console.WriteLine(DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture));
            return 0;
        case "--list":
            foreach (var f in Fault.All.Select(f => f())) Console.WriteLine($"{f.Name,-26} {f.Description}");
            return 0;
        default:
            Console.Error.WriteLine($"unknown argument {args[i]}; usage: keel-chaos [--server keel|etcd|both] [--faults a,b|all] [--rounds N] [--fault-seconds S] [--json FILE] [--list]");
            return 2;
    }
}
var started = DateTime.UtcNow;
var results = new List<ScenarioResult>();
foreach (var name in faults)
    for (var round = 0; round < rounds; round++)
        foreach (var server in servers)
        {
            ScenarioResult result;
            try
            {
                result = await Scenario.RunAsync(server, Fault.Create(name), timing, line => Console.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {line}"));
            }
            catch (Exception e) when (e is InvalidOperationException or TimeoutException)
            {
                result = new ScenarioResult { Server = server == ServerKind.Etcd ? "etcd" : "keel", Fault = name, Skipped = "harness error: " + e.Message };
                Console.WriteLine($"{name} {server}: {e}");
            }
            results.Add(result);
        }
Console.WriteLine();
Console.WriteLine($"{results.Count} scenarios, {rounds} round(s), fault window {timing.Fault.TotalSeconds:F0} s, {(DateTime.UtcNow - started).TotalMinutes:F1} min in all");
Console.WriteLine(Report.Markdown(results));
if (json is not null) await File.WriteAllTextAsync(json, JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals }));
return results.All(r => r.Skipped is not null || r.Passes(TimeSpan.FromSeconds(30))) ? 0 : 1;
