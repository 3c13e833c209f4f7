using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Keel.Core;
using Keel.Heartbeat;

namespace Keel.Heartbeat.Tests;

/// <summary>The laws of the detector, checked by FsCheck with fixed replay seeds so every run is identical.</summary>
public class HeartbeatPropertyTests
{
    private const string Seed = "17234047130667642678,3215559178322092721";

    // A history: gaps between arrivals, including duplicates (0), bursts and long silences.
    private static readonly Gen<long[]> Gaps =
        Gen.Frequency(
                (6, Gen.Choose(500, 1500).Select(x => (long)x)),
                (2, Gen.Choose(0, 20).Select(x => (long)x)),
                (1, Gen.Choose(1, 100_000).Select(x => (long)x)))
            .ArrayOf();

    private static readonly Gen<PhiAccrualOptions> Options =
        from sample in Gen.Choose(1, 40)
        from pause in Gen.Choose(0, 5000)
        from minSd in Gen.Choose(1, 500)
        from estimate in Gen.Choose(1, 3000)
        from guard in Gen.Elements(true, false)
        select new PhiAccrualOptions
        {
            MaxSampleSize = sample, AcceptableHeartbeatPauseMs = pause, MinStdDeviationMs = minSd, FirstHeartbeatEstimateMs = estimate,
            MinIntervalMs = guard ? 1 : 0, MinIntervalFractionOfMean = guard ? 0.1 : 0,
        };

    private static PhiAccrualFailureDetector Feed(PhiAccrualOptions options, long[] gaps)
    {
        var detector = new PhiAccrualFailureDetector(options);
        long t = 1_000_000;
        detector.Heartbeat(t);
        foreach (var gap in gaps) detector.Heartbeat(t += gap);
        return detector;
    }

    [Property(Replay = Seed, MaxTest = 300)]
    public Property Phi_is_non_decreasing_in_the_silence_for_a_fixed_history() =>
        Prop.ForAll(Options.ToArbitrary(), Gaps.ToArbitrary(), Gen.Choose(0, 200_000).Two().ToArbitrary(), (options, gaps, dts) =>
        {
            var detector = Feed(options, gaps);
            var last = detector.LastHeartbeatMs!.Value;
            var (a, b) = dts.Item1 <= dts.Item2 ? dts : (dts.Item2, dts.Item1);
            return detector.Phi(last + a) <= detector.Phi(last + b);
        });

    [Property(Replay = Seed, MaxTest = 300)]
    public Property Phi_is_finite_and_never_negative() =>
        Prop.ForAll(Options.ToArbitrary(), Gaps.ToArbitrary(), Gen.Choose(-1_000_000, int.MaxValue).ToArbitrary(), (options, gaps, dt) =>
        {
            var detector = Feed(options, gaps);
            var phi = detector.Phi(detector.LastHeartbeatMs!.Value + dt);
            return phi >= 0 && double.IsFinite(phi);
        });

    [Property(Replay = Seed, MaxTest = 300)]
    public Property Running_statistics_equal_a_naive_recomputation_over_the_window() =>
        Prop.ForAll(Options.ToArbitrary(), Gaps.ToArbitrary(), (options, gaps) =>
        {
            var detector = new PhiAccrualFailureDetector(options);
            long t = 0;
            detector.Heartbeat(t);
            var window = new long[options.MaxSampleSize];
            foreach (var gap in gaps)
            {
                detector.Heartbeat(t += gap);
                detector.AssertInvariants(); // recomputes the exact sums from the ring
                var n = detector.CopyIntervals(window);
                double sum = 0, sumOfSquares = 0;
                for (var i = 0; i < n; i++) { sum += window[i]; sumOfSquares += (double)window[i] * window[i]; }
                var mean = sum / n;
                var variance = Math.Max(0, sumOfSquares / n - mean * mean);
                if (n != Math.Min(options.MaxSampleSize, detector.IntervalCount)) return false;
                if ((long)sum != detector.IntervalSumMs) return false;
                if (Math.Abs(mean - detector.IntervalMeanMs) > 1e-9 * Math.Max(1, mean)) return false;
                var expectedSd = Math.Sqrt(variance);
                if (Math.Abs(expectedSd - detector.IntervalStdDeviationMs) > 1e-6 * Math.Max(1, expectedSd)) return false;
                var expectedPhi = PhiAccrualFailureDetector.ComputePhi(500, mean + options.AcceptableHeartbeatPauseMs, Math.Max(expectedSd, options.MinStdDeviationMs));
                if (Math.Abs(expectedPhi - detector.Phi(t + 500)) > 1e-6 * Math.Max(1, expectedPhi)) return false;
            }
            return true;
        });

