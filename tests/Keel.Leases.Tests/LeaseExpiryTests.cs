using Keel.Core;

namespace Keel.Leases.Tests;

public class LeaseExpiryTests
{
    private static LeaseTable Primary(LeaseTableOptions? options = null)
    {
        var table = new LeaseTable(options);
        table.Promote(0);
        return table;
    }

    [Fact]
    public void A_non_primary_expires_nothing()
    {
        var table = new LeaseTable();
        var id = table.Grant(0, 2, 0).LeaseId;
        Assert.Empty(table.ExpireDue(1_000_000, 1_000));
        Assert.Empty(table.PeekExpired(1_000_000, 1_000));
        Assert.Empty(table.Checkpoint(1_000_000));
        Assert.True(table.Contains(id));
    }

    [Fact]
    public void A_primary_counts_the_ttl_from_its_own_time_at_apply_when_the_record_is_older()
    {
        // The grant's committed time (1,000) lags the primary's time when it applied (1,400): the holder gets the full
        // TTL from 1,400, and the replicated record is unchanged.
        var table = Primary();
        var id = table.Grant(0, 5, 1_000).LeaseId;
        table.HoldFromPrimaryTime(id, 1_400);
        Assert.Empty(table.ExpireDue(6_399, 10));
        Assert.Equal(id, Assert.Single(table.ExpireDue(6_400, 10)).LeaseId);
        table.AssertInvariants();

        // Never earlier than it was.
        var later = table.Grant(0, 5, 7_000).LeaseId;
        table.HoldFromPrimaryTime(later, 6_500);
        Assert.Empty(table.ExpireDue(11_999, 10));
        Assert.Single(table.ExpireDue(12_000, 10));
        table.AssertInvariants();
    }

    [Fact]
    public void A_lease_expires_at_its_deadline_and_not_a_millisecond_before()
    {
        var table = Primary();
        var id = table.Grant(0, 5, 1_000).LeaseId;
        table.Attach(id, "eph"u8);
        table.Locks.Acquire("db", id);
        Assert.Empty(table.ExpireDue(5_999, 10));
        var expired = Assert.Single(table.ExpireDue(6_000, 10));
        Assert.Equal(id, expired.LeaseId);
        Assert.Equal(6_000, expired.DeadlineMs);
        Assert.True(Assert.Single(expired.Keys).Span.SequenceEqual("eph"u8));
        Assert.Equal(["db"], expired.ReleasedResources);
        Assert.False(table.Contains(id));
        Assert.Equal(0, table.Locks.Count);
        table.AssertInvariants();
    }

    [Fact]
    public void ExpireDue_is_bounded_per_call_and_ordered_by_deadline_then_id()
    {
        var table = Primary();
        table.GrantMs(30, 3_000, 0);
        table.GrantMs(10, 3_000, 0);
        table.GrantMs(20, 2_000, 0);
        table.GrantMs(40, 4_000, 0);
        table.GrantMs(50, 9_000, 0);
        var first = table.ExpireDue(5_000, 2);
        var second = table.ExpireDue(5_000, 2);
        var third = table.ExpireDue(5_000, 2);
        Assert.Equal([20L, 10L], first.Select(e => e.LeaseId));
        Assert.Equal([30L, 40L], second.Select(e => e.LeaseId));
        Assert.Empty(third);
        Assert.Empty(table.ExpireDue(5_000, 0));
        Assert.Equal([50L], table.Leases());
        Assert.Throws<ArgumentOutOfRangeException>(() => table.ExpireDue(5_000, -1));
    }

