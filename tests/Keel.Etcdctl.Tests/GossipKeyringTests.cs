using System.Diagnostics;
using System.Security.Cryptography;
using Keel.TestCluster;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// The gossip keyring rotated on a live cluster of real processes: three <c>keel serve</c> members started with
/// <c>--gossip-key-file</c>, one <c>keel agent</c> process reading its own key file, and <c>keel keyring
/// install/use/remove</c> sent to different members. Every server and the agent stay alive in every server's gossip
/// view, and no packet is dropped. Keel only: etcd has no gossip.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class GossipKeyringTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(40);

    private static async Task<(int ExitCode, string Output, string Error)> Keel(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(TestCluster.TestCluster.KeelDll);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            var output = process.StandardOutput.ReadToEndAsync(bound.Token);
            var error = process.StandardError.ReadToEndAsync(bound.Token);
            await process.WaitForExitAsync(bound.Token);
            return (process.ExitCode, await output, await error);
        }
        finally
        {
            Stop(process);
        }
    }

    private static void Stop(Process process)
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
    }

    private static string NewKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>Rows of <c>keel members</c>: (role, raft, state, address).</summary>
    private static async Task<List<(string Role, string Raft, string State, string Address)>> Members(string endpoint)
    {
        var result = await Keel("members", "--endpoints", endpoint);
        Assert.True(result.ExitCode == 0, result.Output + result.Error);
        return result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(t => (t[2], t[3], t[4], t[^1])).ToList();
    }

    private static async Task<string> Keyring(string endpoint, params string[] args)
    {
        var result = await Keel(["keyring", .. args, "--endpoints", endpoint]);
        Assert.True(result.ExitCode == 0, $"keel keyring {string.Join(' ', args)}: {result.Output}{result.Error}");
        return result.Output;
    }

    private static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"{what} within {Bound.TotalSeconds} s");
            await Task.Delay(250);
        }
    }

    [Fact(Timeout = 300_000)]
    public async Task Rotating_the_gossip_key_through_the_cli_on_a_live_cluster_loses_no_member()
    {
        var directory = Directory.CreateTempSubdirectory("keel-keyring-");
        var oldKey = NewKey();
        var newKey = NewKey();
        var serverKeys = Path.Combine(directory.FullName, "servers.keys");
        var agentKeys = Path.Combine(directory.FullName, "agent.keys");
        await File.WriteAllTextAsync(serverKeys, oldKey + "\n");
        await File.WriteAllTextAsync(agentKeys, oldKey + "\n");
        Process? agent = null;
        try
        {
            await using var cluster = await TestCluster.TestCluster.StartAsync(3, ServerKind.Keel,
                options: new TestClusterOptions { ExtraFlags = ["--gossip-key-file", serverKeys] });
            var endpoints = cluster.Members.Select(m => new Uri(m.ClientUrl).Authority).ToArray();
            var peer = new Uri(cluster.Members[0].PeerUrl).Authority;

            // The replicated keyring starts as the file's key on every member.
            foreach (var endpoint in endpoints)
                await Eventually(async () => (await Keyring(endpoint, "list")).StartsWith(oldKey + " primary", StringComparison.Ordinal), $"{endpoint} lists the file's key");

            var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in new[] { TestCluster.TestCluster.KeelDll, "agent", "--join", peer, "--zone", "edge", "--gossip-key-file", agentKeys }) start.ArgumentList.Add(arg);
            agent = Process.Start(start)!;
            var agentLog = new System.Collections.Concurrent.ConcurrentQueue<string>();
            agent.OutputDataReceived += (_, e) => { if (e.Data is { } line) agentLog.Enqueue(line); };
            agent.ErrorDataReceived += (_, e) => { if (e.Data is { } line) agentLog.Enqueue("err: " + line); };
            agent.BeginOutputReadLine();
            agent.BeginErrorReadLine();

            async Task<bool> AllAlive()
            {
                foreach (var endpoint in endpoints)
                {
                    var rows = await Members(endpoint);
                    if (rows.Count != 4 || rows.Any(r => r.State != "alive")) return false;
                }
                return true;
            }
            await Eventually(AllAlive, "three servers and the agent alive on every server");

            async Task AgentFile(string text, string primary)
            {
                var before = agentLog.Count(l => l.Contains("gossip keys reloaded", StringComparison.Ordinal));
                await File.WriteAllTextAsync(agentKeys, text);
                await Eventually(() => Task.FromResult(agentLog.Count(l => l.Contains("gossip keys reloaded", StringComparison.Ordinal)) > before),
                    $"the agent reloads its key file (log: {string.Join(" | ", agentLog)})");
                Assert.Contains(agentLog, l => l.Contains("primary " + primary, StringComparison.Ordinal));
            }
            static string Fingerprint(string key) => Convert.ToHexStringLower(SHA256.HashData(Convert.FromBase64String(key)))[..8];
            var violations = new List<string>();
            async Task Step(string what)
            {
                // Between steps, every server's view is sampled: a member suspected or dead at any point fails the test.
                foreach (var endpoint in endpoints)
                    foreach (var row in await Members(endpoint))
                        if (row.State != "alive") violations.Add($"{what}: {endpoint} sees {row.Address} {row.State}");
            }

            // consul keyring -install, -use, -remove: each sent to a different member, agents follow their file.
            var installed = await Keyring(endpoints[0], "install", newKey);
            Assert.Contains(newKey + " " + Fingerprint(newKey), installed);
            await AgentFile($"{oldKey}\n{newKey}\n", Fingerprint(oldKey));
            await Step("install");
            var used = await Keyring(endpoints[1], "use", newKey);
            Assert.StartsWith(newKey + " primary", used);
            await AgentFile($"{newKey}\n{oldKey}\n", Fingerprint(newKey));
            await Step("use");
            // The primary cannot be removed.
            var refused = await Keel("keyring", "remove", newKey, "--endpoints", endpoints[2]);
            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains("cannot remove the primary gossip key", refused.Error);
            var removed = await Keyring(endpoints[2], "remove", oldKey);
            Assert.DoesNotContain(oldKey, removed);
            await AgentFile($"{newKey}\n", Fingerprint(newKey));
            await Step("remove");

            foreach (var endpoint in endpoints)
                await Eventually(async () => (await Keyring(endpoint, "list")).Trim() == $"{newKey} primary {Fingerprint(newKey)}", $"{endpoint} holds only the new key");
            // Keep sampling for longer than a suspicion timeout (3.5 s at least): a member cut off by the rotation would
            // show up suspect, then dead.
            var watchUntil = DateTime.UtcNow.AddSeconds(6);
            while (DateTime.UtcNow < watchUntil) await Step("after");
            Assert.True(await AllAlive(), "every member alive after the rotation");
            Assert.Empty(violations);
            foreach (var member in cluster.Members)
                Assert.DoesNotContain("gossip packet from", member.Output.Text());

            // A fourth process holding only the old key is refused and counted: the old key really is retired.
            var stale = await Keel("agent", "--join", peer, "--gossip-key-file", serverKeys);
            Assert.NotEqual(0, stale.ExitCode);
            Assert.Contains("answered", stale.Error);
            await Eventually(() => Task.FromResult(cluster.Members.Any(m => m.Output.Text().Contains("dropped (forged", StringComparison.Ordinal))),
                "a server logs the stale agent's packets as dropped");
        }
        finally
        {
            if (agent is not null) Stop(agent);
            directory.Delete(recursive: true);
        }
    }
}
