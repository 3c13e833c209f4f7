using System.Runtime.InteropServices;
using System.CommandLine;
using System.Diagnostics;

namespace Keel.Cli;

/// <summary>
/// <c>./keel dev-cluster --nodes 3</c>: starts that many members as separate processes on loopback (client ports
/// 2379, 22379, 32379, ... and peer ports 2380, 22380, 32380, ..., etcd's Procfile layout), with data under
/// <c>./keel-dev</c>, prints their endpoints, and stops them all on Ctrl-C. Restarting it reuses the data, so the
/// cluster comes back with its keys.
/// </summary>
internal static class DevClusterCommand
{
    public static Command Create()
    {
        var nodes = new Option<int>("--nodes") { Description = "How many members (1 to 5).", DefaultValueFactory = _ => 3 };
        var dataDir = new Option<string>("--data-dir") { Description = "Parent directory of the members' data.", DefaultValueFactory = _ => "keel-dev" };
        var command = new Command("dev-cluster", "Run a local cluster of separate member processes on loopback.") { nodes, dataDir };
        command.SetAction((parse, cancellation) => RunAsync(parse.GetValue(nodes), parse.GetValue(dataDir)!, cancellation));
        return command;
    }

    private static async Task<int> RunAsync(int count, string dataDir, CancellationToken cancellation)
    {
        if (count is < 1 or > 5)
        {
            Console.Error.WriteLine("keel: --nodes must be between 1 and 5");
            return 2;
        }
        int ClientPort(int i) => i == 0 ? 2379 : (i + 1) * 10_000 + 2379;
        int PeerPort(int i) => i == 0 ? 2380 : (i + 1) * 10_000 + 2380;
        var initialCluster = string.Join(',', Enumerable.Range(0, count).Select(i => $"n{i + 1}=http://127.0.0.1:{PeerPort(i)}"));
        var (program, prefix) = Self();
        var processes = new List<Process>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                var start = new ProcessStartInfo(program) { UseShellExecute = false };
                foreach (var argument in prefix) start.ArgumentList.Add(argument);
                var dir = Path.Combine(dataDir, $"n{i + 1}");
                var existing = Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any();
                foreach (var argument in new[]
                {
                    "serve", "--name", $"n{i + 1}", "--data-dir", dir,
                    "--listen-client-urls", $"http://127.0.0.1:{ClientPort(i)}", "--advertise-client-urls", $"http://127.0.0.1:{ClientPort(i)}",
                    "--listen-peer-urls", $"http://127.0.0.1:{PeerPort(i)}", "--initial-advertise-peer-urls", $"http://127.0.0.1:{PeerPort(i)}",
                    "--listen-metrics-urls", $"http://127.0.0.1:{PeerPort(i) + 1}",
                    "--initial-cluster", initialCluster, "--initial-cluster-state", existing ? "existing" : "new",
                })
                {
                    start.ArgumentList.Add(argument);
                }
                processes.Add(Process.Start(start) ?? throw new InvalidOperationException("could not start a member process"));
            }
            var endpoints = string.Join(',', Enumerable.Range(0, count).Select(i => $"127.0.0.1:{ClientPort(i)}"));
            Console.WriteLine($"keel dev-cluster: {count} members; endpoints {endpoints}");
            Console.WriteLine($"  try: ETCDCTL_API=3 etcdctl --endpoints={endpoints} endpoint status -w table");
            Console.WriteLine("  Ctrl-C stops every member.");
            // SIGTERM (kill, a service manager, a CI job's timeout) must stop the members too, not only Ctrl-C: take it
            // ourselves so the process lives until the finally below has killed them.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
            {
                context.Cancel = true;
                stop.Cancel();
            });
            var exited = Task.WhenAny(processes.Select(p => p.WaitForExitAsync()));
            await Task.WhenAny(exited, Task.Delay(Timeout.Infinite, stop.Token)).ContinueWith(_ => { }, TaskScheduler.Default);
            if (!stop.IsCancellationRequested)
            {
                var dead = processes.First(p => p.HasExited);
                Console.Error.WriteLine($"keel dev-cluster: a member exited with code {dead.ExitCode}; stopping the others");
                return 1;
            }
            return 0;
        }
        finally
        {
            foreach (var process in processes)
            {
                try
                {
                    if (!process.HasExited) process.Kill(entireProcessTree: true);
                    process.WaitForExit(5000);
                }
                catch (InvalidOperationException)
                {
                }
                process.Dispose();
            }
            Console.WriteLine("keel dev-cluster: stopped");
        }
    }

    /// <summary>How to start this program again: the apphost (or the single-file build), or <c>dotnet keel.dll</c>.</summary>
    private static (string Program, string[] Prefix) Self()
    {
        var path = Environment.ProcessPath ?? "dotnet";
        // Started as `dotnet keel.dll`: the dll sits beside the app's other files (a single-file build never runs this way).
        var entry = Path.Combine(AppContext.BaseDirectory, "keel.dll");
        return Path.GetFileNameWithoutExtension(path) == "dotnet" ? (path, [entry]) : (path, []);
    }
}