    [Fact]
    public void PeekExpired_reports_without_removing_and_Revoke_removes()
    {
        var table = Primary();
        table.GrantMs(1, 2_000, 0);
        table.GrantMs(2, 2_000, 0);
        table.Locks.Acquire("r", 2);
        var peeked = table.PeekExpired(2_000, 10);
        Assert.Equal([1L, 2L], peeked.Select(e => e.LeaseId));
        Assert.Equal(["r"], peeked[1].ReleasedResources);
        Assert.Equal(2, table.Count);
        Assert.Equal([1L, 2L], table.PeekExpired(2_000, 10).Select(e => e.LeaseId));
        Assert.Equal([1L], table.PeekExpired(2_000, 1).Select(e => e.LeaseId));
        table.AssertInvariants();
        table.Revoke(1);
        Assert.Equal([2L], table.PeekExpired(2_000, 10).Select(e => e.LeaseId));
    }

    [Fact]
    public void A_keep_alive_moves_the_lease_back_in_the_expiry_order()
    {
        var table = Primary();
        table.GrantMs(1, 2_000, 0);
        table.GrantMs(2, 3_000, 0);
        table.KeepAlive(1, 1_500);
        Assert.Equal([2L], table.ExpireDue(3_000, 10).Select(e => e.LeaseId));
        Assert.Equal([1L], table.ExpireDue(3_500, 10).Select(e => e.LeaseId));
    }

    [Fact]
    public void Demote_stops_expiry_at_once_so_a_stale_leader_revokes_nothing()
    {
        var table = Primary();
        table.GrantMs(1, 2_000, 0);
        table.Demote();
        Assert.False(table.IsPrimary);
        Assert.Empty(table.ExpireDue(100_000, 10));
        Assert.True(table.Contains(1));
    }

    [Fact]
    public void Promotion_continues_from_the_checkpointed_remaining_TTL_instead_of_resetting_it()
    {
        // Leader A grants a 60 s lease at t=0 and checkpoints at t=50 s (10 s left). Follower B applies both.
        var leader = Primary();
        var follower = new LeaseTable();
        leader.Grant(1, 60, 0);
        follower.Grant(1, 60, 0);
        var checkpoint = leader.Checkpoint(50_000);
        Assert.Equal(new LeaseCheckpoint(1, 0, 50_000, 10_000), Assert.Single(checkpoint));
        Assert.Equal(1, leader.ApplyCheckpoint(checkpoint, 50_000));
        Assert.Equal(1, follower.ApplyCheckpoint(checkpoint, 50_000));

        // A dies, B wins the election at t=52 s: deadline = 52 s + 1 s extension + 10 s, not 52 s + 60 s (etcd #9395).
        follower.Promote(52_000);
        Assert.Equal(11_000, follower.TimeToLive(1, 52_000).RemainingMs);
        Assert.Empty(follower.ExpireDue(62_999, 10));
        Assert.Single(follower.ExpireDue(63_000, 10));
    }

    [Fact]
    public void Promotion_never_brings_a_deadline_forward()
    {
        var table = new LeaseTable();
        table.Grant(1, 10, 0);
        table.Promote(9_000); // late promotion: 9 s + 1 s + 10 s, later than the 10 s the grant promised
        Assert.Equal(11_000, table.TimeToLive(1, 9_000).RemainingMs);
        table.Demote();
        table.Promote(9_500); // re-promotion: max(20 s, 9.5 s + 1 s + 10 s)
        Assert.Equal(11_000, table.TimeToLive(1, 9_500).RemainingMs);
        table.Promote(9_600); // already primary: no second extension
        Assert.Equal(10_900, table.TimeToLive(1, 9_600).RemainingMs);
        table.Demote();
        table.ApplyCheckpoint([new LeaseCheckpoint(1, 0, 9_600, 10_900)], 9_600);
        table.Promote(30_000); // the checkpoint's deadline (20.5 s) has passed, but the new primary counts from now
        Assert.Equal(11_900, table.TimeToLive(1, 30_000).RemainingMs);
        table.AssertInvariants();
    }

