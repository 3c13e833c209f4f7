using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Keel.Server.Tests;

/// <summary>
/// A member cut off by a blackhole (packets dropped, connections left open, as with iptables DROP) hears the new leader
/// soon after the partition heals, instead of waiting out TCP's retransmission backoff.
/// </summary>
public sealed class PeerRecoveryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task IsolatedLeaderLearnsNewLeaderSoonAfterBlackholeHeals()
    {
        await using var network = new BlackholeNetwork();
        var ports = FreePorts(6);
        var proxies = Enumerable.Range(0, 3).Select(i => network.Add(new IPEndPoint(IPAddress.Loopback, ports[3 + i]))).ToArray();
        // Peers reach each other only through the proxies; each member listens on its own port behind its proxy.
        var peers = string.Join(',', Enumerable.Range(0, 3).Select(i => $"m{i}=http://127.0.0.1:{proxies[i].Port}"));
        var root = Path.Combine(Path.GetTempPath(), "keel-peer-recovery-" + Path.GetRandomFileName());
        var servers = new KeelServer?[3];
        try
        {
            for (var i = 0; i < 3; i++)
            {
                servers[i] = await KeelServer.StartAsync(new ServerOptions
                {
                    Name = $"m{i}",
                    DataDir = Path.Combine(root, $"m{i}"),
                    ListenClientUrls = [new Uri($"http://127.0.0.1:{ports[i]}")],
                    AdvertiseClientUrls = [new Uri($"http://127.0.0.1:{ports[i]}")],
                    ListenPeerUrls = [new Uri($"http://127.0.0.1:{ports[3 + i]}")],
                    InitialAdvertisePeerUrls = [new Uri($"http://127.0.0.1:{proxies[i].Port}")],
                    InitialCluster = peers,
                }, logging => logging.SetMinimumLevel(LogLevel.Warning));
                proxies[i].TargetId = servers[i]!.Host.MemberId;
            }
            var hosts = servers.Select(s => s!.Host).ToArray();
            var oldLeader = await PollAsync(() => hosts.Select(h => h.Status.Leader).Distinct().ToArray() is [var l] && l != 0 ? l : (ulong?)null,
                TimeSpan.FromSeconds(15), "initial leader");
            var isolated = Array.FindIndex(hosts, h => h.MemberId == oldLeader);
            var others = hosts.Where((_, i) => i != isolated).ToArray();

            var partitioned = Stopwatch.StartNew();
            network.Blackhole(oldLeader);
            var newLeader = await PollAsync(() => others.Select(h => h.Status.Leader).Distinct().ToArray() is [var l] && l != 0 && l != oldLeader ? l : (ulong?)null,
                TimeSpan.FromSeconds(15), "a new leader among the majority");
            var electedAfter = partitioned.Elapsed;
            // Hold the partition for 3.5 s in all (the fault's duration, not a wait for anything): off TCP's
            // retransmission schedule (0.2, 0.6, 1.4, 3.0, 6.2 s...), so a connection that sat the partition out in
            // backoff would stay silent until about 6.2 s; a 3.0 s partition would hide that by luck.
            var remaining = TimeSpan.FromSeconds(3.5) - partitioned.Elapsed;
            if (remaining > TimeSpan.Zero) await Task.Delay(remaining);
            Assert.NotEqual(newLeader, hosts[isolated].Status.Leader);

            network.Heal();
            var healed = Stopwatch.StartNew();
            await PollAsync(() => hosts[isolated].Status.Leader == newLeader ? true : (bool?)null, TimeSpan.FromSeconds(30), "the isolated member to learn the new leader");
            var learned = healed.Elapsed;
            output.WriteLine($"new leader elected {electedAfter.TotalMilliseconds:F0} ms into the partition; isolated member learned it {learned.TotalMilliseconds:F0} ms after the heal");
            Console.WriteLine($"peer-recovery: heal-to-leader-known {learned.TotalMilliseconds:F0} ms (election {electedAfter.TotalMilliseconds:F0} ms)");
            Assert.True(learned < TimeSpan.FromSeconds(2), $"the isolated member learned the new leader {learned.TotalMilliseconds:F0} ms after the heal");
        }
        finally
        {
            foreach (var server in servers)
                if (server is not null) await server.DisposeAsync();
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static async Task<T> PollAsync<T>(Func<T?> probe, TimeSpan within, string what) where T : struct
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < within)
        {
            if (probe() is { } value) return value;
            await Task.Delay(5);
        }
        throw new TimeoutException($"no {what} within {within.TotalSeconds:F0} s");
    }

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToArray();
        foreach (var listener in listeners) listener.Start();
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        foreach (var listener in listeners) listener.Stop();
        return ports;
    }
}
