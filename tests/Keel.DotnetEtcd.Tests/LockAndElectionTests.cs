using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using V3Electionpb;
using V3Lockpb;

namespace Keel.DotnetEtcd.Tests;

/// <summary>
/// The server-side Lock (v3lockpb) and Election (v3electionpb) services, which dotnet-etcd calls for its Lock and
/// Campaign helpers: two lock contenders, and campaign / proclaim / leader / observe / resign.
/// </summary>
[Collection(SharedClusterCollection.Name)]
public sealed class LockAndElectionTests(SharedClusterFixture fixture)
{
    private readonly EtcdClient _client = fixture.Client;

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private async Task<long> Lease(long ttlSeconds) =>
        (await _client.LeaseGrantAsync(new LeaseGrantRequest { TTL = ttlSeconds }, deadline: Bounds.CallDeadline)).ID;

    /// <summary>Waits (bounded) until <paramref name="prefix"/> holds <paramref name="count"/> keys: a contender's bid is in.</summary>
    private async Task AwaitKeys(string prefix, int count)
    {
        var clock = DateTime.UtcNow;
        while ((await _client.GetRangeAsync(prefix, deadline: Bounds.CallDeadline)).Count < count)
        {
            Assert.True(DateTime.UtcNow - clock < Bounds.WaitTimeout, $"{count} keys under {prefix} not within {Bounds.WaitTimeout.TotalSeconds} s");
            await Task.Delay(50);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task The_second_lock_contender_acquires_only_after_the_first_unlocks()
    {
        var leaseA = await Lease(30);
        var leaseB = await Lease(30);
        var a = await _client.LockAsync(new LockRequest { Name = B("dlock/l"), Lease = leaseA }, deadline: Bounds.CallDeadline);
        var keyA = a.Key.ToStringUtf8();
        Assert.StartsWith("dlock/l/", keyA);
        Assert.Equal(leaseA.ToString("x"), keyA["dlock/l/".Length..]);

        using var cancelB = new CancellationTokenSource(TimeSpan.FromSeconds(40));
        var b = _client.LockAsync(new LockRequest { Name = B("dlock/l"), Lease = leaseB }, cancellationToken: cancelB.Token);
        await AwaitKeys("dlock/l/", 2);
        Assert.False(b.IsCompleted, "B acquired the lock while A held it");

        // A fenced write: only while A's lock key exists (the lock's create revision as fence).
        var guarded = await _client.TransactionAsync(new TxnRequest
        {
            Compare = { new Compare { Key = a.Key, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = a.Header.Revision } },
            Success = { new RequestOp { RequestPut = new PutRequest { Key = B("dlock/guard"), Value = B("A") } } },
        }, deadline: Bounds.CallDeadline);
        Assert.True(guarded.Succeeded, "A's fenced write failed although A holds the lock");

        var unlock = await _client.UnlockAsync(new UnlockRequest { Key = a.Key }, deadline: Bounds.CallDeadline);
        var acquired = await b.WaitAsync(Bounds.WaitTimeout);
        Assert.StartsWith("dlock/l/", acquired.Key.ToStringUtf8());
        Assert.NotEqual(keyA, acquired.Key.ToStringUtf8());
        Assert.True(acquired.Header.Revision >= unlock.Header.Revision);

        // A's fence no longer holds after its unlock.
        var stale = await _client.TransactionAsync(new TxnRequest
        {
            Compare = { new Compare { Key = a.Key, Target = Compare.Types.CompareTarget.Create, Result = Compare.Types.CompareResult.Equal, CreateRevision = a.Header.Revision } },
            Success = { new RequestOp { RequestPut = new PutRequest { Key = B("dlock/guard"), Value = B("A-stale") } } },
        }, deadline: Bounds.CallDeadline);
        Assert.False(stale.Succeeded);
        Assert.Equal("A", await _client.GetValAsync("dlock/guard", deadline: Bounds.CallDeadline));

        await _client.UnlockAsync(new UnlockRequest { Key = acquired.Key }, deadline: Bounds.CallDeadline);
        Assert.Empty((await _client.GetRangeAsync("dlock/l/", deadline: Bounds.CallDeadline)).Kvs);
        await _client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseA }, deadline: Bounds.CallDeadline);
        await _client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseB }, deadline: Bounds.CallDeadline);
    }

    [Fact(Timeout = 60_000)]
    public async Task Campaign_proclaim_leader_observe_and_resign()
    {
        var leaseA = await Lease(30);
        var leaseB = await Lease(30);
        using var stopObserving = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        var a = await _client.CampaignAsync(new CampaignRequest { Name = B("delect/e"), Lease = leaseA, Value = B("A") }, deadline: Bounds.CallDeadline);
        Assert.Equal("delect/e", a.Leader.Name.ToStringUtf8());
        Assert.Equal(leaseA, a.Leader.Lease);
        Assert.Equal("A", (await _client.LeaderAsync(new LeaderRequest { Name = B("delect/e") }, deadline: Bounds.CallDeadline)).Kv.Value.ToStringUtf8());

        var observed = new List<string>();
        var observer = Task.Run(async () =>
        {
            await foreach (var response in _client.ObserveAsync(new LeaderRequest { Name = B("delect/e") }, cancellationToken: stopObserving.Token))
            {
                lock (observed) observed.Add(response.Kv.Value.ToStringUtf8());
                if (response.Kv.Value.ToStringUtf8() == "B") return;
            }
        });

        var b = _client.CampaignAsync(new CampaignRequest { Name = B("delect/e"), Lease = leaseB, Value = B("B") }, cancellationToken: stopObserving.Token);
        await AwaitKeys("delect/e/", 2);
        Assert.False(b.IsCompleted, "B was elected while A leads");

        await _client.ProclaimAsync(new ProclaimRequest { Leader = a.Leader, Value = B("A2") }, deadline: Bounds.CallDeadline);
        Assert.Equal("A2", (await _client.LeaderAsync(new LeaderRequest { Name = B("delect/e") }, deadline: Bounds.CallDeadline)).Kv.Value.ToStringUtf8());

        await _client.ResignAsync(new ResignRequest { Leader = a.Leader }, deadline: Bounds.CallDeadline);
        var elected = await b.WaitAsync(Bounds.WaitTimeout);
        Assert.Equal(leaseB, elected.Leader.Lease);
        Assert.Equal("B", (await _client.LeaderAsync(new LeaderRequest { Name = B("delect/e") }, deadline: Bounds.CallDeadline)).Kv.Value.ToStringUtf8());

        await observer.WaitAsync(Bounds.WaitTimeout);
        string[] seen;
        lock (observed) seen = observed.ToArray();
        // The observer may join after the proclamation; it must end with B and never go backwards.
        Assert.Equal("B", seen[^1]);
        Assert.Equal(seen.Distinct(), seen);
        Assert.Subset(new HashSet<string> { "A", "A2", "B" }, seen.ToHashSet());

        await _client.ResignAsync(new ResignRequest { Leader = elected.Leader }, deadline: Bounds.CallDeadline);
        var noLeader = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() =>
            _client.LeaderAsync(new LeaderRequest { Name = B("delect/e") }, deadline: Bounds.CallDeadline));
        Assert.Equal("election: no leader", noLeader.Status.Detail);
        await _client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseA }, deadline: Bounds.CallDeadline);
        await _client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = leaseB }, deadline: Bounds.CallDeadline);
    }
}
