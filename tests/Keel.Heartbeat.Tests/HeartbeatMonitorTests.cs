using Keel.Heartbeat;

namespace Keel.Heartbeat.Tests;

public class HeartbeatMonitorTests
{
    [Fact]
    public void Peers_are_kept_and_checked_in_ascending_id_order()
    {
        var monitor = new HeartbeatMonitor();
        foreach (var peer in new ulong[] { 50, 3, ulong.MaxValue, 17 }) monitor.OnHeartbeat(peer, 0);
        Assert.Equal(new ulong[] { 3, 17, 50, ulong.MaxValue }, monitor.Peers);
        var transitions = new List<HealthTransition>();
        for (long t = 1000; t <= 10_000; t += 1000) monitor.Check(t, transitions);
        Assert.Equal(new ulong[] { 3, 17, 50, ulong.MaxValue, 3, 17, 50, ulong.MaxValue },
            transitions.Select(x => x.Peer).ToArray());
        Assert.All(monitor.Peers, p => Assert.Equal(HealthState.Failed, monitor.StateOf(p)));
        monitor.AssertInvariants();
    }

    [Fact]
    public void A_crashed_peer_is_suspected_then_failed_while_the_others_stay_healthy()
    {
        var monitor = new HeartbeatMonitor();
        var log = new List<HealthTransition>();
        for (long t = 0; t <= 40_000; t += 1000)
        {
            monitor.OnHeartbeat(1, t);
            if (t <= 20_000) monitor.OnHeartbeat(2, t); // peer 2 crashes after 20 s
            log.AddRange(monitor.Check(t));
            monitor.AssertInvariants();
        }
        Assert.Equal(2, log.Count);
        Assert.Equal(new HealthTransition(2, HealthState.Healthy, HealthState.Suspect, 25_000, log[0].Suspicion, 1), log[0]);
        Assert.Equal((2UL, HealthState.Failed, 27_000L), (log[1].Peer, log[1].To, log[1].AtMs));
        Assert.Equal(HealthState.Healthy, monitor.StateOf(1));
    }

    [Fact]
    public void A_peer_added_but_never_heard_from_is_still_detected()
    {
        var monitor = new HeartbeatMonitor();
        Assert.True(monitor.AddPeer(9, 0));
        Assert.False(monitor.AddPeer(9, 0));
        for (long t = 0; t <= 10_000; t += 1000) monitor.Check(t);
        Assert.Equal(HealthState.Failed, monitor.StateOf(9));
    }

    [Fact]
    public void Removed_and_unknown_peers()
    {
        var monitor = new HeartbeatMonitor();
        monitor.OnHeartbeat(1, 0);
        Assert.True(monitor.RemovePeer(1));
        Assert.False(monitor.RemovePeer(1));
        Assert.Equal(0, monitor.PeerCount);
        Assert.Throws<KeyNotFoundException>(() => monitor.StateOf(1));
        Assert.False(monitor.TryGetPeer(1, out _));
        Assert.Empty(monitor.Check(1000));
    }

