using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Protocol.Health;

namespace Keel.Server.Tests;

/// <summary>
/// The server's bounds answer with documented errors instead of growing: the loop's queue, responses, watches per
/// stream; a stalled loop turns health NOT_SERVING; alarms are real (list, activate, deactivate).
/// </summary>
public class BoundsAndHealthTests
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            if (await condition()) return;
            await Task.Delay(20);
        }
        Assert.Fail($"not reached within 10 s: {what}");
    }

    [Fact]
    public async Task A_blocked_loop_refuses_requests_past_the_queue_bound_and_health_says_not_serving_until_it_moves()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1, configure: o => o with { MaxQueuedRequests = 5, LoopStallMs = 300 });
        var host = cluster.Servers[0]!.Host;
        var kv = new KV.KVClient(cluster.Channel(0));
        var health = new Health.HealthClient(cluster.Channel(0));
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);

        // Hold the loop inside one work item, as a stuck disk or a bug would.
        using var gate = new ManualResetEventSlim();
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var blocker = host.InvokeAsync(_ =>
        {
            entered.SetResult();
            return gate.Wait(TimeSpan.FromSeconds(30));
        });
        await entered.Task;
        // Eight puts reach a loop that admits five: three are refused at once (in whatever order the streams arrive).
        var puts = Enumerable.Range(0, 8).Select(i => kv.PutAsync(new PutRequest { Key = B($"q{i}"), Value = B("v") }).ResponseAsync).ToArray();
        await Eventually(() => Task.FromResult(puts.Count(p => p.IsFaulted) >= 3), $"three requests refused while five wait (refused {host.RequestsRefusedQueueFull})");
        // At least three: the member's own background requests (publishing its attributes) may hold a slot too.
        foreach (var failed in puts.Where(p => p.IsCompleted))
        {
            var refused = Assert.IsType<RpcException>(failed.Exception!.InnerException);
            Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
            Assert.Equal("etcdserver: too many requests", refused.Status.Detail);
        }
        await Eventually(async () => (await health.CheckAsync(new HealthCheckRequest())).Status == HealthCheckResponse.Types.ServingStatus.NotServing,
            "health NOT_SERVING while the loop is stalled");
        Assert.True(host.IsLoopStalled);

        gate.Set();
        Assert.True(await blocker);
        var admitted = puts.Where(p => !p.IsFaulted).ToArray();
        Assert.InRange(admitted.Length, 1, 5);
        foreach (var put in admitted) Assert.True((await put).Header.Revision > 1);
        await Eventually(async () => (await health.CheckAsync(new HealthCheckRequest())).Status == HealthCheckResponse.Types.ServingStatus.Serving,
            "health SERVING once the loop moves");
    }

    [Fact]
    public async Task A_response_over_the_bound_asks_the_client_to_page()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1, configure: o => o with { MaxResponseBytes = 4096 });
        var kv = new KV.KVClient(cluster.Channel(0));
        for (var i = 0; i < 10; i++) await kv.PutAsync(new PutRequest { Key = B($"big/{i}"), Value = ByteString.CopyFrom(new byte[1000]) });
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await kv.RangeAsync(new RangeRequest { Key = B("big/"), RangeEnd = B("big0") }));
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Assert.Contains("limit", refused.Status.Detail);
        var page = await kv.RangeAsync(new RangeRequest { Key = B("big/"), RangeEnd = B("big0"), Limit = 2 });
        Assert.Equal(2, page.Kvs.Count);
        Assert.True(page.More);
    }

    [Fact]
    public async Task Watch_creates_with_unknown_filters_are_refused_and_the_stream_goes_on()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1);
        var watch = new Watch.WatchClient(cluster.Channel(0));
        using var call = watch.Watch();
        await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("w"), Filters = { (WatchCreateRequest.Types.FilterType)7 } } });
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.True(call.ResponseStream.Current.Canceled);
        await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("w") } });
        Assert.True(await call.ResponseStream.MoveNext());
        Assert.True(call.ResponseStream.Current.Created);
        Assert.False(call.ResponseStream.Current.Canceled);
        await call.RequestStream.CompleteAsync();
    }

    [Fact]
    public async Task Alarms_are_listed_raised_and_cleared_through_the_log_on_every_member()
    {
        await using var cluster = await LoopbackCluster.StartAsync(3);
        var maintenance = Enumerable.Range(0, 3).Select(i => new Maintenance.MaintenanceClient(cluster.Channel(i))).ToArray();
        Assert.Empty((await maintenance[0].AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Get })).Alarms);
        var raised = await maintenance[1].AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Activate, MemberID = 42, Alarm = AlarmType.Nospace });
        Assert.Equal(42UL, Assert.Single(raised.Alarms).MemberID);
        foreach (var client in maintenance)
            await Eventually(async () => (await client.AlarmAsync(new AlarmRequest())).Alarms.Count == 1, "every member lists the alarm");
        var kv = new KV.KVClient(cluster.Channel(2));
        var refused = await Assert.ThrowsAsync<RpcException>(async () => await kv.PutAsync(new PutRequest { Key = B("k"), Value = B("v") }));
        Assert.Equal("etcdserver: mvcc: database space exceeded", refused.Status.Detail);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        var status = await maintenance[0].StatusAsync(new StatusRequest());
        Assert.Contains(status.Errors, e => e.Contains("alarm:NOSPACE", StringComparison.Ordinal));
        await maintenance[0].AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Deactivate, MemberID = 42, Alarm = AlarmType.Nospace });
        foreach (var client in maintenance)
            await Eventually(async () => (await client.AlarmAsync(new AlarmRequest())).Alarms.Count == 0, "every member cleared the alarm");
        Assert.True((await kv.PutAsync(new PutRequest { Key = B("k"), Value = B("v") })).Header.Revision > 1);
        var invalid = await Assert.ThrowsAsync<RpcException>(async () => await maintenance[0].AlarmAsync(new AlarmRequest { Action = AlarmRequest.Types.AlarmAction.Activate, Alarm = (AlarmType)9 }));
        Assert.Equal(StatusCode.InvalidArgument, invalid.StatusCode);
    }
}
