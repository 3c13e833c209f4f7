using Keel.Core;
using Keel.Heartbeat;

namespace Keel.Heartbeat.Tests;

public class PhiAccrualFailureDetectorTests
{
    // A history of exactly mean 1000 ms and (floored) deviation 100 ms with no acceptable pause: the window of 10
    // holds only 1000 ms intervals once the bootstrap pair has been evicted.
    private static PhiAccrualFailureDetector ReferenceDetector(out long lastMs)
    {
        var detector = new PhiAccrualFailureDetector(new PhiAccrualOptions
        {
            AcceptableHeartbeatPauseMs = 0, MinStdDeviationMs = 100, MaxSampleSize = 10,
        });
        lastMs = TestSupport.FeedSteady(detector, 0, 1000, 21);
        Assert.Equal(10, detector.IntervalCount);
        Assert.Equal(1000.0, detector.IntervalMeanMs);
        Assert.Equal(0.0, detector.IntervalStdDeviationMs);
        return detector;
    }

    [Theory]
    [InlineData(1000, 0.3)]
    [InlineData(1200, 1.6)]
    [InlineData(1400, 4.7)]
    [InlineData(1600, 10.8)]
    [InlineData(1700, 15.3)]
    public void Reference_table_mean_1000_sd_100_no_pause(long dtMs, double expectedPhi)
    {
        // The table is Akka's (AccrualFailureDetectorSpec "return realistic phi values"), which checks each value to
        // +- 0.1; the exact values are 0.301, 1.643, 4.737, 10.783, 15.368 (the literal Akka formula gives the same).
        var detector = ReferenceDetector(out var last);
        var phi = detector.Phi(last + dtMs);
        Assert.InRange(phi, expectedPhi - 0.1, expectedPhi + 0.1);
        Assert.Equal(TestSupport.AkkaPhi(dtMs, 1000, 100), phi, 9);
        Assert.Equal(phi, PhiAccrualFailureDetector.ComputePhi(dtMs, 1000, 100));
        detector.AssertInvariants();
    }

    [Fact]
    public void Overflow_free_rewrite_matches_the_literal_akka_formula()
    {
        for (var dt = 0; dt <= 3000; dt += 7)
        {
            var ours = PhiAccrualFailureDetector.ComputePhi(dt, 1000, 100);
            var akka = TestSupport.AkkaPhi(dt, 1000, 100);
            Assert.True(Math.Abs(ours - akka) <= 1e-9 * Math.Max(1, akka), $"dt {dt}: ours {ours}, akka {akka}");
        }
    }

    [Fact]
    public void With_defaults_phi_reaches_8_about_4_5_s_after_the_last_heartbeat()
    {
        var detector = new PhiAccrualFailureDetector();
        TestSupport.FeedSteady(detector, 10_000, 1000, 30);
        var silence = TestSupport.SilenceUntilPhi(detector, 8.0);
        Assert.InRange(silence, 4450, 4600);
        var last = detector.LastHeartbeatMs!.Value;
        Assert.True(detector.IsAvailable(last + 4400));
        Assert.False(detector.IsAvailable(last + 4600));
    }

    [Fact]
    public void Phi_is_zero_before_the_first_heartbeat()
    {
        var detector = new PhiAccrualFailureDetector();
        Assert.False(detector.IsMonitoring);
        Assert.Null(detector.LastHeartbeatMs);
        Assert.Equal(0.0, detector.Phi(123_456));
        Assert.True(detector.IsAvailable(123_456));
        detector.AssertInvariants();
    }

    [Fact]
    public void First_heartbeat_bootstraps_two_intervals_mean_minus_and_plus_a_quarter()
    {
        var detector = new PhiAccrualFailureDetector(new PhiAccrualOptions { FirstHeartbeatEstimateMs = 2000 });
        Assert.Equal(HeartbeatOutcome.Started, detector.Heartbeat(500));
        Span<long> intervals = stackalloc long[4];
        Assert.Equal(2, detector.CopyIntervals(intervals));
        Assert.Equal(1500, intervals[0]);
        Assert.Equal(2500, intervals[1]);
        Assert.Equal(2000.0, detector.IntervalMeanMs);
        Assert.Equal(500.0, detector.IntervalStdDeviationMs);
        detector.AssertInvariants();
    }

    [Fact]
    public void A_peer_heard_from_once_is_still_detected_from_the_guessed_statistics()
    {
        // Akka's rationale (akka/akka-core#526): with only the guess, a peer that sends one heartbeat and dies must
        // still become unavailable. Defaults: mean' = 1000 + 3000, sd = 250, so phi 8 at about 4000 + 5.2 x 250.
        var detector = new PhiAccrualFailureDetector();
        detector.Heartbeat(0);
        Assert.True(detector.IsAvailable(5200));
        Assert.False(detector.IsAvailable(5400));
    }

