namespace Keel.HybridClock.Tests;

public sealed class UpperBoundTests
{
    private const long Wall = Generators.BaseWallMs;

    private static HybridTimestamp Ts(long physicalMs, int logical) => new(physicalMs, logical);

    [Fact]
    public void The_first_timestamp_asks_for_a_bound_one_lead_ahead()
    {
        var clock = new HybridLogicalClock();
        Assert.False(clock.IsUpperBoundPersistPending);

        clock.Now(Wall);

        Assert.True(clock.IsUpperBoundPersistPending);
        Assert.Equal(Wall + 1000, clock.UpperBoundMs);
        Assert.Equal(0, clock.PersistedUpperBoundMs);
        Assert.Equal(1, clock.UpperBoundRequestCount);
        clock.AssertInvariants();
    }

    [Fact]
    public void Persisting_is_needed_about_once_per_lead()
    {
        var clock = new HybridLogicalClock(new HybridClockOptions { UpperBoundLeadMs = 1000 });
        var persists = 0;
        for (var wall = Wall; wall < Wall + 10_000; wall += 7)
        {
            var ts = clock.Now(wall);
            if (clock.IsUpperBoundPersistPending)
            {
                persists++;
                clock.UpperBoundPersisted(clock.UpperBoundMs);
            }
            Assert.True(ts.PhysicalMs <= clock.PersistedUpperBoundMs); // never used above the durable bound
            clock.AssertInvariants();
        }
        Assert.InRange(persists, 10, 11);
        Assert.Equal(persists, clock.UpperBoundRequestCount);
    }

    [Fact]
    public void Acknowledging_stays_pending_until_the_requested_bound_is_durable()
    {
        var clock = new HybridLogicalClock();
        clock.Now(Wall);
        clock.UpperBoundPersisted(Wall + 10); // an older, smaller write completing late
        Assert.True(clock.IsUpperBoundPersistPending);
        clock.UpperBoundPersisted(Wall + 1000);
        Assert.False(clock.IsUpperBoundPersistPending);
        clock.UpperBoundPersisted(Wall + 10); // stale acknowledgements never lower anything
        Assert.Equal(Wall + 1000, clock.PersistedUpperBoundMs);
        Assert.Equal(Wall + 1000, clock.UpperBoundMs);
    }

    [Fact]
    public void Persisting_ahead_in_the_background_keeps_the_hot_path_free()
    {
        var clock = new HybridLogicalClock();
        clock.UpperBoundPersisted(Wall + 1000);
        for (var wall = Wall; wall < Wall + 5000; wall += 10)
        {
            if ((wall - Wall) % 500 == 0) clock.UpperBoundPersisted(wall + 1000); // driver's periodic refresh
            clock.Now(wall);
            Assert.False(clock.IsUpperBoundPersistPending);
        }
        Assert.Equal(0, clock.UpperBoundRequestCount);
    }

    [Fact]
    public void An_adopted_remote_also_raises_the_bound()
    {
        var clock = new HybridLogicalClock();
        clock.Now(Wall);
        clock.UpperBoundPersisted(clock.UpperBoundMs);
        var ts = clock.Update(Ts(Wall + 1200, 0), Wall + 800);
        Assert.True(clock.IsUpperBoundPersistPending);
        Assert.Equal(ts.PhysicalMs + 1000, clock.UpperBoundMs);
    }

    [Fact]
    public void Restore_never_issues_at_or_below_anything_issued_before_the_restart()
    {
        var before = new HybridLogicalClock();
        HybridTimestamp lastBefore = default;
        for (var i = 0; i < 100; i++)
        {
            lastBefore = before.Now(Wall + i * 3);
            if (before.IsUpperBoundPersistPending) before.UpperBoundPersisted(before.UpperBoundMs);
        }
        var persisted = before.PersistedUpperBoundMs;

        // The machine restarts and NTP has stepped the wall clock back ten seconds meanwhile.
        var after = HybridLogicalClock.Restore(null, persisted);
        after.AssertInvariants();
        var first = after.Now(Wall - 10_000);

        Assert.True(first > lastBefore);
        Assert.Equal(Ts(persisted + 1, 0), first);
        Assert.Equal(0, after.LogicalOverflowCount); // stepping past the restored fence is not an overflow
        Assert.True(after.Now(Wall - 9_999) > first);
        Assert.Equal(persisted, after.RestoredUpperBoundMs);
        after.AssertInvariants();
    }

    [Fact]
    public void A_restored_clock_asks_to_persist_a_new_bound_before_its_first_timestamp_is_used()
    {
        var clock = HybridLogicalClock.Restore(null, Wall);
        Assert.False(clock.IsUpperBoundPersistPending);
        clock.Now(Wall - 50);
        Assert.True(clock.IsUpperBoundPersistPending);
        Assert.Equal(Wall + 1 + 1000, clock.UpperBoundMs);
    }

    [Fact]
    public void RestoreWaitMs_says_how_long_to_wait_for_the_wall_to_pass_the_bound()
    {
        var clock = HybridLogicalClock.Restore(null, Wall);
        Assert.Equal(1001, clock.RestoreWaitMs(Wall - 1000));
        Assert.Equal(1, clock.RestoreWaitMs(Wall));
        Assert.Equal(0, clock.RestoreWaitMs(Wall + 1));
        Assert.Equal(Ts(Wall + 1, 0), clock.Now(Wall + 1)); // after waiting, timestamps track the wall again
        Assert.Equal(0, new HybridLogicalClock().RestoreWaitMs(0));
    }

    [Fact]
    public void A_restored_clock_whose_wall_is_already_ahead_tracks_the_wall()
    {
        var clock = HybridLogicalClock.Restore(null, Wall);
        Assert.Equal(Ts(Wall + 5000, 0), clock.Now(Wall + 5000));
    }

    [Fact]
    public void Persistence_can_be_turned_off()
    {
        var clock = new HybridLogicalClock(new HybridClockOptions { PersistUpperBound = false });
        for (var i = 0; i < 10; i++) clock.Now(Wall + i * 5000);
        Assert.False(clock.IsUpperBoundPersistPending);
        Assert.Equal(0, clock.UpperBoundRequestCount);
        clock.AssertInvariants();
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData((1L << 48) - 1)]
    public void Restore_rejects_bounds_without_room_above(long bound) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => HybridLogicalClock.Restore(null, bound));

    [Fact]
    public void Acknowledging_an_impossible_bound_is_rejected() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new HybridLogicalClock().UpperBoundPersisted(-1));

    [Fact]
    public void The_bound_is_clamped_at_the_end_of_the_range()
    {
        var clock = new HybridLogicalClock();
        var max = HybridTimestamp.MaxPhysicalMs;
        clock.Update(Ts(max - 10, 0), max - 10);
        Assert.Equal(max, clock.UpperBoundMs);
        clock.AssertInvariants();
    }
}