    [Fact]
    public void Check_times_must_not_go_backwards()
    {
        var monitor = new HeartbeatMonitor();
        monitor.Check(5000);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => monitor.Check(4000));
        Assert.Contains("monotonic", error.Message);
    }

    [Fact]
    public void A_custom_detector_factory_is_used_per_peer()
    {
        var monitor = new HeartbeatMonitor(detectorFactory: _ => FixedTimeoutFailureDetector.FiveSeconds());
        monitor.OnHeartbeat(4, 0);
        Assert.True(monitor.TryGetPeer(4, out var health));
        Assert.IsType<FixedTimeoutFailureDetector>(health.Detector);
        // Suspect from 2.5 s of silence (half the timeout), failed once 5 s passed and three checks agreed.
        var log = new List<HealthTransition>();
        for (long t = 1000; t <= 8000; t += 1000) log.AddRange(monitor.Check(t));
        Assert.Equal(new[] { (HealthState.Suspect, 3000L), (HealthState.Failed, 5000L) }, log.Select(x => (x.To, x.AtMs)).ToArray());
    }

    // Three peers heartbeat every second; this node checks every second and is frozen from 10.5 s to 20.5 s (a long
    // GC pause): no checks run and no heartbeats are read. After the pause the check runs first, then the heartbeats
    // queued in the socket are read, all at once.
    private static List<HealthTransition> RunWithOwnPause(HeartbeatMonitor monitor, Func<long, bool> peer3Alive)
    {
        var log = new List<HealthTransition>();
        for (long t = 0; t <= 40_000; t += 500)
        {
            var paused = t > 10_000 && t < 20_500;
            if (paused) continue;
            if (t % 1000 == 500) log.AddRange(monitor.Check(t));
            if (t == 20_500)
            {
                // The backlog: every heartbeat sent during the pause is delivered now.
                for (var k = 0; k < 10; k++)
                {
                    monitor.OnHeartbeat(1, t);
                    monitor.OnHeartbeat(2, t);
                    if (peer3Alive(t)) monitor.OnHeartbeat(3, t);
                }
            }
            else if (t % 1000 == 0)
            {
                monitor.OnHeartbeat(1, t);
                monitor.OnHeartbeat(2, t);
                if (peer3Alive(t)) monitor.OnHeartbeat(3, t);
            }
            monitor.AssertInvariants();
        }
        return log;
    }

    [Fact]
    public void Own_pause_does_not_convict_healthy_peers()
    {
        var aggressive = new HeartbeatMonitorOptions { Health = new HealthOptions { SuspicionsToFail = 1 } };
        var monitor = new HeartbeatMonitor(aggressive);
        var log = RunWithOwnPause(monitor, _ => true);
        Assert.Empty(log);
        Assert.Equal(1, monitor.LocalHealth.PausesDetected);
        Assert.InRange(monitor.LocalHealth.LastPauseMs, 9000, 10_000);

        // Without local health awareness the same check would have convicted every peer on the spot.
        var naive = new PeerHealth(1, new PhiAccrualFailureDetector(), aggressive.Health);
        TestSupport.FeedSteady(naive.Detector, 0, 1000, 11);
        Assert.Equal(HealthState.Failed, naive.Evaluate(20_500)!.Value.To);
    }

    [Fact]
    public void A_peer_that_died_before_the_pause_is_still_convicted()
    {
        var monitor = new HeartbeatMonitor();
        var log = RunWithOwnPause(monitor, t => t <= 5000);
        var failed = Assert.Single(log, x => x.To == HealthState.Failed);
        Assert.Equal(3UL, failed.Peer);
        // Silence excused for the pause only: convicted within a few checks after it, not before the pause ended.
        Assert.InRange(failed.AtMs, 20_500, 24_500);
        Assert.All(log, x => Assert.Equal(3UL, x.Peer));
    }

    [Fact]
    public void Late_checks_raise_the_local_score_which_stretches_the_tolerated_silence()
    {
        var monitor = new HeartbeatMonitor();
        for (long t = 0; t <= 20_000; t += 1000) monitor.OnHeartbeat(1, t);
        monitor.Check(20_000);
        // Three checks each 600 ms late (slow, not paused): the score climbs to 3 and the multiplier to 4.
        long now = 20_000;
        for (var i = 0; i < 3; i++)
        {
            now += 1600;
            Assert.Empty(monitor.Check(now));
            Assert.Equal(LocalTickOutcome.Late, monitor.LastCheckTiming);
        }
        Assert.Equal(3, monitor.LocalHealth.Score);
        // 4.8 s of silence would make a phi of about 14 at score 0; with the pause stretched to 12 s it is 0.
        Assert.True(monitor.TryGetPeer(1, out var health));
        Assert.True(health.LastSuspicion < 1, $"suspicion {health.LastSuspicion}");
        Assert.True(((PhiAccrualFailureDetector)health.Detector).Phi(now) > 8);
    }

    [Fact]
    public void The_cassandra_style_grace_holds_every_new_verdict_after_a_pause()
    {
        var options = new HeartbeatMonitorOptions { LocalHealth = new LocalHealthOptions { ConvictionGraceAfterPauseMs = 5000 } };
        var monitor = new HeartbeatMonitor(options);
        monitor.OnHeartbeat(1, 0);
        monitor.Check(0);
        Assert.Empty(monitor.Check(30_000)); // paused 29 s: the peer's whole silence is excused
        var log = new List<HealthTransition>();
        for (long t = 31_000; t <= 40_000; t += 1000) log.AddRange(monitor.Check(t));
        Assert.True(log.Count > 0 && log[0].AtMs >= 35_000, string.Join("; ", log));
        Assert.True(monitor.TryGetPeer(1, out var health) && health.HeldVerdicts > 0);
    }
}