    [Fact]
    public void The_window_evicts_the_oldest_intervals()
    {
        var detector = new PhiAccrualFailureDetector(new PhiAccrualOptions { MaxSampleSize = 3 });
        long t = 0;
        detector.Heartbeat(t);
        foreach (var interval in new long[] { 1000, 1100, 1200, 1300 })
            Assert.Equal(HeartbeatOutcome.Accepted, detector.Heartbeat(t += interval));
        Span<long> intervals = stackalloc long[3];
        Assert.Equal(3, detector.CopyIntervals(intervals));
        Assert.Equal(new long[] { 1100, 1200, 1300 }, intervals.ToArray());
        Assert.Equal(1200.0, detector.IntervalMeanMs);
        Assert.Equal(3600, detector.IntervalSumMs);
        Assert.Equal((Int128)(1100 * 1100 + 1200 * 1200 + 1300 * 1300), detector.IntervalSumOfSquaresMs2);
        detector.AssertInvariants();
    }

    [Fact]
    public void Exp_overflow_is_guarded_for_very_early_and_very_late_arrivals()
    {
        // The literal formula overflows: a silence of 1e9 ms gives exp(-huge) = 0 and phi = +infinity.
        Assert.True(double.IsPositiveInfinity(TestSupport.AkkaPhi(1e9, 1000, 100)));
        var late = PhiAccrualFailureDetector.ComputePhi(1e9, 1000, 100);
        Assert.True(double.IsFinite(late) && late > 1e6, $"late phi {late}");
        // Very early: y hugely negative, exp(+huge) in the literal formula; ours is 0, never NaN.
        var early = PhiAccrualFailureDetector.ComputePhi(0, 1e12, 1);
        Assert.Equal(0.0, early);
        var detector = new PhiAccrualFailureDetector(new PhiAccrualOptions { MinStdDeviationMs = 0.001, AcceptableHeartbeatPauseMs = 1L << 39 });
        TestSupport.FeedSteady(detector, 0, 1000, 50);
        var last = detector.LastHeartbeatMs!.Value;
        Assert.Equal(0.0, detector.Phi(last));
        Assert.Equal(0.0, detector.Phi(last - 1_000_000)); // even a time before the last heartbeat
        Assert.True(double.IsFinite(detector.Phi(long.MaxValue / 2)));
    }

    [Fact]
    public void Duplicate_heartbeats_at_the_same_time_are_not_recorded()
    {
        var detector = new PhiAccrualFailureDetector();
        Assert.Equal(HeartbeatOutcome.Started, detector.Heartbeat(0));
        Assert.Equal(HeartbeatOutcome.Accepted, detector.Heartbeat(1000));
        Assert.Equal(HeartbeatOutcome.AcceptedTooSoon, detector.Heartbeat(1000));
        Assert.Equal(HeartbeatOutcome.AcceptedTooSoon, detector.Heartbeat(1003));
        Assert.Equal(HeartbeatOutcome.Accepted, detector.Heartbeat(2000));
        Span<long> intervals = stackalloc long[8];
        var n = detector.CopyIntervals(intervals);
        // Measured from the last recorded arrival (1000), so the duplicate at 1003 does not shorten the next interval.
        Assert.Equal(new long[] { 750, 1250, 1000, 1000 }, intervals[..n].ToArray());
        Assert.Equal(2000, detector.LastHeartbeatMs);
        detector.AssertInvariants();
    }

    [Fact]
    public void Scylla_2861_duplicate_deliveries_do_not_shrink_the_mean_or_the_detection_time()
    {
        // Every heartbeat delivered three times within a few ms (several gossip ACKs carrying the same update).
        var clean = new PhiAccrualFailureDetector();
        var duplicated = new PhiAccrualFailureDetector();
        var akkaExact = new PhiAccrualFailureDetector(new PhiAccrualOptions { MinIntervalMs = 0, MinIntervalFractionOfMean = 0 });
        for (var i = 0; i < 200; i++)
        {
            long t = i * 1000;
            clean.Heartbeat(t);
            foreach (var delay in new long[] { 0, 2, 5 })
            {
                duplicated.Heartbeat(t + delay);
                akkaExact.Heartbeat(t + delay);
            }
        }
        Assert.InRange(duplicated.IntervalMeanMs, 995, 1005);
        Assert.Equal(clean.IntervalMeanMs, duplicated.IntervalMeanMs, 0);
        var cleanSilence = TestSupport.SilenceUntilPhi(clean, 8);
        var duplicatedSilence = TestSupport.SilenceUntilPhi(duplicated, 8);
        Assert.InRange(duplicatedSilence - cleanSilence, -20, 20);
        // Without the guard (Akka exact) the mean collapses to about a third: the failure the guard prevents.
        Assert.InRange(akkaExact.IntervalMeanMs, 300, 400);
        duplicated.AssertInvariants();
    }

