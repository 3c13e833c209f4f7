using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// A 3-member cluster whose leader is killed with SIGKILL three times while two clients write with acknowledgment
/// through etcdctl; each killed member is restarted on its data directory. Every acknowledged write must then be on
/// every member (serializable reads against each member once it has caught up): no acknowledged write lost.
/// </summary>
public sealed class LeaderKillTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int Kills = 3;
    private const int Writers = 2;
    private const int AcksBetweenSteps = 5;
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(45);
    private TestCluster.TestCluster? _cluster;

    private TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => _cluster = await TestCluster.TestCluster.StartAsync(3);

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    [Fact(Timeout = 240_000)]
    public async Task No_acknowledged_write_is_lost_when_the_leader_is_SIGKILLed_repeatedly()
    {
        var acknowledged = new ConcurrentDictionary<string, string>();
        var failures = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var ctl = Cluster.Etcdctl();

        var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested && i < 100_000; i++)
            {
                var key = $"ack/w{w}/{i:D6}";
                var value = $"value-{w}-{i}";
                var result = await ctl.RunAsync(["put", key, value, "--command-timeout=3s"], null, TimeSpan.FromSeconds(10));
                if (result.ExitCode == 0) acknowledged[key] = value;
                else failures.Enqueue(result.StandardError.Trim());
            }
        })).ToArray();

        async Task AwaitMoreAcks(string phase)
        {
            var target = acknowledged.Count + AcksBetweenSteps;
            var clock = Stopwatch.StartNew();
            while (acknowledged.Count < target)
            {
                Assert.True(clock.Elapsed < StepTimeout,
                    $"{phase}: only {acknowledged.Count}/{target} acknowledged writes after {StepTimeout.TotalSeconds} s; " +
                    $"last failures: {string.Join(" | ", failures.TakeLast(3))}\n{Cluster.DescribeOutput()}");
                Assert.False(writers.Any(t => t.IsFaulted), "a writer crashed");
                await Task.Delay(50);
            }
        }

        try
        {
            await AwaitMoreAcks("before the first kill");
            for (var kill = 1; kill <= Kills; kill++)
            {
                var leader = await Cluster.FindLeaderAsync();
                await Cluster.KillAsync(leader);
                var successor = await Cluster.FindLeaderAsync();
                Assert.NotEqual(leader, successor);
                output.WriteLine($"kill {kill}: SIGKILLed leader {Cluster.Members[leader]}, new leader {Cluster.Members[successor]}, {acknowledged.Count} acks so far");
                await AwaitMoreAcks($"after kill {kill} of {Cluster.Members[leader]}");
                await Cluster.RestartAsync(leader);
                await AwaitMoreAcks($"after restart {kill} of {Cluster.Members[leader]}");
            }
        }
        finally
        {
            stop.Cancel();
            await Task.WhenAll(writers).WaitAsync(TimeSpan.FromSeconds(30));
        }

        output.WriteLine($"{acknowledged.Count} acknowledged writes, {failures.Count} failed or unacknowledged");
        Assert.True(acknowledged.Count >= (3 * Kills + 1) * AcksBetweenSteps);
        foreach (var member in Cluster.Members)
        {
            var missing = await MissingOnMember(member.Index, acknowledged);
            Assert.True(missing.Count == 0,
                $"{member} lacks {missing.Count} of {acknowledged.Count} acknowledged writes, e.g. {string.Join(", ", missing.Take(5))}\n{Cluster.DescribeOutput()}");
        }
    }

    /// <summary>
    /// The acknowledged writes absent or different on one member, read with serializable (local) reads; retried,
    /// bounded, until the member has caught up.
    /// </summary>
    private async Task<IReadOnlyList<string>> MissingOnMember(int memberIndex, IReadOnlyDictionary<string, string> acknowledged)
    {
        var ctl = Cluster.Etcdctl(memberIndex);
        var clock = Stopwatch.StartNew();
        IReadOnlyList<string> missing = acknowledged.Keys.ToArray();
        while (clock.Elapsed < StepTimeout)
        {
            var result = await ctl.RunAsync("get", "ack/", "--prefix", "--consistency", "s", "-w", "json");
            if (result.ExitCode == 0)
            {
                using var json = JsonDocument.Parse(result.StandardOutput);
                var present = json.RootElement.TryGetProperty("kvs", out var kvs)
                    ? kvs.EnumerateArray().ToDictionary(kv => kv.GetProperty("key").Base64Text(), kv => kv.GetProperty("value").Base64Text())
                    : new Dictionary<string, string>();
                missing = acknowledged.Where(a => present.GetValueOrDefault(a.Key) != a.Value).Select(a => a.Key).Order(StringComparer.Ordinal).ToArray();
                if (missing.Count == 0) return missing;
            }
            await Task.Delay(200);
        }
        return missing;
    }
}