    [Fact]
    public void A_checkpoint_measured_before_a_keep_alive_is_ignored()
    {
        var leader = Primary();
        leader.Grant(1, 10, 0);
        var stale = leader.Checkpoint(9_000); // 1 s left
        leader.KeepAlive(1, 9_500);            // renewed: 10 s from 9.5 s
        Assert.Equal(0, leader.ApplyCheckpoint(stale, 9_600));
        var follower = new LeaseTable();
        follower.Grant(1, 10, 0);
        follower.KeepAlive(1, 9_500);
        Assert.Equal(0, follower.ApplyCheckpoint(stale, 9_600));
        follower.Promote(10_000);
        Assert.Equal(11_000, follower.TimeToLive(1, 10_000).RemainingMs);
    }

    [Fact]
    public void A_checkpoint_never_brings_the_replicated_deadline_forward()
    {
        var table = new LeaseTable();
        table.Grant(1, 10, 0);
        Assert.Equal(0, table.ApplyCheckpoint([new LeaseCheckpoint(1, 0, 5_000, 1_000)], 5_000));
        Assert.Equal(5_000, table.TimeToLive(1, 5_000).RemainingMs);
        Assert.Equal(0, table.ApplyCheckpoint([new LeaseCheckpoint(9, 0, 5_000, 1_000)], 5_000)); // unknown lease
        Assert.Throws<ArgumentException>(() => table.ApplyCheckpoint([new LeaseCheckpoint(1, 0, 5_000, -1)], 5_000));
        Assert.Throws<ArgumentException>(() => table.ApplyCheckpoint([new LeaseCheckpoint(1, 0, 6_000, 1)], 5_000));
    }

    [Fact]
    public void After_promotion_and_a_checkpoint_keep_alives_are_accepted_until_the_extended_deadline()
    {
        var table = new LeaseTable();
        table.Grant(1, 10, 0);
        table.Promote(9_000); // deadline 20 s, replicated deadline still 10 s
        Assert.Equal(LeaseStatus.NotFound, table.KeepAlive(1, 10_000).Status); // conservative until checkpointed
        var other = new LeaseTable();
        other.Grant(1, 10, 0);
        other.Promote(9_000);
        other.ApplyCheckpoint(other.Checkpoint(9_000), 9_000);
        Assert.True(other.KeepAlive(1, 10_000).IsSuccess);
        other.AssertInvariants();
    }

    [Fact]
    public void A_paused_primary_forgives_the_pause_instead_of_revoking_everything()
    {
        var table = Primary(new LeaseTableOptions { LeaderStallThresholdMs = 2_000 });
        table.GrantMs(1, 3_000, 0);
        Assert.Empty(table.ExpireDue(500, 10));
        Assert.Empty(table.ExpireDue(1_000, 10));
        Assert.Empty(table.ExpireDue(11_000, 10)); // 10 s without a check: the primary itself was paused
        Assert.Equal(1, table.StallsDetected);
        Assert.Equal(2_000, table.TimeToLive(1, 11_000).RemainingMs); // the 2 s it had left at the last check
        Assert.Single(table.ExpireDue(13_000, 10));
        Assert.Equal(1, table.StallsDetected);
    }

    [Fact]
    public void Without_stall_forgiveness_a_long_gap_expires_the_lease()
    {
        var table = Primary();
        table.GrantMs(1, 3_000, 0);
        Assert.Single(table.ExpireDue(11_000, 10));
        Assert.Equal(0, table.StallsDetected);
    }

    [Fact]
    public void Saturating_deadlines_do_not_overflow()
    {
        var table = Primary(new LeaseTableOptions { LeaderStallThresholdMs = 1 });
        table.Grant(1, LeaseTableOptions.EtcdMaxTtlSeconds, long.MaxValue - 10);
        Assert.Equal(10, table.TimeToLive(1, long.MaxValue - 10).RemainingMs);
        Assert.Empty(table.ExpireDue(long.MaxValue - 1, 10));
        Assert.Single(table.ExpireDue(long.MaxValue, 10));
        _ = Assert.Throws<InvariantViolationException>(() => table.ExpireDue(0, 1));
    }
}
