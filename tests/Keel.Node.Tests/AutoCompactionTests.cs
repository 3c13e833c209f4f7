using Keel.Mvcc;
using static Keel.Node.Tests.TestCluster;

namespace Keel.Node.Tests;

/// <summary>Issue 11: the leader bounds history through the log (etcd's compactor), and image sizes are 64-bit.</summary>
public class AutoCompactionTests
{
    private static void Put(TestCluster cluster, ulong requestId, string key) =>
        Assert.Null(cluster.Submit(cluster.Leader, requestId, KvCommand.Of(new PutRequest { Key = B(key), Value = B("v") })).Error);

    [Fact]
    public void Revision_mode_keeps_the_last_revisions_on_every_replica()
    {
        var cluster = new TestCluster([1, 2, 3], configure: o => o with { AutoCompaction = new AutoCompactionPolicy(AutoCompactionMode.Revision, 5) });
        cluster.ElectLeader();
        for (ulong i = 1; i <= 20; i++) Put(cluster, i, $"k{i % 3}");
        var current = cluster.Leader.Store.CurrentRevision;
        Assert.Equal(0, cluster.Leader.Store.CompactRevision);
        cluster.StepUntil(() => cluster.Nodes.Values.All(n => n.Store.CompactRevision == current - 5), AutoCompactionPolicy.RevisionCheckIntervalMs + 5_000);
        Assert.Equal(1, cluster.Leader.AutoCompactionsProposed);
        Assert.All(cluster.Nodes.Values, n => Assert.Equal(current - 5, n.Store.CompactRevision));
        cluster.AssertInvariants();
    }

    [Fact]
    public void Periodic_mode_keeps_the_history_of_the_retention_in_wall_time()
    {
        var cluster = new TestCluster([1], configure: o => o with { AutoCompaction = new AutoCompactionPolicy(AutoCompactionMode.Periodic, 60_000) });
        cluster.ElectLeader();   // the leader's checks start now (T), every 60 s
        cluster.Step(1_000);
        Put(cluster, 1, "a");
        cluster.Step(30_000);
        Put(cluster, 2, "a");
        var kept = cluster.Leader.Store.CurrentRevision;   // written about 30 s in
        cluster.Step(45_000);
        Put(cluster, 3, "a");
        // At the first check (T + 60 s) nothing is older than the retention; at the next (T + 120 s) the cutoff,
        // T + 60 s, falls between the second put (T + 31 s) and the third (T + 76 s): compacted at the second's revision.
        cluster.StepUntil(() => cluster.Leader.Store.CompactRevision != 0, 130_000);
        Assert.Equal(kept, cluster.Leader.Store.CompactRevision);
        cluster.AssertInvariants();
    }

    [Fact]
    public void Off_by_default_in_the_node()
    {
        var cluster = new TestCluster([1]);
        cluster.ElectLeader();
        for (ulong i = 1; i <= 5; i++) Put(cluster, i, "a");
        cluster.Step(2 * AutoCompactionPolicy.MaxPeriodicIntervalMs / 60);
        Assert.Equal(0, cluster.Leader.Store.CompactRevision);
        Assert.Equal(0, cluster.Leader.AutoCompactionsProposed);
    }

    [Theory]
    [InlineData("periodic", "1h", AutoCompactionMode.Periodic, 3_600_000)]
    [InlineData("periodic", "2", AutoCompactionMode.Periodic, 7_200_000)]
    [InlineData("periodic", "1h30m", AutoCompactionMode.Periodic, 5_400_000)]
    [InlineData("periodic", "90s", AutoCompactionMode.Periodic, 90_000)]
    [InlineData("revision", "1000", AutoCompactionMode.Revision, 1000)]
    [InlineData("periodic", "0", AutoCompactionMode.None, 0)]
    public void Flags_parse_as_etcd_reads_them(string mode, string retention, AutoCompactionMode expectedMode, long expectedRetention)
    {
        var policy = AutoCompactionPolicy.Parse(mode, retention);
        Assert.Equal(expectedMode, policy.Mode);
        Assert.Equal(expectedRetention, policy.Retention);
    }

    [Theory]
    [InlineData("daily", "1")]
    [InlineData("periodic", "1d")]
    [InlineData("periodic", "h")]
    [InlineData("revision", "1h")]
    public void Bad_flags_are_refused_with_a_clear_message(string mode, string retention) =>
        Assert.Contains("--auto-compaction", Assert.Throws<FormatException>(() => AutoCompactionPolicy.Parse(mode, retention)).Message);

    [Fact]
    public void Node_image_sizes_are_summed_in_64_bits()
    {
        var size = KeelNode.NodeImageBytes(1_000, 3L << 30, 100, 100, 10);
        Assert.Equal(1_000 + 4 + (3L << 30) + 4 + 100 + 4 + 100 + 10, size);
        Assert.Throws<Keel.Core.Encoding.ImageTooLargeException>(() => Keel.Core.Encoding.ImageSize.CheckFitsOneArray(size, "the node's snapshot image"));
    }
}
