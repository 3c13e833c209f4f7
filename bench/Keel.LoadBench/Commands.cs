using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.LoadBench;

/// <summary>The command-line surface; each command parses its flags and hands a <see cref="LoadSpec"/> to the runner.</summary>
public static class Commands
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    private static Option<string> EndpointsOption() => new("--endpoints")
    {
        Description = "Comma-separated client URLs (http://127.0.0.1:2379,...).",
        DefaultValueFactory = _ => "http://127.0.0.1:2379",
    };

    private static Option<int> IntOption(string name, int defaultValue, string description) =>
        new(name) { DefaultValueFactory = _ => defaultValue, Description = description };

    private static Option<double> TimeLimitOption(double defaultSeconds) => new("--time-limit")
    {
        DefaultValueFactory = _ => defaultSeconds,
        Description = "Wall-time bound of the measured phase of a row, in seconds.",
    };

    private static Option<string?> JsonOption() => new("--json") { Description = "Also write the results as JSON to this file." };

    private static Option<string> LabelOption() => new("--label") { DefaultValueFactory = _ => "target", Description = "Name of the system measured (etcd, keel)." };

    private static string[] SplitEndpoints(string value) =>
        value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary><c>put --endpoints a,b,c --clients N --conns C --total T --key-size 8 --val-size 256 [--key-space K] [--target-leader]</c>.</summary>
    public static Command Put()
    {
        var endpoints = EndpointsOption();
        var clients = IntOption("--clients", 1, "Concurrent clients, each with one request in flight.");
        var conns = IntOption("--conns", 1, "gRPC connections shared by the clients.");
        var total = new Option<long>("--total") { DefaultValueFactory = _ => 10_000, Description = "Requests to issue at most." };
        var keySize = IntOption("--key-size", 8, "Key size in bytes.");
        var valSize = IntOption("--val-size", 256, "Value size in bytes.");
        var keySpace = new Option<long>("--key-space") { DefaultValueFactory = _ => 0, Description = "Distinct keys to cycle through; 0 = a new key per put." };
        var targetLeader = new Option<bool>("--target-leader") { Description = "Send every put to the leader (found by Maintenance.Status)." };
        var timeLimit = TimeLimitOption(60);
        var json = JsonOption();
        var label = LabelOption();
        var command = new Command("put", "Benchmark KV.Put.") { endpoints, clients, conns, total, keySize, valSize, keySpace, targetLeader, timeLimit, json, label };
        command.SetAction((parse, cancellationToken) => RunSingle(parse.GetValue(label)!, SplitEndpoints(parse.GetValue(endpoints)!), new LoadSpec
        {
            Name = $"put-{parse.GetValue(clients)}",
            Operation = LoadOperation.Put,
            Clients = parse.GetValue(clients),
            Connections = parse.GetValue(conns),
            Total = parse.GetValue(total),
            KeySizeBytes = parse.GetValue(keySize),
            ValueSizeBytes = parse.GetValue(valSize),
            KeySpace = parse.GetValue(keySpace),
            TargetLeader = parse.GetValue(targetLeader),
            TimeLimit = TimeSpan.FromSeconds(parse.GetValue(timeLimit)),
        }, parse.GetValue(json), cancellationToken));
        return command;
    }

    /// <summary><c>range --consistency l|s --clients N --conns C --total T [--key K]</c>.</summary>
    public static Command Range()
    {
        var endpoints = EndpointsOption();
        var consistency = new Option<string>("--consistency") { DefaultValueFactory = _ => "l", Description = "l = linearizable, s = serializable." };
        consistency.AcceptOnlyFromAmong("l", "s");
        var clients = IntOption("--clients", 1, "Concurrent clients, each with one request in flight.");
        var conns = IntOption("--conns", 1, "gRPC connections shared by the clients.");
        var total = new Option<long>("--total") { DefaultValueFactory = _ => 10_000, Description = "Requests to issue at most." };
        var key = new Option<string>("--key") { DefaultValueFactory = _ => Keel.LoadBench.Suite.ReadKey, Description = "The key every request reads." };
        var timeLimit = TimeLimitOption(60);
        var json = JsonOption();
        var label = LabelOption();
        var command = new Command("range", "Benchmark KV.Range of one key.") { endpoints, consistency, clients, conns, total, key, timeLimit, json, label };
        command.SetAction((parse, cancellationToken) => RunSingle(parse.GetValue(label)!, SplitEndpoints(parse.GetValue(endpoints)!), new LoadSpec
        {
            Name = $"range-{parse.GetValue(consistency)}-{parse.GetValue(clients)}",
            Operation = LoadOperation.Range,
            Linearizable = parse.GetValue(consistency) == "l",
            Clients = parse.GetValue(clients),
            Connections = parse.GetValue(conns),
            Total = parse.GetValue(total),
            RangeKey = parse.GetValue(key)!,
            TimeLimit = TimeSpan.FromSeconds(parse.GetValue(timeLimit)),
        }, parse.GetValue(json), cancellationToken));
        return command;
    }

    /// <summary><c>suite --endpoints a,b,c [--quick] [--scale X] [--label L] [--round R] [--json F]</c>: issue 5's rows.</summary>
    public static Command Suite()
    {
        var endpoints = EndpointsOption();
        var quick = new Option<bool>("--quick") { Description = "A tenth of the requests and 3 s per row: a smoke run, not a measurement." };
        var scale = new Option<double>("--scale") { DefaultValueFactory = _ => 1.0, Description = "Multiply every row's request total." };
        var timeLimit = new Option<double?>("--time-limit") { Description = "Seconds per row (default 10, quick 3)." };
        var putsTo = new Option<string>("--puts-to") { DefaultValueFactory = _ => "leader", Description = "leader (etcd's --target-leader) or all." };
        putsTo.AcceptOnlyFromAmong("leader", "all");
        var rows = new Option<string?>("--rows") { Description = "Comma-separated row names to run (default: all)." };
        var pause = new Option<double>("--pause") { DefaultValueFactory = _ => 2.0, Description = "Seconds of rest between rows." };
        var warmup = new Option<double>("--warmup-seconds") { DefaultValueFactory = _ => 3.0, Description = "Seconds of untimed load before each row is measured (both systems alike; quick: 0)." };
        var round = IntOption("--round", 0, "Round number recorded in the JSON.");
        var serverPids = new Option<string?>("--server-pids") { Description = "Comma-separated pids of the server processes: their CPU per call is reported (Linux /proc)." };
        var serverMetrics = new Option<bool>("--server-metrics") { Description = "Read every endpoint's /metrics around each row: the bytes the servers allocated per call (go_memstats_alloc_bytes_total, dotnet_gc_allocated_bytes_total)." };
        var json = JsonOption();
        var label = LabelOption();
        var command = new Command("suite", "Puts with 1, 64, 1000 clients; linearizable and serializable reads with 64 clients.")
        {
            endpoints, quick, scale, timeLimit, putsTo, rows, pause, warmup, round, serverPids, serverMetrics, json, label,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var urls = SplitEndpoints(parse.GetValue(endpoints)!);
            var limit = parse.GetValue(timeLimit) is { } seconds ? TimeSpan.FromSeconds(seconds) : (TimeSpan?)null;
            var warmupDuration = parse.GetValue(quick) ? TimeSpan.Zero : TimeSpan.FromSeconds(parse.GetValue(warmup));
            var specs = Keel.LoadBench.Suite.Rows(parse.GetValue(quick), parse.GetValue(scale), limit, parse.GetValue(putsTo) == "leader")
                .Select(spec => spec with
                {
                    WarmupDuration = warmupDuration,
                    ServerPids = ServerCpu.ParsePids(parse.GetValue(serverPids)),
                    ServerMetricsEndpoints = parse.GetValue(serverMetrics) ? urls : [],
                }).ToList();
            if (parse.GetValue(rows) is { } only)
            {
                var wanted = only.Split(',', StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
                specs = specs.Where(spec => wanted.Contains(spec.Name)).ToList();
            }
            var status = await ClusterProbe.WaitReadyAsync(urls, TimeSpan.FromSeconds(30), cancellationToken);
            if (status is null)
            {
                Console.Error.WriteLine($"no leader agreed by every endpoint of {string.Join(",", urls)} within 30 s");
                return 2;
            }
            Console.WriteLine($"{parse.GetValue(label)}: version {status.Version}, leader {status.LeaderEndpoint}, {Environment.ProcessorCount} cores");
            var (verified, check) = await PrepareReadKey(status.LeaderEndpoint, urls, cancellationToken);
            Console.WriteLine($"read key: {check}");
            var report = new RunReport
            {
                Label = parse.GetValue(label)!,
                Round = parse.GetValue(round),
                Endpoints = urls,
                ServerVersion = status.Version,
                StartedUtc = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
                ProcessorCount = Environment.ProcessorCount,
                ReadKeyVerified = verified,
                ReadKeyCheck = check,
                Rows = [],
            };
            foreach (var spec in specs)
            {
                var result = await LoadRunner.RunAsync(spec, spec.TargetLeader ? [status.LeaderEndpoint] : urls, cancellationToken);
                Console.WriteLine(result.ToLine());
                report.Rows.Add(result);
                await Task.Delay(TimeSpan.FromSeconds(parse.GetValue(pause)), cancellationToken);
            }
            WriteJson(parse.GetValue(json), report);
            return report.Rows.Any(r => r.Succeeded == 0) ? 1 : 0;
        });
        return command;
    }

    /// <summary><c>ready --endpoints a,b,c [--timeout S]</c>: exits 0 once every endpoint answers and all agree on a leader.</summary>
    public static Command Ready()
    {
        var endpoints = EndpointsOption();
        var timeout = new Option<double>("--timeout") { DefaultValueFactory = _ => 30, Description = "Seconds to wait." };
        var command = new Command("ready", "Wait until every endpoint answers Maintenance.Status and all agree on a leader.") { endpoints, timeout };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var status = await ClusterProbe.WaitReadyAsync(SplitEndpoints(parse.GetValue(endpoints)!), TimeSpan.FromSeconds(parse.GetValue(timeout)), cancellationToken);
            if (status is null)
            {
                Console.Error.WriteLine("not ready");
                return 1;
            }
            Console.WriteLine($"ready: leader {status.LeaderEndpoint}, version {status.Version}");
            return 0;
        });
        return command;
    }

    /// <summary><c>compare --baseline etcd --candidate keel [--markdown F] run1.json run2.json ...</c>.</summary>
    public static Command Compare()
    {
        var baseline = new Option<string>("--baseline") { DefaultValueFactory = _ => "etcd", Description = "Label of the reference system." };
        var candidate = new Option<string>("--candidate") { DefaultValueFactory = _ => "keel", Description = "Label of the system compared to it." };
        var markdown = new Option<string?>("--markdown") { Description = "Also write the table to this file." };
        var files = new Argument<string[]>("files") { Description = "JSON files written by suite --json.", Arity = ArgumentArity.OneOrMore };
        var command = new Command("compare", "Table of two systems' suite runs with ratios per row.") { baseline, candidate, markdown, files };
        command.SetAction(parse =>
        {
            var reports = parse.GetValue(files)!
                .Select(file => JsonSerializer.Deserialize<RunReport>(File.ReadAllText(file), Json)
                    ?? throw new InvalidDataException($"{file}: not a suite report"))
                .ToList();
            var table = Comparison.ToMarkdown(reports, parse.GetValue(baseline)!, parse.GetValue(candidate)!);
            Console.Write(table);
            if (parse.GetValue(markdown) is { } path) File.WriteAllText(path, table);
            return 0;
        });
        return command;
    }

    private static async Task<int> RunSingle(string label, string[] endpoints, LoadSpec spec, string? jsonPath, CancellationToken cancellationToken)
    {
        var status = await ClusterProbe.TryGetStatusAsync(endpoints, cancellationToken);
        if (spec.TargetLeader && status is null)
        {
            Console.Error.WriteLine("--target-leader: no leader agreed by every endpoint");
            return 2;
        }
        var result = await LoadRunner.RunAsync(spec, spec.TargetLeader ? [status!.LeaderEndpoint] : endpoints, cancellationToken);
        Console.WriteLine(result.ToLine());
        WriteJson(jsonPath, new RunReport
        {
            Label = label,
            Endpoints = endpoints,
            ServerVersion = status?.Version,
            StartedUtc = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
            ProcessorCount = Environment.ProcessorCount,
            Rows = [result],
        });
        return result.Succeeded == 0 ? 1 : 0;
    }

    /// <summary>
    /// Writes the read key through the leader, then reads it back from every endpoint, linearizable and serializable
    /// (a follower may lag a moment: retried for 2 s), and checks the value: a read benchmark of a server that answers
    /// fast with nothing would measure nothing.
    /// </summary>
    private static async Task<(bool Verified, string Check)> PrepareReadKey(string leader, IReadOnlyList<string> endpoints, CancellationToken cancellationToken)
    {
        var key = ByteString.CopyFromUtf8(Keel.LoadBench.Suite.ReadKey);
        var value = ByteString.CopyFrom(LoadRunner.DeterministicBytes(256));
        using (var channel = ConnectionPool.CreateChannel(leader))
        {
            await new KV.KVClient(channel).PutAsync(new PutRequest { Key = key, Value = value },
                deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: cancellationToken);
        }
        foreach (var endpoint in endpoints)
        {
            using var channel = ConnectionPool.CreateChannel(endpoint);
            var kv = new KV.KVClient(channel);
            foreach (var serializable in new[] { false, true })
            {
                var found = false;
                for (var attempt = 0; attempt < 20 && !found; attempt++)
                {
                    if (attempt > 0) await Task.Delay(100, cancellationToken);
                    var response = await kv.RangeAsync(new RangeRequest { Key = key, Serializable = serializable },
                        deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: cancellationToken);
                    found = response.Kvs.Count == 1 && response.Kvs[0].Key == key && response.Kvs[0].Value == value && response.Count == 1;
                }
                if (!found)
                {
                    return (false, $"{endpoint} did not return the read key's 256-byte value to a {(serializable ? "serializable" : "linearizable")} read");
                }
            }
        }
        return (true, $"every endpoint returned the read key's 256-byte value (linearizable and serializable)");
    }

    private static void WriteJson(string? path, RunReport report)
    {
        if (path is null) return;
        File.WriteAllText(path, JsonSerializer.Serialize(report, Json));
    }
}