    [Fact]
    public void Replayed_sequence_numbers_are_ignored_entirely()
    {
        var detector = new PhiAccrualFailureDetector();
        Assert.Equal(HeartbeatOutcome.Started, detector.Heartbeat(0, sequence: 1));
        Assert.Equal(HeartbeatOutcome.Accepted, detector.Heartbeat(1000, sequence: 2));
        Assert.Equal(HeartbeatOutcome.IgnoredStaleSequence, detector.Heartbeat(1900, sequence: 2));
        Assert.Equal(HeartbeatOutcome.IgnoredStaleSequence, detector.Heartbeat(1950, sequence: 1));
        Assert.Equal(1000, detector.LastHeartbeatMs); // a replay is no proof of life
        Assert.Equal(HeartbeatOutcome.Accepted, detector.Heartbeat(2000, sequence: 3));
        Assert.Equal(4, detector.IntervalCount);
    }

    [Fact]
    public void Arrival_times_going_backwards_are_ignored()
    {
        var detector = new PhiAccrualFailureDetector();
        detector.Heartbeat(5000);
        Assert.Equal(HeartbeatOutcome.IgnoredTimeWentBackwards, detector.Heartbeat(4000));
        Assert.Equal(5000, detector.LastHeartbeatMs);
        Assert.Equal(2, detector.IntervalCount);
        Assert.False(HeartbeatOutcome.IgnoredTimeWentBackwards.IsAccepted());
        Assert.True(HeartbeatOutcome.AcceptedTooSoon.IsAccepted());
    }

    [Fact]
    public void The_first_interval_after_unavailability_is_not_recorded()
    {
        var detector = new PhiAccrualFailureDetector();
        var last = TestSupport.FeedSteady(detector, 0, 1000, 10);
        var count = detector.IntervalCount;
        var mean = detector.IntervalMeanMs;
        Assert.False(detector.IsAvailable(last + 30_000));
        Assert.Equal(HeartbeatOutcome.AcceptedAfterSilence, detector.Heartbeat(last + 30_000));
        Assert.Equal(count, detector.IntervalCount);
        Assert.Equal(mean, detector.IntervalMeanMs);
        Assert.True(detector.IsAvailable(last + 31_000));
        Assert.Equal(HeartbeatOutcome.Accepted, detector.Heartbeat(last + 31_000));
    }

    [Fact]
    public void A_sender_that_speeds_up_is_never_convicted_and_the_statistics_follow_it()
    {
        var detector = new PhiAccrualFailureDetector();
        var t = TestSupport.FeedSteady(detector, 0, 1000, 20);
        for (var i = 0; i < 2000; i++)
        {
            t += 100;
            Assert.True(detector.IsAvailable(t));
            Assert.True(detector.Heartbeat(t).IsAccepted());
        }
        Assert.InRange(detector.IntervalMeanMs, 99, 101);
    }

    [Fact]
    public void Acceptable_pause_and_timeout_multiplier_stretch_the_tolerated_silence()
    {
        var detector = new PhiAccrualFailureDetector();
        var last = TestSupport.FeedSteady(detector, 0, 1000, 30);
        Assert.True(detector.Phi(last + 6000) >= 8);
        Assert.True(detector.Suspicion(last + 6000, timeoutMultiplier: 2) < 1); // pause 6000: mean' 7000
        Assert.Throws<ArgumentOutOfRangeException>(() => detector.Suspicion(last, 0.5));
        Assert.Throws<ArgumentOutOfRangeException>(() => detector.Suspicion(last, double.NaN));
    }

    [Fact]
    public void Reset_forgets_the_peer()
    {
        var detector = new PhiAccrualFailureDetector();
        TestSupport.FeedSteady(detector, 0, 1000, 10);
        detector.Heartbeat(20_000, sequence: 9);
        detector.Reset();
        Assert.False(detector.IsMonitoring);
        Assert.Equal(0, detector.IntervalCount);
        Assert.Equal(0.0, detector.Phi(1_000_000));
        Assert.Equal(HeartbeatOutcome.Started, detector.Heartbeat(1_000_000, sequence: 1));
        detector.AssertInvariants();
    }

    [Fact]
    public void Invariant_check_detects_a_corrupted_history()
    {
        var history = new HeartbeatHistory(4);
        history.Add(10);
        history.AssertInvariants();
        // Corrupt the ring behind the running sums' back, as a bug would.
        var field = typeof(HeartbeatHistory).GetField("_intervalsMs", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;
        ((long[])field.GetValue(history)!)[0] = 11;
        Assert.Throws<InvariantViolationException>(history.AssertInvariants);
    }
}
