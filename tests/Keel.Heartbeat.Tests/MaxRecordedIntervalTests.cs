using Keel.Heartbeat;

namespace Keel.Heartbeat.Tests;

public class MaxRecordedIntervalTests
{
    [Fact]
    public void A_pause_gap_above_the_cap_proves_life_but_stays_out_of_the_statistics()
    {
        var capped = new PhiAccrualFailureDetector(new PhiAccrualOptions { FirstHeartbeatEstimateMs = 200, MaxRecordedIntervalMs = 1_000 });
        var uncapped = new PhiAccrualFailureDetector(new PhiAccrualOptions { FirstHeartbeatEstimateMs = 200 });
        var nowMs = 0L;
        for (var i = 0; i < 100; i++, nowMs += 200)
        {
            capped.Heartbeat(nowMs);
            uncapped.Heartbeat(nowMs);
        }
        var deviationBefore = capped.IntervalStdDeviationMs;
        nowMs += 2_800; // the sender was paused for 3 s

        Assert.Equal(HeartbeatOutcome.AcceptedAfterSilence, capped.Heartbeat(nowMs));
        Assert.Equal(HeartbeatOutcome.Accepted, uncapped.Heartbeat(nowMs));
        Assert.Equal(deviationBefore, capped.IntervalStdDeviationMs);
        Assert.True(uncapped.IntervalStdDeviationMs > 250, $"the uncapped deviation absorbs the pause: {uncapped.IntervalStdDeviationMs}");
        // The silence clock restarted at the gap's end in both: the peer is alive.
        Assert.True(capped.IsAvailable(nowMs + 200));
        // A later crash is detected sooner by the capped detector, whose statistics still describe the real cadence.
        var detectedCapped = FirstUnavailable(capped, nowMs);
        var detectedUncapped = FirstUnavailable(uncapped, nowMs);
        Assert.True(detectedCapped < detectedUncapped, $"capped {detectedCapped} ms, uncapped {detectedUncapped} ms");
    }

    [Fact]
    public void A_cap_at_or_below_the_minimum_interval_is_refused()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new PhiAccrualOptions { MaxRecordedIntervalMs = 1, MinIntervalMs = 1 }.Validate());
        Assert.Equal(nameof(PhiAccrualOptions.MaxRecordedIntervalMs), error.ParamName);
    }

    private static long FirstUnavailable(PhiAccrualFailureDetector detector, long lastHeartbeatMs)
    {
        for (var t = lastHeartbeatMs; ; t += 10)
            if (!detector.IsAvailable(t)) return t - lastHeartbeatMs;
    }
}
