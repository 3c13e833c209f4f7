using Keel.Heartbeat;

namespace Keel.Heartbeat.Tests;

public class PeerHealthTests
{
    private static (PeerHealth Health, ScriptedDetector Detector) Create(int suspicionsToFail = 3)
    {
        var detector = new ScriptedDetector { LastHeartbeatMs = 0 };
        var health = new PeerHealth(7, detector, new HealthOptions { SuspicionsToFail = suspicionsToFail });
        return (health, detector);
    }

    private static List<HealthState> Run(PeerHealth health, ScriptedDetector detector, params double[] levels)
    {
        var states = new List<HealthState>();
        long t = 0;
        foreach (var level in levels)
        {
            detector.Level = level;
            health.Evaluate(t += 1000);
            health.AssertInvariants();
            states.Add(health.State);
        }
        return states;
    }

    [Fact]
    public void A_single_blip_only_warns()
    {
        var (health, detector) = Create();
        var states = Run(health, detector, 0, 9, 0, 0);
        Assert.Equal([HealthState.Healthy, HealthState.Suspect, HealthState.Healthy, HealthState.Healthy], states);
    }

    [Fact]
    public void Sustained_silence_fails_after_the_counter_agrees()
    {
        var (health, detector) = Create();
        var states = Run(health, detector, 9, 9, 9);
        Assert.Equal([HealthState.Suspect, HealthState.Suspect, HealthState.Failed], states);
        Assert.Equal(3, health.SuspicionCount);
    }

    [Fact]
    public void Suspicion_below_the_failure_threshold_never_fails()
    {
        var (health, detector) = Create();
        var states = Run(health, detector, 5, 5, 5, 5, 5, 5, 5.9, 7.99);
        Assert.All(states, s => Assert.Equal(HealthState.Suspect, s));
        Assert.Equal(3, health.SuspicionCount); // capped
    }

    [Fact]
    public void Intermittent_blips_never_fail()
    {
        var (health, detector) = Create();
        var states = Run(health, detector, 9, 0, 9, 0, 9, 0, 9, 0);
        Assert.DoesNotContain(HealthState.Failed, states);
        Assert.Equal(HealthState.Healthy, states[^1]);
    }

    [Fact]
    public void Recovery_passes_through_suspect_as_the_counter_drains()
    {
        var (health, detector) = Create();
        Run(health, detector, 9, 9, 9);
        var states = Run(health, detector, 0, 0, 0);
        Assert.Equal([HealthState.Suspect, HealthState.Suspect, HealthState.Healthy], states);
    }

    [Fact]
    public void Transitions_are_reported_once_with_their_cause()
    {
        var (health, detector) = Create(suspicionsToFail: 2);
        detector.Level = 9;
        var first = health.Evaluate(1000);
        var second = health.Evaluate(2000);
        var third = health.Evaluate(3000);
        Assert.Equal(new HealthTransition(7, HealthState.Healthy, HealthState.Suspect, 1000, 9, 1), first);
        Assert.Equal(new HealthTransition(7, HealthState.Suspect, HealthState.Failed, 2000, 9, 2), second);
        Assert.Null(third);
        Assert.Contains("Suspect -> Failed", second!.Value.ToString());
    }

    [Fact]
    public void The_suspect_level_is_a_fraction_of_the_detector_threshold()
    {
        var detector = new ScriptedDetector { Threshold = 10, LastHeartbeatMs = 0 };
        var health = new PeerHealth(1, detector, new HealthOptions { SuspectFractionOfThreshold = 0.3 });
        Assert.Equal(3.0, health.SuspectLevel, 9);
        detector.Level = 2.9;
        Assert.Null(health.Evaluate(1));
        detector.Level = 3.0;
        Assert.Equal(HealthState.Suspect, health.Evaluate(2)!.Value.To);
    }

    [Fact]
    public void Local_health_stretches_timeouts_and_excuses_paused_time()
    {
        var detector = new ScriptedDetector { LastHeartbeatMs = 10_000 };
        var health = new PeerHealth(1, detector);
        var local = new LocalHealth();
        local.OnTick(scheduledMs: 11_000, nowMs: 11_500); // late: score 1
        local.OnTick(scheduledMs: 12_000, nowMs: 20_000); // paused 8 s: score 2
        health.Evaluate(20_000, local);
        Assert.Equal(3.0, detector.LastMultiplier);
        Assert.Equal(12_000, detector.LastEvaluatedAtMs); // 10 s of silence minus 8 s of our own pause
    }

    [Fact]
    public void With_a_real_phi_detector_a_crash_goes_suspect_then_failed()
    {
        var detector = new PhiAccrualFailureDetector();
        var health = new PeerHealth(3, detector);
        var last = TestSupport.FeedSteady(detector, 0, 1000, 30);
        var transitions = new List<HealthTransition>();
        for (var t = last + 1000; t <= last + 10_000; t += 1000)
            if (health.Evaluate(t) is { } transition) transitions.Add(transition);
        Assert.Equal(2, transitions.Count);
        Assert.Equal((HealthState.Healthy, HealthState.Suspect, last + 5000), (transitions[0].From, transitions[0].To, transitions[0].AtMs));
        Assert.Equal((HealthState.Suspect, HealthState.Failed, last + 7000), (transitions[1].From, transitions[1].To, transitions[1].AtMs));
        health.AssertInvariants();
    }
}
