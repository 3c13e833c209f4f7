using Google.Protobuf;
using Keel.Node;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Server.Tests;

/// <summary>
/// Raft's log keeps 8 MiB of applied payloads in memory (docs/storage.md, "Reading entries back"): a member that was
/// down while the leader wrote more than that catches up by entries the leader reads back from its WAL, not by a snapshot.
/// </summary>
public class RaftLogMemoryTests
{
    [Fact(Timeout = 120_000)]
    public async Task A_member_down_while_more_than_the_in_memory_log_was_written_catches_up_from_the_leaders_wal()
    {
        await using var cluster = await LoopbackCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync();
        var lagging = Array.FindIndex(cluster.Servers, s => s!.Host.MemberId != leader);
        var writer = Array.FindIndex(cluster.Servers, s => s!.Host.MemberId == leader);
        await cluster.StopMemberAsync(lagging);

        // 48 values of 256 KiB: 12 MiB of log, beyond the 8 MiB the leader keeps in memory.
        const int puts = 48;
        var kv = new KV.KVClient(cluster.Channel(writer));
        ByteString Value(int i) => ByteString.CopyFrom(Enumerable.Range(0, 256 * 1024).Select(b => (byte)(b * 31 + i)).ToArray());
        for (var i = 0; i < puts; i++) await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8($"big/{i:D2}"), Value = Value(i) });
        var inMemory = await cluster.Servers[writer]!.Host.InvokeAsync(node => node.RaftLogBytesInMemory);
        Assert.InRange(inMemory, 0, KeelNodeOptions.DefaultRaftLogMemoryBytes);

        await cluster.StartMemberAsync(lagging);
        var lagged = new KV.KVClient(cluster.Channel(lagging));
        var deadline = DateTime.UtcNow.AddSeconds(60);
        long count;
        do count = (await lagged.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("big/"), RangeEnd = ByteString.CopyFromUtf8("big0"), Serializable = true, CountOnly = true })).Count;
        while (count < puts && DateTime.UtcNow < deadline && await Task.Delay(50).ContinueWith(_ => true));
        Assert.Equal(puts, count);
        for (var i = 0; i < puts; i += 7)
        {
            var got = await lagged.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8($"big/{i:D2}"), Serializable = true });
            Assert.Equal(Value(i), got.Kvs[0].Value);
        }
        Assert.Equal(0, await cluster.Servers[lagging]!.Host.InvokeAsync(node => node.SnapshotsInstalled));
        var readBack = await cluster.Servers[writer]!.Host.InvokeAsync(node => node.EntriesReadBack);
        Assert.True(readBack > 0, "the leader sent the lagging member entries without reading any back from its WAL");
    }
}
