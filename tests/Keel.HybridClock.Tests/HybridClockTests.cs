using Keel.Core;

namespace Keel.HybridClock.Tests;

public sealed class HybridClockTests
{
    private const long Wall = Generators.BaseWallMs;

    private static HybridLogicalClock NewClock(long maxOffsetMs = 500) =>
        new(new HybridClockOptions { MaxOffsetMs = maxOffsetMs, PersistUpperBound = false });

    private static HybridTimestamp Ts(long physicalMs, int logical) => new(physicalMs, logical);

    [Fact]
    public void Now_follows_the_wall_clock_with_logical_zero_when_it_advances()
    {
        var clock = NewClock();
        Assert.Equal(Ts(Wall, 0), clock.Now(Wall));
        Assert.Equal(Ts(Wall + 1, 0), clock.Now(Wall + 1));
        Assert.Equal(Ts(Wall + 50, 0), clock.Now(Wall + 50));
        Assert.Equal(Ts(Wall + 50, 0), clock.LastIssued);
        clock.AssertInvariants();
    }

    [Fact]
    public void Now_increments_the_logical_part_within_one_millisecond()
    {
        var clock = NewClock();
        Assert.Equal(Ts(Wall, 0), clock.Now(Wall));
        Assert.Equal(Ts(Wall, 1), clock.Now(Wall));
        Assert.Equal(Ts(Wall, 2), clock.Now(Wall));
        Assert.Equal(Ts(Wall + 1, 0), clock.Now(Wall + 1));
        clock.AssertInvariants();
    }

    [Fact]
    public void Backward_wall_step_keeps_timestamps_increasing_and_is_counted()
    {
        var clock = NewClock();
        clock.Now(Wall);
        Assert.Equal(Ts(Wall, 1), clock.Now(Wall - 1000)); // NTP stepped the clock back one second
        Assert.Equal(Ts(Wall, 2), clock.Now(Wall - 999));
        Assert.Equal(Ts(Wall, 3), clock.Now(Wall - 5000)); // a second, larger step
        Assert.Equal(Ts(Wall + 1, 0), clock.Now(Wall + 1)); // the wall caught up again

        Assert.Equal(2, clock.BackwardJumpCount);
        Assert.Equal(4001, clock.LargestBackwardJumpMs);
        Assert.Equal(Wall + 1, clock.MaxWallMs);
        clock.AssertInvariants();
    }

