using Google.Protobuf;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Server.Hosting;

namespace Keel.Server.Tests;

/// <summary>
/// A real member keeps its store's values in mapped files of its data directory (docs/mvcc.md, "Values in segments"):
/// the files are there while it runs, they are scratch (a restart deletes them and rebuilds the store from the
/// snapshot and the WAL), and every value reads back the same after the restart.
/// </summary>
public class ValueSegmentServerTests
{
    [Fact(Timeout = 120_000)]
    public async Task Values_live_in_the_data_directorys_segment_files_and_a_restart_rebuilds_them_from_the_log()
    {
        // A snapshot every 200 entries: the restart restores a snapshot and replays the log after it.
        await using var cluster = await LoopbackCluster.StartAsync(3, snapshotCount: 200);
        var leader = await cluster.WaitForLeaderAsync();
        var member = Array.FindIndex(cluster.Servers, s => s!.Host.MemberId == leader);
        var kv = new KV.KVClient(cluster.Channel(member));
        ByteString Value(int key, int round) => ByteString.CopyFrom(Enumerable.Range(0, 2048).Select(b => (byte)(b * 13 + key * 7 + round)).ToArray());
        for (var round = 0; round < 3; round++)
            for (var key = 0; key < 150; key++)
                await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8($"v/{key:D3}"), Value = Value(key, round) });

        var (segments, live) = await cluster.Servers[member]!.Host.InvokeAsync(node => (node.Store.ValueSegmentCount, node.Store.ValueLiveBytes));
        Assert.True(segments >= 1, "the store holds no value segment");
        Assert.Equal(3 * 150 * 2048L, live);
        var folder = Path.Combine(cluster.Options[member].DataDir, FileValueSegmentSource.FolderName);
        var before = Directory.GetFiles(folder, "*.values");
        Assert.NotEmpty(before);
        Assert.All(before, file => Assert.Equal(FileValueSegmentSource.DefaultSegmentBytes, new FileInfo(file).Length));

        await cluster.StopMemberAsync(member);
        await cluster.StartMemberAsync(member);
        await cluster.WaitForLeaderAsync();
        Assert.All(before, file => Assert.False(File.Exists(file), $"{file} of the previous run is still there"));
        Assert.NotEmpty(Directory.GetFiles(folder, "*.values"));

        var restarted = new KV.KVClient(cluster.Channel(member));
        var all = await restarted.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8("v/"), RangeEnd = ByteString.CopyFromUtf8("v0"), Serializable = true });
        Assert.Equal(150, all.Kvs.Count);
        for (var key = 0; key < 150; key++) Assert.Equal(Value(key, 2), all.Kvs[key].Value);
        var installedOrRestored = await cluster.Servers[member]!.Host.InvokeAsync(node => node.Store.ValueLiveBytes);
        Assert.True(installedOrRestored >= 150 * 2048L, $"{installedOrRestored} live value bytes after the restart");
    }
}
