using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Keel.HybridClock.Tests;

public sealed class IntervalTests
{
    private const long Wall = Generators.BaseWallMs;

    [Fact]
    public void Interval_is_the_wall_plus_and_minus_the_uncertainty()
    {
        var clock = new HybridLogicalClock(new HybridClockOptions { MaxUncertaintyMs = 7 });
        var interval = clock.Interval(Wall);
        Assert.Equal(new HybridTimestamp(Wall - 7, 0), interval.Earliest);
        Assert.Equal(new HybridTimestamp(Wall + 7, HybridTimestamp.MaxLogical), interval.Latest);
        Assert.Equal(14, interval.WidthMs);
        Assert.True(interval.Contains(new HybridTimestamp(Wall, 3)));
        Assert.True(interval.IsCertainlyAfter(new HybridTimestamp(Wall - 8, HybridTimestamp.MaxLogical)));
        Assert.False(interval.IsCertainlyAfter(new HybridTimestamp(Wall - 7, 0)));
        Assert.True(interval.IsCertainlyBefore(new HybridTimestamp(Wall + 8, 0)));
        Assert.False(interval.IsCertainlyBefore(new HybridTimestamp(Wall + 7, HybridTimestamp.MaxLogical)));
    }

    [Fact]
    public void Interval_uses_the_max_offset_by_default_and_clamps_at_the_range_ends()
    {
        var clock = new HybridLogicalClock();
        Assert.Equal(1000, clock.Interval(Wall).WidthMs);
        Assert.Equal(HybridTimestamp.MinValue, clock.Interval(100).Earliest);
        Assert.Equal(HybridTimestamp.MaxValue, clock.Interval(HybridTimestamp.MaxPhysicalMs - 3).Latest);
    }

    [Fact]
    public void Interval_does_not_change_the_clock()
    {
        var clock = new HybridLogicalClock();
        clock.Interval(Wall);
        Assert.Equal(HybridTimestamp.MinValue, clock.LastIssued);
        Assert.Equal(long.MinValue, clock.MaxWallMs);
    }

    [Fact]
    public void Commit_wait_is_the_uncertainty_after_a_commit_taken_now()
    {
        var clock = new HybridLogicalClock(new HybridClockOptions { MaxUncertaintyMs = 7 });
        var commit = clock.Now(Wall);
        Assert.Equal(8, clock.CommitWaitMs(commit, Wall));
        Assert.Equal(0, clock.CommitWaitMs(commit, Wall + 8));
        Assert.Equal(0, clock.CommitWaitMs(commit, Wall + 100));
    }

    [Property(Replay = "(1300,2301)", MaxTest = 300)]
    public Property Commit_wait_is_the_least_wait_after_which_the_commit_is_certainly_past()
    {
        var gen =
            from uncertainty in Gen.Choose(0, 10_000)
            from commitOffset in Gen.Choose(-20_000, 20_000)
            from logical in Generators.Logical
            from wallOffset in Gen.Choose(-20_000, 20_000)
            select (Uncertainty: (long)uncertainty, Commit: new HybridTimestamp(Wall + commitOffset, logical), WallMs: Wall + wallOffset);
        return Prop.ForAll(Arb.From(gen), c =>
        {
            var clock = new HybridLogicalClock(new HybridClockOptions { MaxUncertaintyMs = c.Uncertainty });
            var wait = clock.CommitWaitMs(c.Commit, c.WallMs);
            var pastAfterWait = clock.Interval(c.WallMs + wait).IsCertainlyAfter(c.Commit);
            var notPastBefore = wait == 0 || !clock.Interval(c.WallMs + wait - 1).IsCertainlyAfter(c.Commit);
            return wait >= 0 && pastAfterWait && notPastBefore;
        });
    }
}
