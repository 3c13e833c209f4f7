using Keel.Core;
using Keel.Heartbeat;

namespace Keel.Heartbeat.Tests;

public class OptionsValidationTests
{
    public static TheoryData<PhiAccrualOptions, string> BadPhiOptions => new()
    {
        { new PhiAccrualOptions { Threshold = 0 }, nameof(PhiAccrualOptions.Threshold) },
        { new PhiAccrualOptions { Threshold = double.NaN }, nameof(PhiAccrualOptions.Threshold) },
        { new PhiAccrualOptions { Threshold = double.PositiveInfinity }, nameof(PhiAccrualOptions.Threshold) },
        { new PhiAccrualOptions { MaxSampleSize = 0 }, nameof(PhiAccrualOptions.MaxSampleSize) },
        { new PhiAccrualOptions { MaxSampleSize = HeartbeatHistory.MaxCapacity + 1 }, nameof(PhiAccrualOptions.MaxSampleSize) },
        { new PhiAccrualOptions { MinStdDeviationMs = 0 }, nameof(PhiAccrualOptions.MinStdDeviationMs) },
        { new PhiAccrualOptions { AcceptableHeartbeatPauseMs = -1 }, nameof(PhiAccrualOptions.AcceptableHeartbeatPauseMs) },
        { new PhiAccrualOptions { FirstHeartbeatEstimateMs = 0 }, nameof(PhiAccrualOptions.FirstHeartbeatEstimateMs) },
        { new PhiAccrualOptions { MinIntervalMs = -5 }, nameof(PhiAccrualOptions.MinIntervalMs) },
        { new PhiAccrualOptions { MinIntervalFractionOfMean = 1 }, nameof(PhiAccrualOptions.MinIntervalFractionOfMean) },
    };

    [Theory]
    [MemberData(nameof(BadPhiOptions))]
    public void Bad_phi_options_are_rejected_naming_the_setting(PhiAccrualOptions options, string setting)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new PhiAccrualFailureDetector(options));
        Assert.Equal(setting, error.ParamName);
        Assert.False(string.IsNullOrWhiteSpace(error.Message));
    }

    [Fact]
    public void Defaults_are_akkas()
    {
        var options = new PhiAccrualOptions();
        Assert.Equal((8.0, 1000, 100.0, 3000L, 1000L),
            (options.Threshold, options.MaxSampleSize, options.MinStdDeviationMs, options.AcceptableHeartbeatPauseMs, options.FirstHeartbeatEstimateMs));
        Assert.Equal(7, new LocalHealthOptions().MaxScore);
    }

    [Fact]
    public void Other_bad_options_are_rejected()
    {
        Assert.Equal("SuspicionsToFail", Assert.Throws<ArgumentOutOfRangeException>(() => new PeerHealth(1, new ScriptedDetector(), new HealthOptions { SuspicionsToFail = 0 })).ParamName);
        Assert.Equal("SuspectFractionOfThreshold", Assert.Throws<ArgumentOutOfRangeException>(() => new HealthOptions { SuspectFractionOfThreshold = 1.5 }.Validate()).ParamName);
        Assert.Equal("PauseThresholdMs", Assert.Throws<ArgumentOutOfRangeException>(() => new LocalHealth(new LocalHealthOptions { LateThresholdMs = 500, PauseThresholdMs = 100 })).ParamName);
        Assert.Equal("MaxScore", Assert.Throws<ArgumentOutOfRangeException>(() => new LocalHealth(new LocalHealthOptions { MaxScore = -1 })).ParamName);
        Assert.Equal("JitterFraction", Assert.Throws<ArgumentOutOfRangeException>(() => new HeartbeatSchedule(new HeartbeatScheduleOptions { JitterFraction = 0.6 }, new DeterministicRandom(1), 0)).ParamName);
        Assert.Equal("IntervalMs", Assert.Throws<ArgumentOutOfRangeException>(() => new HeartbeatSchedule(new HeartbeatScheduleOptions { IntervalMs = 0 }, new DeterministicRandom(1), 0)).ParamName);
        Assert.Equal("timeoutMs", Assert.Throws<ArgumentOutOfRangeException>(() => new FixedTimeoutFailureDetector(0)).ParamName);
        Assert.Equal("CheckIntervalMs", Assert.Throws<ArgumentOutOfRangeException>(() => new HeartbeatMonitor(new HeartbeatMonitorOptions { CheckIntervalMs = 0 })).ParamName);
        Assert.Equal("Threshold", Assert.Throws<ArgumentOutOfRangeException>(() => new HeartbeatMonitor(new HeartbeatMonitorOptions { Detector = new PhiAccrualOptions { Threshold = -1 } })).ParamName);
        Assert.Equal("intervalMs", Assert.Throws<ArgumentOutOfRangeException>(() => new HeartbeatHistory(2).Add(-1)).ParamName);
        Assert.Equal("capacity", Assert.Throws<ArgumentOutOfRangeException>(() => new HeartbeatHistory(0)).ParamName);
    }
}