    [Fact]
    public void A_repeated_leap_second_is_a_backward_step_like_any_other()
    {
        // A kernel that steps for a leap second replays 23:59:59: the wall goes back 1000 ms at midnight.
        var midnight = new DateTimeOffset(2017, 1, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds();
        var clock = NewClock();
        var before = clock.Now(midnight);
        var during = clock.Now(midnight - 1000 + 500);
        Assert.True(during > before);
        Assert.Equal(midnight, during.PhysicalMs);
        Assert.Equal(1, clock.BackwardJumpCount);
        Assert.Equal(500, clock.LargestBackwardJumpMs);
    }

    [Fact]
    public void Update_with_the_wall_ahead_of_both_issues_the_wall_time()
    {
        var clock = NewClock();
        clock.Now(Wall);
        Assert.Equal(Ts(Wall + 10, 0), clock.Update(Ts(Wall + 5, 7), Wall + 10));
    }

    [Fact]
    public void Update_with_a_remote_ahead_adopts_its_physical_part_and_counts_on()
    {
        var clock = NewClock();
        clock.Now(Wall);
        Assert.Equal(Ts(Wall + 200, 8), clock.Update(Ts(Wall + 200, 7), Wall + 1));
        Assert.Equal(Ts(Wall + 200, 9), clock.Now(Wall + 2)); // local events stay above the adopted time
        Assert.Equal(Ts(Wall + 201, 0), clock.Now(Wall + 201));
        Assert.Equal(199, clock.LargestAcceptedRemoteAheadMs);
        clock.AssertInvariants();
    }

    [Fact]
    public void Update_with_the_local_clock_ahead_counts_on_from_local()
    {
        var clock = NewClock();
        clock.Update(Ts(Wall + 100, 3), Wall); // local is now (Wall+100, 4)
        Assert.Equal(Ts(Wall + 100, 5), clock.Update(Ts(Wall + 50, 40), Wall + 1));
    }

    [Fact]
    public void Update_with_equal_physical_parts_takes_the_larger_logical_plus_one()
    {
        var clock = NewClock();
        clock.Update(Ts(Wall + 100, 3), Wall); // local (Wall+100, 4)
        Assert.Equal(Ts(Wall + 100, 41), clock.Update(Ts(Wall + 100, 40), Wall + 1));
        Assert.Equal(Ts(Wall + 100, 42), clock.Update(Ts(Wall + 100, 2), Wall + 2));
    }

    [Fact]
    public void A_remote_exactly_max_offset_ahead_is_accepted()
    {
        var clock = NewClock(maxOffsetMs: 500);
        Assert.Equal(Ts(Wall + 500, 1), clock.Update(Ts(Wall + 500, 0), Wall));
        Assert.Equal(0, clock.RejectedRemoteCount);
        Assert.Equal(500, clock.LargestAcceptedRemoteAheadMs);
    }

    [Fact]
    public void A_remote_beyond_max_offset_is_rejected_with_the_exact_error_and_not_adopted()
    {
        var clock = NewClock(maxOffsetMs: 500);
        var before = clock.Now(Wall);
        var remote = new HybridTimestamp(1_795_688_130_123, 4);
        var localWall = 1_795_688_130_123 - 501;

        var error = Assert.Throws<ClockOffsetException>(() => clock.Update(remote, localWall));

        Assert.Equal(remote, error.Remote);
        Assert.Equal(localWall, error.LocalWallMs);
        Assert.Equal(501, error.OffsetMs);
        Assert.Equal(500, error.MaxOffsetMs);
        Assert.Equal(
            "remote wall time is too far ahead (501 ms, max offset 500 ms) to be trustworthy: remote timestamp " +
            "2026-11-26T10:15:30.123Z+0004, local wall time 2026-11-26T10:15:29.622Z+0000",
            error.Message);
        Assert.Equal(1, clock.RejectedRemoteCount);
        Assert.Equal(before, clock.LastIssued);
        Assert.Equal(localWall + 1, clock.Now(localWall + 1).PhysicalMs); // the bad time never leaked in
        clock.AssertInvariants();
    }

    [Fact]
    public void TryUpdate_rejects_without_throwing()
    {
        var clock = NewClock(maxOffsetMs: 100);
        Assert.False(clock.TryUpdate(Ts(Wall + 101, 0), Wall, out var rejected));
        Assert.Equal(default, rejected);
        Assert.False(clock.TryUpdate(HybridTimestamp.MaxValue, Wall, out _));
        Assert.Equal(2, clock.RejectedRemoteCount);

        Assert.True(clock.TryUpdate(Ts(Wall + 100, 0), Wall, out var accepted));
        Assert.Equal(Ts(Wall + 100, 1), accepted);
        Assert.Equal(2, clock.RejectedRemoteCount);
        clock.AssertInvariants();
    }

    [Fact]
    public void A_remote_far_in_the_past_is_fine()
    {
        var clock = NewClock();
        Assert.Equal(Ts(Wall, 0), clock.Update(Ts(0, 0), Wall));
    }

    [Fact]
    public void Logical_overflow_moves_the_physical_part_forward_instead_of_wrapping()
    {
        var clock = NewClock();
        var saturated = clock.Update(Ts(Wall + 10, HybridTimestamp.MaxLogical - 1), Wall);
        Assert.Equal(Ts(Wall + 10, HybridTimestamp.MaxLogical), saturated);
        Assert.Equal(0, clock.LogicalOverflowCount);

        var next = clock.Now(Wall);
        Assert.Equal(Ts(Wall + 11, 0), next);
        Assert.True(next > saturated);
        Assert.Equal(1, clock.LogicalOverflowCount);
        Assert.Equal(Ts(Wall + 11, 1), clock.Now(Wall));
        clock.AssertInvariants();
    }

    [Fact]
    public void Receiving_a_saturated_remote_overflows_into_the_next_millisecond()
    {
        var clock = NewClock();
        Assert.Equal(Ts(Wall + 1, 0), clock.Update(Ts(Wall, HybridTimestamp.MaxLogical), Wall));
        Assert.Equal(1, clock.LogicalOverflowCount);
        clock.AssertInvariants();
    }

    [Fact]
    public void Sixty_five_thousand_events_in_one_millisecond_overflow_once_and_stay_ordered()
    {
        var clock = NewClock();
        var previous = clock.Now(Wall);
        for (var i = 0; i < HybridTimestamp.MaxLogical + 10; i++)
        {
            var ts = clock.Now(Wall);
            Assert.True(ts > previous);
            previous = ts;
        }
        Assert.Equal(Ts(Wall + 1, 9), previous);
        Assert.Equal(1, clock.LogicalOverflowCount);
        clock.AssertInvariants();
    }

    [Fact]
    public void An_exhausted_clock_throws_instead_of_wrapping()
    {
        var clock = NewClock();
        var max = HybridTimestamp.MaxPhysicalMs;
        Assert.Equal(HybridTimestamp.MaxValue, clock.Update(Ts(max, HybridTimestamp.MaxLogical - 1), max));
        var error = Assert.Throws<InvalidOperationException>(() => clock.Now(max));
        Assert.Contains("exhausted", error.Message);
        Assert.Equal(HybridTimestamp.MaxValue, clock.LastIssued);
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(long.MinValue)]
    [InlineData(1L << 48)]
    public void Wall_readings_outside_the_48_bit_range_are_rejected(long wallMs)
    {
        var clock = NewClock();
        Assert.Throws<ArgumentOutOfRangeException>(() => clock.Now(wallMs));
        Assert.Throws<ArgumentOutOfRangeException>(() => clock.Update(Ts(0, 0), wallMs));
        Assert.Throws<ArgumentOutOfRangeException>(() => clock.Interval(wallMs));
        Assert.Throws<ArgumentOutOfRangeException>(() => clock.CommitWaitMs(Ts(0, 0), wallMs));
        Assert.Equal(HybridTimestamp.MinValue, clock.LastIssued);
    }

    [Fact]
    public void Defaults_follow_cockroachdb_and_uncertainty_follows_max_offset()
    {
        var defaults = HybridClockOptions.Default;
        Assert.Equal(500, defaults.MaxOffsetMs);
        Assert.Equal(500, defaults.MaxUncertaintyMs);
        Assert.True(defaults.PersistUpperBound);
        Assert.Equal(1000, defaults.UpperBoundLeadMs);
        Assert.Equal(250, new HybridClockOptions { MaxOffsetMs = 250 }.MaxUncertaintyMs);
        Assert.Equal(7, new HybridClockOptions { MaxOffsetMs = 250, MaxUncertaintyMs = 7 }.MaxUncertaintyMs);
        Assert.Same(defaults, new HybridLogicalClock().Options);
    }

    [Theory]
    [InlineData(0, 10, 1000, "MaxOffsetMs")]
    [InlineData(-5, 10, 1000, "MaxOffsetMs")]
    [InlineData(500, -1, 1000, "MaxUncertaintyMs")]
    [InlineData(500, 10, 0, "UpperBoundLeadMs")]
    public void Invalid_options_are_rejected(long maxOffsetMs, long maxUncertaintyMs, long leadMs, string parameter)
    {
        var options = new HybridClockOptions { MaxOffsetMs = maxOffsetMs, MaxUncertaintyMs = maxUncertaintyMs, UpperBoundLeadMs = leadMs };
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new HybridLogicalClock(options));
        Assert.Equal(parameter, error.ParamName);
    }

    [Fact]
    public void AssertInvariants_passes_on_a_fresh_clock() => new HybridLogicalClock().AssertInvariants();

    [Fact]
    public void Invariant_violation_type_is_the_core_one()
    {
        // The clock's public API cannot reach a broken state; this pins the exception type the invariants use.
        Assert.Throws<InvariantViolationException>(() => Invariant.Check(false, "probe"));
    }
}
