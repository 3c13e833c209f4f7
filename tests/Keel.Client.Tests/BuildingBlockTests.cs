using System.Collections.Concurrent;
using System.Diagnostics;

namespace Keel.Client.Tests;

/// <summary>One 3-member cluster for the building-block tests of this class; each test uses its own key prefix.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    private TestCluster.TestCluster? _cluster;
    private KeelClient? _client;

    public TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    public KeelClient Client => _client ?? throw new InvalidOperationException("not started");

    public KeelClient NewClient() => new(new KeelClientOptions { Endpoints = Cluster.ClientUrls.ToList() });

    public async Task InitializeAsync()
    {
        _cluster = await TestCluster.TestCluster.StartAsync(3);
        _client = NewClient();
    }

    public async Task DisposeAsync()
    {
        if (_client is not null) await _client.DisposeAsync();
        if (_cluster is not null) await _cluster.DisposeAsync();
    }
}

/// <summary>KV, transactions, watches, leases, locks and elections through <see cref="KeelClient"/> against a real cluster.</summary>
[Collection(SerialCollection.Name)]
public sealed class BuildingBlockTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    private static readonly TimeSpan WaitBound = TimeSpan.FromSeconds(20);
    private KeelClient Client => fixture.Client;

    [Fact(Timeout = 60_000)]
    public async Task Put_get_prefix_delete_and_reads_at_a_revision_and_a_time()
    {
        var first = await Client.PutAsync("kv/a", "1");
        await Client.PutAsync("kv/b", "2");
        // The hybrid clock stamps revisions with the leader's wall time: let a few milliseconds pass on both sides of t.
        await Task.Delay(50);
        var between = DateTimeOffset.UtcNow;
        await Task.Delay(50);
        var second = await Client.PutAsync("kv/a", "3");
        Assert.Equal("1", second.PrevKv?.Value);
        Assert.True(second.Revision > first.Revision);

        Assert.Equal("3", (await Client.GetAsync("kv/a"))?.Value);
        Assert.Null(await Client.GetAsync("kv/none"));
        var all = await Client.GetPrefixAsync("kv/");
        Assert.Equal(["kv/a", "kv/b"], all.Kvs.Select(kv => kv.Key));
        Assert.Equal(2, all.Count);
        Assert.Equal(["kv/a"], (await Client.GetRangeAsync("kv/a", "kv/b")).Kvs.Select(kv => kv.Key));

        Assert.Equal("1", (await Client.GetAsync("kv/a", new ReadOptions { Revision = first.Revision }))?.Value);
        Assert.Equal("1", (await Client.GetAsync("kv/a", new ReadOptions { AsOf = between }))?.Value);
        var resolved = await Client.RevisionAtAsync(between);
        Assert.InRange(resolved, first.Revision + 1, second.Revision - 1);

        var changes = new List<TimedChange>();
        await foreach (var change in Client.ChangesBetweenAsync("kv/", between, DateTimeOffset.UtcNow.AddSeconds(1))) changes.Add(change);
        Assert.Equal([("kv/a", "3")], changes.Select(c => (c.Event.Kv.Key, c.Event.Kv.Value)));

        var deleted = await Client.DeletePrefixAsync("kv/");
        Assert.Equal(2, deleted.Deleted);
        Assert.Empty((await Client.GetPrefixAsync("kv/")).Kvs);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_transaction_runs_the_branch_its_guards_choose()
    {
        var put = await Client.PutAsync("txn/k", "v1");
        var hit = await Client.Txn()
            .If(TxnCompare.Value("txn/k", CompareOp.Equal, "v1"), TxnCompare.ModRevision("txn/k", CompareOp.Equal, put.Revision))
            .Then(TxnOp.Put("txn/k", "v2"), TxnOp.Get("txn/k"))
            .Else(TxnOp.Get("txn/k"))
            .CommitAsync();
        Assert.True(hit.Succeeded);
        Assert.Equal("v2", hit.Responses[1].Single().Value);

        var miss = await Client.Txn().If(TxnCompare.Value("txn/k", CompareOp.Equal, "v1")).Then(TxnOp.Delete("txn/k")).Else(TxnOp.Get("txn/k")).CommitAsync();
        Assert.False(miss.Succeeded);
        Assert.Equal("v2", miss.Responses[0].Single().Value);

        var create = await Client.Txn().If(TxnCompare.Missing("txn/new")).Then(TxnOp.Put("txn/new", "x")).CommitAsync();
        Assert.True(create.Succeeded);
        Assert.False((await Client.Txn().If(TxnCompare.Missing("txn/new")).Then(TxnOp.Put("txn/new", "y")).CommitAsync()).Succeeded);
        Assert.Equal("x", (await Client.GetAsync("txn/new"))?.Value);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_watch_delivers_puts_and_deletes_in_revision_order()
    {
        using var cancel = new CancellationTokenSource(WaitBound);
        var start = (await Client.PutAsync("watch/a", "1")).Revision;
        var events = new List<WatchEvent>();
        await foreach (var e in Client.WatchAsync("watch/", new WatchOptions { Prefix = true, StartRevision = start, PrevKv = true }, cancel.Token))
        {
            events.Add(e);
            if (events.Count == 1)
            {
                // The watch is live (it delivered the first write): the rest are written while it runs.
                await Client.PutAsync("watch/b", "2");
                await Client.DeleteAsync("watch/a");
            }
            if (events.Count == 3) break;
        }
        Assert.Equal([(WatchEventType.Put, "watch/a", "1"), (WatchEventType.Put, "watch/b", "2"), (WatchEventType.Delete, "watch/a", "")],
            events.Select(e => (e.Type, e.Kv.Key, e.Kv.Value)));
        Assert.Equal("1", events[2].PrevKv?.Value);
        Assert.True(events[0].Revision < events[1].Revision && events[1].Revision < events[2].Revision);
    }

    [Fact(Timeout = 60_000)]
    public async Task Keep_alive_keeps_a_key_past_its_ttl_and_a_lease_without_it_expires()
    {
        await using var kept = await Client.GrantLeaseAsync(TimeSpan.FromSeconds(2));
        var unkept = await Client.GrantLeaseAsync(TimeSpan.FromSeconds(2), keepAlive: false);
        Assert.True(kept.FencingToken > 0, "Keel sends the grant's fencing token");
        Assert.True(unkept.FencingToken > kept.FencingToken, "fencing tokens only increase");
        await Client.PutAsync("lease/kept", "x", kept.Id);
        await Client.PutAsync("lease/unkept", "x", unkept.Id);

        // The unkept key goes within its TTL plus the leader's expiry tick; the kept one must outlive three TTLs.
        var clock = Stopwatch.StartNew();
        while (await Client.GetAsync("lease/unkept") is not null)
        {
            Assert.True(clock.Elapsed < WaitBound, "the lease without keep-alive never expired");
            await Task.Delay(100);
        }
        while (clock.Elapsed < TimeSpan.FromSeconds(6)) await Task.Delay(200);
        Assert.NotNull(await Client.GetAsync("lease/kept"));
        Assert.False(kept.Lost.IsCancellationRequested, kept.LostReason);
        Assert.True(await Client.LeaseTimeToLiveAsync(kept.Id) > TimeSpan.Zero);

        await kept.RevokeAsync();
        Assert.Null(await Client.GetAsync("lease/kept"));
        await unkept.DisposeAsync();
    }

    [Fact(Timeout = 60_000)]
    public async Task A_revoked_lease_is_reported_lost()
    {
        var lease = await Client.GrantLeaseAsync(TimeSpan.FromSeconds(3));
        var reported = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lease.LeaseLost += (_, reason) => reported.TrySetResult(reason);
        // Revoked behind the keep-alive's back, by another client (as an operator would).
        await using (var other = fixture.NewClient())
            await other.RevokeLeaseAsync(lease.Id);
        var reason = await reported.Task.WaitAsync(WaitBound);
        Assert.Contains("expired or revoked", reason, StringComparison.Ordinal);
        Assert.True(lease.Lost.IsCancellationRequested);
        await lease.DisposeAsync();
    }

    [Fact(Timeout = 120_000)]
    public async Task Locks_exclude_each_other_and_hand_out_increasing_fencing_tokens()
    {
        const int Contenders = 4, Rounds = 3;
        var inside = 0;
        var maxInside = 0;
        var tokens = new List<long>();
        await using var second = fixture.NewClient();
        var clients = new[] { Client, second };

        async Task Contender(int id)
        {
            var client = clients[id % clients.Length];
            for (var round = 0; round < Rounds; round++)
            {
                await using var held = await client.LockAsync("locks/shared", TimeSpan.FromSeconds(5));
                var now = Interlocked.Increment(ref inside);
                InterlockedMax(ref maxInside, now);
                lock (tokens) tokens.Add(held.FencingToken);
                // A write fenced by the token succeeds while the lock is held.
                var fenced = await client.Txn()
                    .If(TxnCompare.CreateRevision(held.Key, CompareOp.Equal, held.FencingToken))
                    .Then(TxnOp.Put("locks/data", $"{id}/{round}"))
                    .CommitAsync();
                Assert.True(fenced.Succeeded);
                await Task.Yield();
                Interlocked.Decrement(ref inside);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Contenders).Select(Contender));
        Assert.Equal(1, maxInside);
        Assert.Equal(Contenders * Rounds, tokens.Count);
        Assert.True(tokens.SequenceEqual(tokens.Order()) && tokens.Distinct().Count() == tokens.Count, $"tokens not increasing: {string.Join(", ", tokens)}");

        // A former holder's fenced write is refused once the lock has moved on.
        string formerKey;
        long formerToken;
        await using (var former = await Client.LockAsync("locks/shared"))
            (formerKey, formerToken) = (former.Key, former.FencingToken);
        await using var current = await second.LockAsync("locks/shared");
        Assert.True(current.FencingToken > formerToken);
        var refused = await Client.Txn().If(TxnCompare.CreateRevision(formerKey, CompareOp.Equal, formerToken)).Then(TxnOp.Put("locks/data", "stale")).CommitAsync();
        Assert.False(refused.Succeeded);
    }

    [Fact(Timeout = 120_000)]
    public async Task Leadership_passes_to_the_next_candidate_when_the_leader_resigns()
    {
        var election = Client.Election("elect/e");
        using var cancel = new CancellationTokenSource(WaitBound * 2);
        var observed = new ConcurrentQueue<string>();
        var observer = Task.Run(async () =>
        {
            try
            {
                await foreach (var leader in election.ObserveAsync(cancel.Token)) observed.Enqueue(leader.Value);
            }
            catch (OperationCanceledException)
            {
            }
        });

        var a = await election.CampaignAsync("a");
        Assert.Equal("a", (await election.GetLeaderAsync())?.Value);
        await using var otherClient = fixture.NewClient();
        var bTask = otherClient.Election("elect/e").CampaignAsync("b", cancellationToken: cancel.Token);
        await PollAsync(() => Task.FromResult(observed.Contains("a")), "the observer saw a");
        // b's key exists before a proclaims again: when b leads, its key's mod revision is below a2's, and an observer
        // must still report it (the client once skipped it, comparing mod revisions across keys).
        await PollAsync(async () => (await Client.GetPrefixAsync("elect/e/")).Kvs.Count == 2, "b's contender key");
        Assert.False(bTask.IsCompleted, "b must wait while a leads");

        await a.ProclaimAsync("a2");
        await PollAsync(async () => (await election.GetLeaderAsync())?.Value == "a2", "a's proclamation");
        await a.ResignAsync();
        var b = await bTask.WaitAsync(WaitBound);
        Assert.True(b.Revision > a.Revision, "the next leader's fencing token is higher");
        Assert.Equal("b", (await election.GetLeaderAsync())?.Value);
        await PollAsync(() => Task.FromResult(observed.Contains("b")), "the observer saw b");
        await Assert.ThrowsAsync<KeelClientException>(() => a.ProclaimAsync("a3"));

        await b.DisposeAsync();
        await PollAsync(async () => await election.GetLeaderAsync() is null, "nobody leads after b resigns");
        cancel.Cancel();
        await observer;
        Assert.Equal(["a", "a2", "b"], observed.ToArray());
    }

    [Fact(Timeout = 60_000)]
    public async Task Configuration_under_a_prefix_loads_and_follows_changes_through_a_watch()
    {
        await Client.PutAsync("cfg/svc/Logging/Level", "Info");
        await Client.PutAsync("cfg/svc/Name", "api");
        await Client.PutAsync("cfg/other/Name", "not mine");
        var configuration = new Microsoft.Extensions.Configuration.ConfigurationBuilder();
        Configuration.KeelConfigurationExtensions.AddKeel(configuration, Client, "cfg/svc/");
        var root = configuration.Build();
        try
        {
            Assert.Equal("Info", root["Logging:Level"]);
            Assert.Equal("api", root["Name"]);
            var reloads = 0;
            using var subscription = Microsoft.Extensions.Primitives.ChangeToken.OnChange(root.GetReloadToken, () => Interlocked.Increment(ref reloads));

            await Client.PutAsync("cfg/svc/Logging/Level", "Debug");
            await PollAsync(() => Task.FromResult(root["Logging:Level"] == "Debug"), "the changed value");
            await Client.DeleteAsync("cfg/svc/Name");
            await PollAsync(() => Task.FromResult(root["Name"] is null), "the deleted key gone");
            Assert.True(Volatile.Read(ref reloads) >= 2, $"{reloads} reloads");
            Assert.Null(root["other:Name"]);
        }
        finally
        {
            (root as IDisposable)?.Dispose();
        }
    }

    private static async Task PollAsync(Func<Task<bool>> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(clock.Elapsed < WaitBound, $"not within {WaitBound.TotalSeconds} s: {what}");
            await Task.Delay(50);
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        for (var current = Volatile.Read(ref target); value > current; current = Volatile.Read(ref target))
            if (Interlocked.CompareExchange(ref target, value, current) == current) return;
    }
}
