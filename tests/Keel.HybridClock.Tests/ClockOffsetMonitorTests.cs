namespace Keel.HybridClock.Tests;

public sealed class ClockOffsetMonitorTests
{
    private const long Now = Generators.BaseWallMs;

    [Fact]
    public void Measure_uses_the_middle_of_the_round_trip()
    {
        var m = ClockOffsetMonitor.Measure(sendWallMs: Now, remoteWallMs: Now + 1_000, receiveWallMs: Now + 20);
        Assert.Equal(990, m.OffsetMs);
        Assert.Equal(10, m.UncertaintyMs);
        Assert.Equal(Now + 20, m.MeasuredAtMs);
        Assert.Equal(1, ClockOffsetMonitor.Measure(Now, Now, Now + 1).UncertaintyMs); // rounds uncertainty up
        Assert.Throws<ArgumentOutOfRangeException>(() => ClockOffsetMonitor.Measure(Now, Now, Now - 1));
    }

    [Fact]
    public void Tolerated_offset_is_eighty_percent_of_max_offset()
    {
        var monitor = new ClockOffsetMonitor();
        Assert.Equal(500, monitor.MaxOffsetMs);
        Assert.Equal(400, monitor.ToleratedOffsetMs);
        Assert.True(monitor.IsHealthy(new OffsetMeasurement(400, 0, Now)));
        Assert.False(monitor.IsHealthy(new OffsetMeasurement(-401, 0, Now)));
        Assert.True(monitor.IsHealthy(new OffsetMeasurement(450, 50, Now))); // might be within: benefit of the doubt
        monitor.AssertInvariants();
    }

    [Fact]
    public void A_drifting_node_in_a_three_node_cluster_stops_and_the_healthy_ones_stay_up()
    {
        // Node 3's clock runs 600 ms ahead of nodes 1 and 2.
        var driftingNode = new ClockOffsetMonitor();
        driftingNode.Record(1, new OffsetMeasurement(-600, 2, Now));
        driftingNode.Record(2, new OffsetMeasurement(-598, 2, Now));
        var healthyNode = new ClockOffsetMonitor();
        healthyNode.Record(2, new OffsetMeasurement(3, 2, Now));
        healthyNode.Record(3, new OffsetMeasurement(600, 2, Now));

        var error = Assert.Throws<ClockSynchronizationException>(() => driftingNode.VerifyOrThrow(Now));
        Assert.Equal(
            "clock synchronization error: this node is more than 400 ms away from a majority of the known nodes " +
            "(0 of 2 are within the offset)", error.Message);
        Assert.Equal(new ClockHealth(false, 0, 2, 400), error.Health);
        Assert.Equal(new ClockHealth(true, 1, 2, 400), healthyNode.Verify(Now));
        healthyNode.VerifyOrThrow(Now);
    }

    [Fact]
    public void Stale_measurements_and_removed_peers_do_not_count()
    {
        var monitor = new ClockOffsetMonitor(maxOffsetMs: 500, measurementTtlMs: 10_000);
        monitor.Record(1, new OffsetMeasurement(900, 1, Now));
        monitor.Record(2, new OffsetMeasurement(900, 1, Now + 5_000));
        monitor.Record(3, new OffsetMeasurement(0, 1, Now + 5_000));
        Assert.False(monitor.Verify(Now + 5_000).IsHealthy);
        Assert.Equal(new ClockHealth(true, 1, 2, 400), monitor.Verify(Now + 10_001)); // peer 1 expired: 1 of 2 healthy
        Assert.True(monitor.Remove(2));
        Assert.Equal(2, monitor.PeerCount);
        Assert.Equal(new ClockHealth(true, 0, 0, 400), monitor.Verify(Now + 60_000)); // nothing fresh: nothing known
    }

    [Fact]
    public void A_newer_measurement_replaces_the_older_one()
    {
        var monitor = new ClockOffsetMonitor();
        monitor.Record(7, new OffsetMeasurement(900, 1, Now));
        Assert.False(monitor.Verify(Now).IsHealthy);
        monitor.Record(7, new OffsetMeasurement(10, 1, Now + 1));
        Assert.True(monitor.Verify(Now + 1).IsHealthy);
        Assert.Equal(1, monitor.PeerCount);
    }

    [Fact]
    public void Invalid_arguments_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClockOffsetMonitor(maxOffsetMs: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClockOffsetMonitor(measurementTtlMs: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClockOffsetMonitor().Record(1, new OffsetMeasurement(0, -1, Now)));
    }
}
