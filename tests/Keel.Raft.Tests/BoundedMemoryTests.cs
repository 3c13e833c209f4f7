using Keel.Quorum;
using Xunit.Abstractions;
using Keel.Raft.Tests.Harness;

namespace Keel.Raft.Tests;

/// <summary>
/// The seed's "storage exhaustion from unbounded logs" and etcd's unbounded-uncommitted-memory failure: while one
/// follower is down for a long time, a leader that snapshots and compacts at its watermarks keeps its log, its
/// in-flight window and its managed heap bounded, and the follower still catches up (by snapshot) when it returns.
/// </summary>
[Collection(HeapMeasurement.Name)]
public sealed class BoundedMemoryTests(ITestOutputHelper output)
{
    private const ulong TrailingEntries = 500;
    private const int Batch = 100;

    [Fact]
    public void A_long_dead_follower_does_not_grow_the_leaders_log_or_heap_and_catches_up_by_snapshot()
    {
        var cluster = new ClusterDriver(seed: 11);
        var membership = new Membership([1, 2, 3]);
        for (ulong id = 1; id <= 3; id++)
            cluster.AddNode(id, membership, options => options with { TrailingEntries = TrailingEntries });
        cluster[1].Node.Campaign();
        cluster.Stabilize();
        cluster.Partition([3]);

        var payload = new byte[256];
        long heapAt10k = 0;
        var maxLogEntries = 0UL;
        var maxInflight = 0;
        for (var proposed = 0; proposed < 40_000; proposed += Batch)
        {
            for (var i = 0; i < Batch; i++) cluster[1].Node.Propose(payload).ThrowIfDropped();
            cluster.Stabilize([1, 2]);
            foreach (var id in new ulong[] { 1, 2 })
            {
                var host = cluster[id];
                var applied = host.AppliedIndex;
                if (applied > host.Storage.Snapshot.Metadata.Index + TrailingEntries)
                {
                    host.Storage.CreateSnapshot(applied, host.Node.Membership, host.SnapshotData(0));
                    host.Node.Compact(applied);
                    host.ForgetThrough(applied);
                }
            }
            var leaderStorage = cluster[1].Storage;
            maxLogEntries = Math.Max(maxLogEntries, leaderStorage.LastIndex - leaderStorage.FirstIndex + 1);
            maxInflight = Math.Max(maxInflight, cluster[1].Node.Tracker.Progress[3].Inflights.Count);
            if (proposed == 10_000) heapAt10k = Heap();
        }
        var heapAt40k = Heap();
        output.WriteLine($"leader log entries at most {maxLogEntries}; follower in-flight at most {maxInflight}; heap {heapAt10k:N0} B at 10,000 entries, {heapAt40k:N0} B at 40,000");

        // The log holds at most the trailing entries plus what accumulates between two compactions.
        Assert.InRange(maxLogEntries, 1UL, 2 * TrailingEntries + 2 * Batch);
        // The dead follower's in-flight window stays within the configured cap.
        Assert.InRange(maxInflight, 0, cluster[1].Node.Options.MaxInflightMessages);
        // 30,000 more entries of 256 bytes would be 7.7 MB if retained; the heap may not grow by a third of that.
        Assert.True(heapAt40k - heapAt10k < 2_500_000, $"heap grew from {heapAt10k:N0} to {heapAt40k:N0} bytes");

        cluster.Heal();
        for (var round = 0; round < 50 && cluster[3].AppliedIndex < cluster[1].AppliedIndex; round++)
        {
            cluster.Tick(1, 1);
            cluster.Stabilize();
        }
        Assert.Equal(cluster[1].AppliedIndex, cluster[3].AppliedIndex);
        Assert.True(cluster[3].Storage.Snapshot.Metadata.Index > 30_000, "the follower caught up from a snapshot, not from a log the leader no longer has");
    }

    private static long Heap()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }
}

/// <summary>Heap measurements are process-wide: tests that take them run alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HeapMeasurement
{
    /// <summary>The collection's name.</summary>
    public const string Name = "heap measurement";
}