    [Property(Replay = Seed, MaxTest = 300)]
    public Property Rewrite_equals_akkas_literal_formula_where_it_does_not_overflow() =>
        Prop.ForAll(Gen.Choose(-10_000, 10_000).ToArbitrary(), Gen.Choose(1, 2_000).ToArbitrary(), (dt, sd) =>
        {
            var ours = PhiAccrualFailureDetector.ComputePhi(1000 + dt, 1000, sd);
            var akka = TestSupport.AkkaPhi(1000 + dt, 1000, sd);
            return double.IsInfinity(akka) || Math.Abs(ours - akka) <= 1e-9 * Math.Max(1, akka);
        });

    [Property(Replay = Seed, MaxTest = 200)]
    public Property Monitor_invariants_hold_under_any_event_sequence() =>
        Prop.ForAll(
            Gen.Frequency(
                (5, Gen.Choose(0, 5).Select(peer => (Kind: 0, Peer: peer, Gap: 0))),
                (3, Gen.Choose(0, 3000).Select(gap => (Kind: 1, Peer: 0, Gap: gap))),
                (1, Gen.Choose(3000, 30_000).Select(gap => (Kind: 1, Peer: 0, Gap: gap))),
                (1, Gen.Choose(0, 5).Select(peer => (Kind: 2, Peer: peer, Gap: 0)))).ArrayOf().ToArbitrary(),
            events =>
            {
                var monitor = new HeartbeatMonitor(new HeartbeatMonitorOptions { LocalHealth = new LocalHealthOptions { ConvictionGraceAfterPauseMs = 2000 } });
                long t = 0;
                foreach (var (kind, peer, gap) in events)
                {
                    switch (kind)
                    {
                        case 0: monitor.OnHeartbeat((ulong)peer, t); break;
                        case 1:
                            t += gap;
                            foreach (var change in monitor.Check(t))
                                if (change.From == change.To || change.AtMs != t) return false;
                            break;
                        default: monitor.RemovePeer((ulong)peer); break;
                    }
                    monitor.AssertInvariants();
                }
                return true;
            });

    [Property(Replay = Seed, MaxTest = 200)]
    public Property Schedule_delays_are_always_within_the_jitter_bounds() =>
        Prop.ForAll(Gen.Choose(1, 100_000).ToArbitrary(), Gen.Choose(0, 50).ToArbitrary(), Gen.Choose(0, int.MaxValue).ToArbitrary(), (interval, jitterPercent, seed) =>
        {
            var jitter = jitterPercent / 100.0;
            var schedule = new HeartbeatSchedule(new HeartbeatScheduleOptions { IntervalMs = interval, JitterFraction = jitter }, new DeterministicRandom((ulong)seed), 0);
            schedule.AssertInvariants();
            if (schedule.NextSendMs < 0 || schedule.NextSendMs >= interval) return false;
            for (var i = 0; i < 50; i++)
            {
                var delay = schedule.NextDelayMs();
                if (delay < interval * (1 - jitter) - 1 || delay > interval * (1 + jitter) + 1 || delay < 1) return false;
            }
            return true;
        });
}
