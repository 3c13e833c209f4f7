using System.Collections.Concurrent;
using System.Diagnostics;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace Keel.DotnetEtcd.Tests;

/// <summary>
/// A rolling restart (SIGTERM, then start again, one member at a time) of a 3-member cluster under 64 writers spread
/// over every member, as etcd's clients spread them: a leader hands leadership to its most caught-up voter before it
/// stops, so no write waits for an election; a writer whose member goes away retries on the next one. Afterwards every
/// acknowledged write is on every member, and no write failed for good. Also run against etcd 3.4.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class RollingRestartTests : IAsyncLifetime
{
    private const int Writers = 64;
    private TestCluster.TestCluster? _cluster;

    private TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => _cluster = await TestCluster.TestCluster.StartAsync(3);

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    [Fact(Timeout = 300_000)]
    public async Task A_rolling_restart_under_64_writers_loses_nothing_and_fails_no_write()
    {
        // No 4 MB receive limit: the final check reads every key written, and a fast run writes more than 4 MB of them.
        var channels = Cluster.Members.Select(m => GrpcChannel.ForAddress(m.ClientUrl, new GrpcChannelOptions { MaxReceiveMessageSize = null })).ToArray();
        var acknowledged = new ConcurrentDictionary<string, string>();
        var failed = new ConcurrentBag<string>();
        long retries = 0;
        using var stop = new CancellationTokenSource();

        async Task Writer(int writer)
        {
            var member = writer % channels.Length;
            for (var sequence = 0; !stop.IsCancellationRequested && sequence < 100_000; sequence++)
            {
                var key = $"roll/{writer:D2}/{sequence:D6}";
                var done = false;
                // One write may be retried on each member in turn for up to 20 s: a client's view of "failed" is a write
                // that no member would take in that time.
                var clock = Stopwatch.StartNew();
                while (!done && clock.Elapsed < TimeSpan.FromSeconds(20))
                {
                    try
                    {
                        await new KV.KVClient(channels[member]).PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(key), Value = ByteString.CopyFromUtf8("v") },
                            deadline: DateTime.UtcNow.AddSeconds(5));
                        acknowledged[key] = "v";
                        done = true;
                    }
                    catch (RpcException)
                    {
                        Interlocked.Increment(ref retries);
                        member = (member + 1) % channels.Length;
                        await Task.Delay(20);
                    }
                }
                if (!done) failed.Add(key);
            }
        }

        var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(() => Writer(w))).ToArray();
        await Task.Delay(1000);
        var restarts = new List<string>();
        // Leader last, so every member's stop is seen once as a follower and once as the leader in a 3-member cluster.
        var leader = await Cluster.FindLeaderAsync();
        foreach (var member in Enumerable.Range(0, 3).OrderBy(i => i == leader ? 1 : 0))
        {
            var clock = Stopwatch.StartNew();
            var exit = await Cluster.StopGracefullyAsync(member, TimeSpan.FromSeconds(30));
            // etcd 3.4 ends with 128 + SIGTERM after its graceful stop; Keel with 0.
            Assert.True(exit == 0 || (Cluster.Kind == TestCluster.ServerKind.Etcd && exit == 143), $"exit code {exit}");
            await Cluster.RestartAsync(member);
            restarts.Add($"{Cluster.Members[member].Name}{(member == leader ? " (leader)" : "")} {clock.ElapsedMilliseconds} ms");
            await Task.Delay(500);
        }
        stop.Cancel();
        await Task.WhenAll(writers);

        Assert.True(acknowledged.Count > Writers, $"only {acknowledged.Count} writes acknowledged");
        Assert.True(failed.IsEmpty, $"{failed.Count} writes failed for good (first: {failed.FirstOrDefault()}); restarts: {string.Join(", ", restarts)}");
        foreach (var channel in channels)
        {
            var kv = new KV.KVClient(channel);
            // Wait for ready: the member restarted last may still be opening its client port (the check is the data).
            var stored = await kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("roll/"), RangeEnd = ByteString.CopyFromUtf8("roll0"), KeysOnly = true },
                new CallOptions(deadline: DateTime.UtcNow.AddSeconds(30)).WithWaitForReady());
            var keys = stored.Kvs.Select(kv => kv.Key.ToStringUtf8()).ToHashSet();
            var lost = acknowledged.Keys.Where(k => !keys.Contains(k)).ToArray();
            Assert.True(lost.Length == 0, $"{lost.Length} acknowledged writes missing (first {lost.FirstOrDefault()})");
        }
        Console.WriteLine($"rolling restart: {acknowledged.Count} writes acknowledged, {retries} retries, 0 failed; {string.Join(", ", restarts)}");
        foreach (var channel in channels) channel.Dispose();
    }
}
