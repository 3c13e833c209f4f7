using Keel.AspNetCore.Locks;
using Keel.Client;
using Medallion.Threading;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Keel.AspNetCore.Tests;

/// <summary>IDistributedLock (DistributedLock.Core) over Keel locks, from two app instances' containers.</summary>
[Collection(SerialCollection.Name)]
public sealed class LockTests(ClusterFixture fixture)
{
    private async Task<(IDistributedLockProvider A, IDistributedLockProvider B)> StartTwoAsync(Apps apps, string prefix)
    {
        async Task<IDistributedLockProvider> One() =>
            apps.Add(await fixture.StartAppAsync(builder => builder.Services.AddKeelDistributedLocks(o =>
            {
                o.KeyPrefix = prefix;
                o.LeaseTtl = TimeSpan.FromSeconds(5);
            }), _ => { })).Services.GetRequiredService<IDistributedLockProvider>();
        return (await One(), await One());
    }

    [Fact(Timeout = 120_000)]
    public async Task Holders_exclude_each_other_and_fencing_tokens_increase()
    {
        await using var apps = new Apps();
        var (a, b) = await StartTwoAsync(apps, "dlock-mutex/");
        const int Contenders = 4, Rounds = 3;
        var inside = 0;
        var maxInside = 0;
        var tokens = new List<long>();

        async Task Contender(int id)
        {
            var provider = id % 2 == 0 ? a : b;
            for (var round = 0; round < Rounds; round++)
            {
                // Code written for madelson's DistributedLock: only the interface is used.
                await using var handle = await provider.CreateLock("orders").AcquireAsync(TimeSpan.FromSeconds(60));
                var now = Interlocked.Increment(ref inside);
                for (var seen = Volatile.Read(ref maxInside); now > seen && Interlocked.CompareExchange(ref maxInside, now, seen) != seen; seen = Volatile.Read(ref maxInside))
                {
                }
                var keel = Assert.IsType<KeelDistributedLockHandle>(handle);
                lock (tokens) tokens.Add(keel.FencingToken);
                // A write fenced by the token goes through while the lock is held.
                var fenced = await fixture.Client.Txn().If(TxnCompare.CreateRevision(keel.Key, CompareOp.Equal, keel.FencingToken))
                    .Then(TxnOp.Put("dlock-mutex/data", $"{id}/{round}")).CommitAsync();
                Assert.True(fenced.Succeeded);
                await Task.Delay(10);
                Interlocked.Decrement(ref inside);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Contenders).Select(Contender));
        Assert.Equal(1, maxInside);
        Assert.Equal(Contenders * Rounds, tokens.Count);
        Assert.True(tokens.Zip(tokens.Skip(1)).All(p => p.First < p.Second), $"tokens not increasing: {string.Join(", ", tokens)}");
    }

    [Fact(Timeout = 60_000)]
    public async Task TryAcquire_gives_null_while_held_and_Acquire_times_out()
    {
        await using var apps = new Apps();
        var (a, b) = await StartTwoAsync(apps, "dlock-try/");
        await using (var held = await a.CreateLock("r").AcquireAsync())
        {
            Assert.Null(await b.CreateLock("r").TryAcquireAsync());
            Assert.Null(await b.CreateLock("r").TryAcquireAsync(TimeSpan.FromMilliseconds(300)));
            await Assert.ThrowsAsync<TimeoutException>(async () => await b.CreateLock("r").AcquireAsync(TimeSpan.FromMilliseconds(300)));
            // The synchronous API too.
            Assert.Null(b.CreateLock("r").TryAcquire(TimeSpan.FromMilliseconds(100)));
            Assert.False(held.HandleLostToken.IsCancellationRequested);
        }
        // Gave-up waiters left nothing behind: the next try takes the lock at once.
        await using var next = await b.CreateLock("r").TryAcquireAsync();
        Assert.NotNull(next);
        var keys = await fixture.Client.GetPrefixAsync("dlock-try/r/");
        Assert.Single(keys.Kvs);
    }

    [Fact(Timeout = 60_000)]
    public async Task HandleLostToken_fires_when_the_locks_lease_is_revoked_and_the_next_holder_gets_a_higher_token()
    {
        await using var apps = new Apps();
        var (a, b) = await StartTwoAsync(apps, "dlock-lost/");
        var handle = (KeelDistributedLockHandle)(await a.CreateLock("r").AcquireAsync());
        var waiter = b.CreateLock("r").AcquireAsync(TimeSpan.FromSeconds(30)).AsTask();
        await fixture.Client.RevokeLeaseAsync(handle.LeaseId);
        await Poll.UntilAsync(() => handle.HandleLostToken.IsCancellationRequested, "HandleLostToken cancelled");
        var next = (KeelDistributedLockHandle)await waiter.WaitAsync(Poll.Bound);
        Assert.True(next.FencingToken > handle.FencingToken);
        var stale = await fixture.Client.Txn().If(TxnCompare.CreateRevision(handle.Key, CompareOp.Equal, handle.FencingToken))
            .Then(TxnOp.Put("dlock-lost/data", "stale")).CommitAsync();
        Assert.False(stale.Succeeded);
        await next.DisposeAsync();
        await handle.DisposeAsync();
    }
}
