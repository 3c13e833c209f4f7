using Keel.Heartbeat;

namespace Keel.Heartbeat.Tests;

public class LocalHealthTests
{
    [Fact]
    public void Late_ticks_raise_the_score_up_to_seven_and_timely_ones_lower_it()
    {
        var local = new LocalHealth();
        long t = 0;
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(LocalTickOutcome.Late, local.OnTick(t + 1000, t + 1500));
            t += 1500;
            local.AssertInvariants();
        }
        Assert.Equal(7, local.Score);
        Assert.Equal(8, local.TimeoutMultiplier);
        Assert.Equal(4000, local.ScaleTimeout(500));
        for (var i = 0; i < 3; i++) Assert.Equal(LocalTickOutcome.Timely, local.OnTick(t += 1000, t + 10));
        Assert.Equal(4, local.Score);
        for (var i = 0; i < 10; i++) local.OnTimelyRound();
        Assert.Equal(0, local.Score);
        Assert.Equal(1, local.TimeoutMultiplier);
        local.OnMissedDeadline();
        Assert.Equal(1, local.Score);
    }

    [Fact]
    public void A_very_late_tick_is_a_pause_that_is_remembered()
    {
        var local = new LocalHealth();
        Assert.Equal(LocalTickOutcome.Paused, local.OnTick(scheduledMs: 5000, nowMs: 12_000));
        Assert.Equal(1, local.PausesDetected);
        Assert.Equal(7000, local.LastPauseMs);
        Assert.Equal(12_000, local.LastPauseEndMs);
        Assert.Equal(7000, local.PausedMsWithin(0, 20_000));
        Assert.Equal(2000, local.PausedMsWithin(10_000, 20_000));
        Assert.Equal(1000, local.PausedMsWithin(4000, 6000));
        Assert.Equal(0, local.PausedMsWithin(12_000, 20_000));
        Assert.Equal(1, local.Score);
    }

    [Fact]
    public void The_same_pause_noticed_by_two_timers_is_excused_once()
    {
        var local = new LocalHealth();
        local.OnTick(scheduledMs: 5000, nowMs: 12_000);
        local.OnTick(scheduledMs: 4000, nowMs: 12_001); // another timer, due earlier, noticing the same freeze
        local.AssertInvariants();
        Assert.Equal(8001, local.PausedMsWithin(0, 20_000));
        local.OnTick(scheduledMs: 20_000, nowMs: 22_000);
        local.OnTick(scheduledMs: 30_000, nowMs: 32_000);
        local.OnTick(scheduledMs: 11_000, nowMs: 31_000); // bridges the last three
        local.AssertInvariants();
        Assert.Equal(28_000, local.PausedMsWithin(0, 40_000));
        Assert.Equal(28_000, local.LastPauseMs);
    }

    [Fact]
    public void Only_the_most_recent_pauses_are_remembered()
    {
        var local = new LocalHealth(new LocalHealthOptions { RememberedPauses = 2 });
        local.OnTick(1000, 3000);
        local.OnTick(10_000, 12_000);
        local.OnTick(20_000, 22_000);
        local.AssertInvariants();
        Assert.Equal(4000, local.PausedMsWithin(0, 30_000));
        Assert.Equal(0, local.PausedMsWithin(0, 5000));
    }

    [Fact]
    public void Convictions_are_held_during_the_grace_after_a_pause()
    {
        var local = new LocalHealth(new LocalHealthOptions { ConvictionGraceAfterPauseMs = 5000 });
        Assert.False(local.ConvictionsHeld(0));
        local.OnTick(1000, 10_000);
        Assert.True(local.ConvictionsHeld(10_000));
        Assert.True(local.ConvictionsHeld(14_999));
        Assert.False(local.ConvictionsHeld(15_000));
        Assert.False(new LocalHealth().ConvictionsHeld(10_000)); // default: rely on the excused silence alone
    }
}
