using Keel.Heartbeat;

namespace Keel.Heartbeat.Tests;

public class FixedTimeoutFailureDetectorTests
{
    [Fact]
    public void Five_second_baseline_fails_exactly_at_the_timeout()
    {
        var detector = FixedTimeoutFailureDetector.FiveSeconds();
        Assert.True(detector.IsAvailable(0)); // not monitoring yet
        Assert.Equal(HeartbeatOutcome.Started, detector.Heartbeat(1000));
        Assert.True(detector.IsAvailable(5999));
        Assert.False(detector.IsAvailable(6000));
        Assert.Equal(0.5, detector.Suspicion(3500));
        Assert.Equal(0.25, detector.Suspicion(3500, timeoutMultiplier: 2));
        Assert.Equal(HeartbeatOutcome.Accepted, detector.Heartbeat(7000));
        Assert.True(detector.IsAvailable(7000));
        detector.AssertInvariants();
    }

    [Fact]
    public void Kubernetes_grace_period_is_40_seconds()
    {
        var detector = FixedTimeoutFailureDetector.KubernetesGracePeriod();
        Assert.Equal(40_000, detector.TimeoutMs);
        // kubelet renews every 10 s: three missed renewals are tolerated, four are not.
        detector.Heartbeat(0);
        Assert.True(detector.IsAvailable(39_999));
        Assert.False(detector.IsAvailable(40_000));
    }

    [Fact]
    public void Stale_sequences_and_backward_times_are_ignored()
    {
        var detector = new FixedTimeoutFailureDetector(1000);
        detector.Heartbeat(100, sequence: 5);
        Assert.Equal(HeartbeatOutcome.IgnoredStaleSequence, detector.Heartbeat(500, sequence: 5));
        Assert.Equal(HeartbeatOutcome.IgnoredTimeWentBackwards, detector.Heartbeat(50));
        Assert.Equal(100, detector.LastHeartbeatMs);
        detector.Reset();
        Assert.False(detector.IsMonitoring);
        Assert.Equal(HeartbeatOutcome.Started, detector.Heartbeat(60, sequence: 1));
    }

    [Fact]
    public void Compared_with_phi_on_a_GC_pause_and_on_a_crash()
    {
        // A 4 s pause of a peer that heartbeats every second: the 5 s timeout and phi both tolerate it; Kubernetes too.
        // A crash: phi notices after about 4.5 s, the 5 s timeout after 5 s, Kubernetes after 40 s.
        var phi = new PhiAccrualFailureDetector();
        var fixed5 = FixedTimeoutFailureDetector.FiveSeconds();
        var k8s = FixedTimeoutFailureDetector.KubernetesGracePeriod();
        IFailureDetector[] all = [phi, fixed5, k8s];
        long last = 0;
        foreach (var d in all) last = TestSupport.FeedSteady(d, 0, 1000, 30);
        Assert.All(all, d => Assert.True(d.IsAvailable(last + 4000)));
        Assert.False(phi.IsAvailable(last + 4700));
        Assert.True(fixed5.IsAvailable(last + 4700));
        Assert.False(fixed5.IsAvailable(last + 5000));
        Assert.True(k8s.IsAvailable(last + 39_000));
    }
}
