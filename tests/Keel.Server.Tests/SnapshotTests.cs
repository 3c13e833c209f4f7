using Google.Protobuf;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Server.Tests;

public class SnapshotTests
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [Fact(Timeout = 120_000)]
    public async Task Snapshots_are_written_in_the_background_and_a_member_that_missed_the_compacted_log_catches_up_from_one()
    {
        await using var cluster = await LoopbackCluster.StartAsync(3, snapshotCount: 200);
        var leader = await cluster.WaitForLeaderAsync();
        var lagging = Array.FindIndex(cluster.Servers, s => s!.Host.MemberId != leader);
        var writer = Array.FindIndex(cluster.Servers, s => s!.Host.MemberId == leader);
        await cluster.StopMemberAsync(lagging);

        var kv = new KV.KVClient(cluster.Channel(writer));
        // More entries than the leader keeps for slow followers (1,024) after its snapshots: the stopped member can
        // only catch up from a snapshot.
        var puts = Enumerable.Range(0, 1_600).Select(i => kv.PutAsync(new PutRequest { Key = B($"s/{i:D4}"), Value = B(i.ToString()) }).ResponseAsync);
        foreach (var chunk in puts.Chunk(64)) await Task.WhenAll(chunk);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var leaderDir = cluster.Options[writer].DataDir;
        while (Directory.GetFiles(leaderDir, "*.snap").Length == 0 && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.NotEmpty(Directory.GetFiles(leaderDir, "*.snap"));
        Assert.True(cluster.Servers[writer]!.Host.Status.AppliedIndex > 1_600);

        await cluster.StartMemberAsync(lagging);
        var lagged = new KV.KVClient(cluster.Channel(lagging));
        RangeResponse range;
        do range = await lagged.RangeAsync(new RangeRequest { Key = B("s/"), RangeEnd = B("s0"), Serializable = true, CountOnly = true });
        while (range.Count < 1_600 && DateTime.UtcNow < deadline.AddSeconds(30) && await Task.Delay(50).ContinueWith(_ => true));
        Assert.Equal(1_600, range.Count);
        Assert.True(await cluster.Servers[lagging]!.Host.InvokeAsync(node => node.SnapshotsInstalled) >= 1, "the lagging member caught up without InstallSnapshot");

        // Every member restarts from its own snapshot plus the WAL after it, with nothing lost.
        for (var m = 0; m < 3; m++) await cluster.StopMemberAsync(m);
        for (var m = 0; m < 3; m++) await cluster.StartMemberAsync(m);
        await cluster.WaitForLeaderAsync();
        var restartDeadline = DateTime.UtcNow.AddSeconds(30);
        for (var m = 0; m < 3; m++)
        {
            var member = new KV.KVClient(cluster.Channel(m));
            long count;
            do count = (await member.RangeAsync(new RangeRequest { Key = B("s/"), RangeEnd = B("s0"), Serializable = true, CountOnly = true })).Count;
            while (count < 1_600 && DateTime.UtcNow < restartDeadline && await Task.Delay(50).ContinueWith(_ => true));
            Assert.True(count == 1_600, $"member {m} has {count} keys after a restart");
        }
        var final = await new KV.KVClient(cluster.Channel(lagging)).RangeAsync(new RangeRequest { Key = B("s/1599") });
        Assert.Equal("1599", final.Kvs[0].Value.ToStringUtf8());
    }
}
