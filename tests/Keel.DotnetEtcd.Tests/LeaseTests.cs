using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;

namespace Keel.DotnetEtcd.Tests;

/// <summary>Lease through dotnet-etcd: grant, keep-alive stream, time-to-live with keys, leases, revoke, expiry.</summary>
[Collection(SharedClusterCollection.Name)]
public sealed class LeaseTests(SharedClusterFixture fixture)
{
    private readonly EtcdClient _client = fixture.Client;

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [Fact(Timeout = 60_000)]
    public async Task Grant_keep_alive_time_to_live_list_and_revoke()
    {
        var grant = await _client.LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 }, deadline: Bounds.CallDeadline);
        Assert.Equal(60, grant.TTL);
        Assert.NotEqual(0, grant.ID);
        await _client.PutAsync(new PutRequest { Key = B("dlease/a"), Value = B("1"), Lease = grant.ID }, deadline: Bounds.CallDeadline);

        var ttl = await _client.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = grant.ID, Keys = true }, deadline: Bounds.CallDeadline);
        Assert.Equal(60, ttl.GrantedTTL);
        Assert.InRange(ttl.TTL, 40, 60);
        Assert.Equal(["dlease/a"], ttl.Keys.Select(k => k.ToStringUtf8()));

        var answers = new List<LeaseKeepAliveResponse>();
        using (var cancel = new CancellationTokenSource(Bounds.WaitTimeout))
            await _client.LeaseKeepAlive(new LeaseKeepAliveRequest { ID = grant.ID }, answers.Add, cancel.Token);
        var answer = Assert.Single(answers);
        Assert.Equal(grant.ID, answer.ID);
        Assert.Equal(60, answer.TTL);

        var leases = await _client.LeaseLeasesAsync(deadline: Bounds.CallDeadline);
        Assert.Contains(grant.ID, leases.Leases.Select(l => l.ID));

        await _client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = grant.ID }, deadline: Bounds.CallDeadline);
        Assert.Empty((await _client.GetAsync("dlease/a", deadline: Bounds.CallDeadline)).Kvs);
        Assert.Equal(-1, (await _client.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = grant.ID }, deadline: Bounds.CallDeadline)).TTL);

        var revokeAgain = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() =>
            _client.LeaseRevokeAsync(new LeaseRevokeRequest { ID = grant.ID }, deadline: Bounds.CallDeadline));
        Assert.Equal(Grpc.Core.StatusCode.NotFound, revokeAgain.StatusCode);
        Assert.Equal("etcdserver: requested lease not found", revokeAgain.Status.Detail);
    }

    [Fact(Timeout = 60_000)]
    public async Task The_keep_alive_loop_holds_a_short_lease_past_its_TTL_and_expiry_deletes_its_key_after_it_stops()
    {
        var grant = await _client.LeaseGrantAsync(new LeaseGrantRequest { TTL = 2 }, deadline: Bounds.CallDeadline);
        await _client.PutAsync(new PutRequest { Key = B("dlease-exp/k"), Value = B("v"), Lease = grant.ID }, deadline: Bounds.CallDeadline);

        using (var keepAlive = new CancellationTokenSource())
        {
            var loop = _client.LeaseKeepAlive(grant.ID, keepAlive.Token);
            // Hold it for twice the TTL by the server's own clock: remaining TTL is refreshed each round.
            var heldSince = DateTime.UtcNow;
            while (DateTime.UtcNow - heldSince < TimeSpan.FromSeconds(4))
            {
                Assert.False(loop.IsCompleted, $"keep-alive loop ended early: {loop.Exception}");
                var ttl = await _client.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = grant.ID }, deadline: Bounds.CallDeadline);
                Assert.True(ttl.TTL > 0, $"lease expired while kept alive (TTL {ttl.TTL})");
                await Task.Delay(500);
            }
            Assert.Single((await _client.GetAsync("dlease-exp/k", deadline: Bounds.CallDeadline)).Kvs);
            keepAlive.Cancel();
            try { await loop.WaitAsync(Bounds.WaitTimeout); }
            catch (OperationCanceledException) { /* the loop ends by cancellation */ }
            // Once we cancelled, how the loop ends is the client's own teardown: Cancelled, or (a race inside dotnet-etcd's
            // stream reader) Unavailable for the HTTP/2 request it aborted itself. What is checked is before and after.
            catch (Grpc.Core.RpcException) when (keepAlive.IsCancellationRequested) { }
        }

        var clock = DateTime.UtcNow;
        while ((await _client.GetAsync("dlease-exp/k", deadline: Bounds.CallDeadline)).Kvs.Count > 0)
        {
            Assert.True(DateTime.UtcNow - clock < Bounds.WaitTimeout, "the key outlived its lease's expiry");
            await Task.Delay(200);
        }
        Assert.Equal(-1, (await _client.LeaseTimeToLiveAsync(new LeaseTimeToLiveRequest { ID = grant.ID }, deadline: Bounds.CallDeadline)).TTL);
    }
}
