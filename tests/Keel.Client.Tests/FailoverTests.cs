using System.Collections.Concurrent;
using System.Diagnostics;
using Xunit.Abstractions;

namespace Keel.Client.Tests;

/// <summary>A 3-member cluster whose members these tests kill and restart.</summary>
public sealed class FailoverClusterFixture : IAsyncLifetime
{
    private TestCluster.TestCluster? _cluster;

    public TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => _cluster = await TestCluster.TestCluster.StartAsync(3);

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }
}

/// <summary>
/// The client across member failures on real processes: a watch resumes on another member without missing or repeating
/// a change, and writers keep going through SIGKILLs of the leader with every acknowledged write applied exactly once.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class FailoverTests(FailoverClusterFixture fixture, ITestOutputHelper output) : IClassFixture<FailoverClusterFixture>
{
    private static readonly TimeSpan WaitBound = TimeSpan.FromSeconds(60);
    private TestCluster.TestCluster Cluster => fixture.Cluster;

    private KeelClient NewClient(IEnumerable<int>? members = null, int retryLimit = 40) => new(new KeelClientOptions
    {
        Endpoints = (members ?? [0, 1, 2]).Select(i => Cluster.Members[i].ClientUrl).ToList(),
        CommandTimeout = TimeSpan.FromSeconds(3),
        RetryLimit = retryLimit,
    });

    [Fact(Timeout = 180_000)]
    public async Task A_watch_resumes_on_another_member_without_missing_or_repeating_a_change()
    {
        const int Writes = 60;
        await using var writer = NewClient([1, 2]);
        // A fresh client's first call goes to its first endpoint: the watch is served by member 0, which is killed.
        await using var watcher = NewClient([0, 1, 2]);
        var seed = await writer.PutAsync("resume/seed", "s");
        using var cancel = new CancellationTokenSource(WaitBound * 2);
        var received = new List<string>();
        var killed = false;
        var writes = Task.Run(async () =>
        {
            for (var i = 0; i < Writes; i++)
            {
                await writer.PutAsync($"resume/{i:D3}", $"{i}", cancellationToken: cancel.Token);
                // Pace the writes only until member 0 is gone, so that some land before and most after the kill.
                if (!Volatile.Read(ref killed)) await Task.Delay(20, cancel.Token);
            }
        });
        try
        {
            await foreach (var e in watcher.WatchAsync("resume/", new WatchOptions { Prefix = true, StartRevision = seed.Revision + 1 }, cancel.Token))
            {
                received.Add(e.Kv.Value);
                if (received.Count == 10)
                {
                    await Cluster.KillAsync(0);
                    Volatile.Write(ref killed, true);
                }
                if (received.Count == Writes) break;
            }
            await writes;
            Assert.Equal(Enumerable.Range(0, Writes).Select(i => $"{i}"), received);
            Assert.True(watcher.Reconnects > 0, "the watch never lost its member: the test did not exercise a resume");
        }
        finally
        {
            if (!Cluster.Members[0].IsRunning) await Cluster.RestartAsync(0);
        }
    }

    [Fact(Timeout = 300_000)]
    public async Task Writers_apply_every_acknowledged_increment_exactly_once_while_the_leader_is_killed_and_restarted()
    {
        const int Writers = 8, LeaderKills = 2;
        await using var client = NewClient();
        var acknowledged = Enumerable.Range(0, Writers).Select(_ => new ConcurrentQueue<string>()).ToArray();
        var failures = new ConcurrentQueue<string>();
        long acks = 0;
        var stop = false;

        async Task Writer(int w)
        {
            // Each Put increments the key's version: a duplicate apply would show as one version too many.
            for (var sequence = 0; !Volatile.Read(ref stop); sequence++)
            {
                var value = $"{w}:{sequence}";
                try
                {
                    await client.PutAsync($"eo/{w}", value);
                    acknowledged[w].Enqueue(value);
                    Interlocked.Increment(ref acks);
                }
                catch (KeelClientException failed)
                {
                    failures.Enqueue($"{value}: {failed.Message}");
                    return;
                }
            }
        }

        async Task AwaitProgress(string what)
        {
            var from = Interlocked.Read(ref acks);
            var clock = Stopwatch.StartNew();
            while (Interlocked.Read(ref acks) < from + 50)
            {
                Assert.True(clock.Elapsed < WaitBound, $"writers made no progress {what} within {WaitBound.TotalSeconds} s; failures: {string.Join("; ", failures)}\n{Cluster.DescribeOutput()}");
                Assert.True(failures.IsEmpty, string.Join("; ", failures));
                await Task.Delay(50);
            }
        }

        var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(() => Writer(w))).ToArray();
        try
        {
            await AwaitProgress("at the start");
            for (var kill = 0; kill < LeaderKills; kill++)
            {
                var leader = await Cluster.FindLeaderAsync();
                await Cluster.KillAsync(leader);
                await AwaitProgress($"after SIGKILL of leader n{leader + 1}");
                await Cluster.RestartAsync(leader);
                await AwaitProgress($"after restarting n{leader + 1}");
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            await Task.WhenAll(writers);
            foreach (var member in Cluster.Members.Where(m => !m.IsRunning)) await Cluster.RestartAsync(member.Index);
        }

        Assert.True(failures.IsEmpty, $"writes failed for good: {string.Join("; ", failures)}");
        // Every acknowledged increment applied exactly once: each key's version is its writer's acknowledged count.
        var versions = new long[Writers];
        for (var w = 0; w < Writers; w++)
            versions[w] = (await client.GetAsync($"eo/{w}"))?.Version ?? 0;
        // And no value was ever applied twice: the full history of every key, read back through a watch from revision 1.
        var end = (await client.GetPrefixAsync("eo/", new ReadOptions { KeysOnly = true })).Revision;
        var applied = new Dictionary<string, int>();
        using (var cancel = new CancellationTokenSource(WaitBound))
        {
            await foreach (var e in client.WatchAsync("eo/", new WatchOptions { Prefix = true, StartRevision = 1 }, cancel.Token))
            {
                applied[e.Kv.Value] = applied.GetValueOrDefault(e.Kv.Value) + 1;
                if (e.Revision >= end) break;
            }
        }
        var duplicates = applied.Values.Sum(count => count - 1);
        var totalAcknowledged = acknowledged.Sum(q => q.Count);
        output.WriteLine($"{totalAcknowledged} acknowledged increments by {Writers} writers across {LeaderKills} leader SIGKILLs; " +
            $"{client.Retries} retries, {client.AmbiguousRetries} of them after an attempt that may have applied; {duplicates} duplicates");
        Assert.Equal(0, duplicates);
        for (var w = 0; w < Writers; w++)
            Assert.Equal(acknowledged[w].Count, versions[w]);
        Assert.Equal(acknowledged.SelectMany(q => q).Order(), applied.Keys.Order());
        // The test only proves something if the kills forced retries.
        Assert.True(client.Retries > 0, "no call was retried: the leader kills did not reach the writers");
    }

    /// <summary>
    /// The control for the test above, in the same cluster: without idempotency keys a write whose attempt may have
    /// applied is not retried by the client (it fails instead), and a caller that retries such failures itself — as one
    /// must with etcd's clients — can apply a write twice. Prints the duplicates measured; asserts every extra apply came
    /// from such a retry and that nothing acknowledged was lost.
    /// </summary>
    [Fact(Timeout = 300_000)]
    public async Task Without_idempotency_keys_a_caller_retry_after_an_ambiguous_failure_can_apply_twice()
    {
        const int Writers = 8;
        await using var client = new KeelClient(new KeelClientOptions
        {
            Endpoints = Cluster.ClientUrls.ToList(), CommandTimeout = TimeSpan.FromSeconds(3), RetryLimit = 40, IdempotentWrites = false,
        });
        var acknowledged = new long[Writers];
        var callerRetries = new long[Writers];
        long acks = 0;
        var stop = false;

        async Task Writer(int w)
        {
            for (var sequence = 0; !Volatile.Read(ref stop); sequence++)
            {
                // A naive caller: on a failure it cannot judge, it sends the same write again.
                for (var attempt = 0; ; attempt++)
                {
                    try
                    {
                        await client.PutAsync($"naive/{w}", $"{w}:{sequence}");
                        break;
                    }
                    catch (KeelClientException) when (attempt < 40)
                    {
                        Interlocked.Increment(ref callerRetries[w]);
                        await Task.Delay(100);
                    }
                }
                Interlocked.Increment(ref acknowledged[w]);
                Interlocked.Increment(ref acks);
            }
        }

        async Task AwaitProgress(string what)
        {
            var from = Interlocked.Read(ref acks);
            var clock = Stopwatch.StartNew();
            while (Interlocked.Read(ref acks) < from + 50)
            {
                Assert.True(clock.Elapsed < WaitBound, $"writers made no progress {what}\n{Cluster.DescribeOutput()}");
                await Task.Delay(50);
            }
        }

        var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(() => Writer(w))).ToArray();
        try
        {
            await AwaitProgress("at the start");
            for (var kill = 0; kill < 2; kill++)
            {
                var leader = await Cluster.FindLeaderAsync();
                await Cluster.KillAsync(leader);
                await AwaitProgress($"after SIGKILL of leader n{leader + 1}");
                await Cluster.RestartAsync(leader);
                await AwaitProgress($"after restarting n{leader + 1}");
            }
        }
        finally
        {
            Volatile.Write(ref stop, true);
            await Task.WhenAll(writers);
            foreach (var member in Cluster.Members.Where(m => !m.IsRunning)) await Cluster.RestartAsync(member.Index);
        }

        long duplicates = 0;
        for (var w = 0; w < Writers; w++)
        {
            var version = (await client.GetAsync($"naive/{w}"))?.Version ?? 0;
            Assert.InRange(version, acknowledged[w], acknowledged[w] + callerRetries[w]);
            duplicates += version - acknowledged[w];
        }
        output.WriteLine($"without idempotency keys: {acknowledged.Sum()} acknowledged increments, {client.Retries} client retries (only where nothing was applied), " +
            $"{callerRetries.Sum()} caller retries after ambiguous failures, {duplicates} duplicates");
    }
}
