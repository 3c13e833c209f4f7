using Google.Protobuf;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Protocol.V1;

namespace Keel.Server.Tests;

public class KeelServiceTests
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static long WaitForNextMillisecond()
    {
        var start = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        long now;
        while ((now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()) <= start) Thread.SpinWait(100);
        return now;
    }

    [Fact]
    public async Task A_read_as_of_a_wall_time_sees_the_revision_current_then_and_changes_between_two_times_are_listed()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1);
        var kv = new KV.KVClient(cluster.Channel(0));
        var keel = new KeelService.KeelServiceClient(cluster.Channel(0));
        var beforeAll = WaitForNextMillisecond();
        WaitForNextMillisecond();
        var first = await kv.PutAsync(new PutRequest { Key = B("audit"), Value = B("v1") });
        var between = WaitForNextMillisecond();
        WaitForNextMillisecond();
        await kv.PutAsync(new PutRequest { Key = B("audit"), Value = B("v2") });

        var then = await keel.ReadAtAsync(new ReadAtRequest { Key = B("audit"), AtUnixMs = between });
        Assert.Equal(first.Header.Revision, then.ResolvedRevision);
        Assert.Equal("v1", then.Kvs[0].Value.ToStringUtf8());
        Assert.True(then.ResolvedTimestamp.WallTimeUnixMs <= between);

        var nothingYet = await keel.ReadAtAsync(new ReadAtRequest { Key = B("audit"), AtUnixMs = beforeAll });
        Assert.Empty(nothingYet.Kvs);

        var changes = await keel.ChangesBetweenAsync(new ChangesBetweenRequest { Key = B("audit"), FromUnixMs = beforeAll, ToUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 1 });
        Assert.Equal(["v1", "v2"], changes.Events.Select(e => e.Event.Kv.Value.ToStringUtf8()));
        Assert.True(changes.Events[0].Timestamp.WallTimeUnixMs < changes.Events[1].Timestamp.WallTimeUnixMs);
        var onlyFirst = await keel.ChangesBetweenAsync(new ChangesBetweenRequest { Key = B("audit"), FromUnixMs = beforeAll, ToUnixMs = between });
        Assert.Equal(["v1"], onlyFirst.Events.Select(e => e.Event.Kv.Value.ToStringUtf8()));
    }

    [Fact]
    public async Task Health_and_members_describe_the_cluster()
    {
        await using var cluster = await LoopbackCluster.StartAsync(3);
        var keel = new KeelService.KeelServiceClient(cluster.Channel(1));
        var health = await keel.HealthAsync(new HealthRequest());
        Assert.True(health.Healthy);
        Assert.NotEqual(0UL, health.LeaderId);
        var members = await keel.MembersAsync(new MembersRequest());
        Assert.Equal(3, members.Members.Count);
        Assert.Single(members.Members, m => m.IsLeader);
    }
}
