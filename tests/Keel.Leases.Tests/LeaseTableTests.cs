using System.Text;
using Keel.Core;

namespace Keel.Leases.Tests;

public class LeaseTableTests
{
    private static byte[] Key(string text) => Encoding.UTF8.GetBytes(text);

    [Fact]
    public void Grant_1_second_yields_etcds_minimum_TTL_of_2_seconds()
    {
        var table = new LeaseTable();
        var grant = table.Grant(0, 1, nowMs: 0);
        Assert.Equal(LeaseStatus.Ok, grant.Status);
        Assert.Equal(2, grant.TtlSeconds);
        Assert.Equal(2_000, grant.TtlMs);
        Assert.Null(grant.Error);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void Zero_and_negative_TTLs_are_raised_to_the_minimum(long ttlSeconds)
    {
        var table = new LeaseTable();
        Assert.Equal(2, table.Grant(0, ttlSeconds, 0).TtlSeconds);
        Assert.Equal(2_000, table.GrantMs(0, ttlSeconds, 0).TtlMs);
    }

    [Fact]
    public void A_TTL_above_9e9_seconds_fails_with_etcds_text()
    {
        var table = new LeaseTable();
        Assert.True(table.Grant(0, 9_000_000_000, 0).IsSuccess);
        var tooLarge = table.Grant(0, 9_000_000_001, 0);
        Assert.Equal(LeaseStatus.TtlTooLarge, tooLarge.Status);
        Assert.Equal("etcdserver: too large lease TTL", tooLarge.Error);
        Assert.Equal(0, tooLarge.LeaseId);
        Assert.Equal(0UL, tooLarge.FencingToken);
        var ex = Assert.Throws<LeaseException>(() => tooLarge.ThrowIfFailed());
        Assert.Equal("etcdserver: too large lease TTL", ex.Message);
        Assert.Equal(LeaseStatus.TtlTooLarge, ex.Status);
        Assert.Equal(LeaseStatus.TtlTooLarge, table.GrantMs(0, 9_000_000_000_001, 0).Status);
        Assert.Equal(1, table.Count);
    }

    [Theory]
    [InlineData(1_000, 2_000)]
    [InlineData(100, 1_000)]
    [InlineData(2_000, 3_000)]
    [InlineData(1_334, 3_000)]
    public void Minimum_TTL_is_ceil_of_one_and_a_half_election_timeouts_in_whole_seconds(long electionMs, long minTtlMs)
    {
        var options = LeaseTableOptions.FromElectionTimeout(electionMs);
        Assert.Equal(minTtlMs, options.MinTtlMs);
        Assert.Equal(electionMs, options.PromotionExtensionMs);
        Assert.Equal(minTtlMs, new LeaseTable(options).Grant(0, 1, 0).TtlMs);
    }

    [Fact]
    public void Inconsistent_options_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new LeaseTable(new LeaseTableOptions { MinTtlMs = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LeaseTable(new LeaseTableOptions { MaxTtlSeconds = 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new LeaseTable(new LeaseTableOptions { PromotionExtensionMs = -1 }));
    }

    [Fact]
    public void A_duplicate_id_fails_with_etcds_text_and_changes_nothing()
    {
        var table = new LeaseTable();
        var first = table.Grant(42, 10, 0);
        var again = table.Grant(42, 20, 0);
        Assert.Equal(LeaseStatus.AlreadyExists, again.Status);
        Assert.Equal("etcdserver: lease already exists", again.Error);
        Assert.Equal(10, table.TimeToLive(42, 0).GrantedTtlSeconds);
        Assert.Equal(first.FencingToken, table.CurrentFencingToken);
    }

    [Fact]
    public void A_negative_id_is_rejected()
    {
        var table = new LeaseTable();
        var result = table.Grant(-1, 10, 0);
        Assert.Equal(LeaseStatus.InvalidLeaseId, result.Status);
        Assert.Equal(LeaseErrors.InvalidLeaseId, result.Error);
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void Id_0_allocates_from_a_counter_and_skips_ids_in_use()
    {
        var table = new LeaseTable();
        Assert.Equal(1, table.Grant(0, 10, 0).LeaseId);
        Assert.Equal(3, table.Grant(3, 10, 0).LeaseId);
        Assert.Equal(2, table.Grant(0, 10, 0).LeaseId);
        Assert.Equal(4, table.Grant(0, 10, 0).LeaseId);
        Assert.Equal(5, table.NextLeaseId);
        table.AssertInvariants();
    }

    [Fact]
    public void The_id_counter_never_wraps()
    {
        var table = SnapshotBytes.Patch(new LeaseTable(), nextLeaseId: long.MaxValue);
        Assert.Equal(long.MaxValue, table.Grant(0, 10, 0).LeaseId);
        var exhausted = table.Grant(0, 10, 0);
        Assert.Equal(LeaseStatus.LeaseIdsExhausted, exhausted.Status);
        Assert.Equal("keel: lease ids exhausted", exhausted.Error);
        Assert.True(table.Grant(7, 10, 0).IsSuccess); // explicit ids still work
        table.AssertInvariants();
    }

    [Fact]
    public void Every_grant_returns_a_strictly_greater_fencing_token()
    {
        var table = new LeaseTable();
        ulong previous = 0;
        for (var i = 0; i < 20; i++)
        {
            var grant = table.Grant(0, 10, i);
            Assert.True(grant.FencingToken > previous);
            Assert.Equal(grant.FencingToken, table.CurrentFencingToken);
            previous = grant.FencingToken;
            if (i % 3 == 0) table.Revoke(grant.LeaseId);
        }
    }

    [Fact]
    public void The_fencing_counter_never_wraps()
    {
        var table = new LeaseTable();
        var holder = table.Grant(0, 10, 0).LeaseId;
        table = SnapshotBytes.Patch(table, fencingToken: ulong.MaxValue);
        var grant = table.Grant(0, 10, 0);
        Assert.Equal(LeaseStatus.FencingTokensExhausted, grant.Status);
        Assert.Equal("keel: fencing tokens exhausted", grant.Error);
        Assert.Equal(LeaseStatus.FencingTokensExhausted, table.Locks.Acquire("r", holder).Status);
        Assert.Equal(1, table.Count);
    }

    [Fact]
    public void KeepAlive_renews_to_the_full_TTL()
    {
        var table = new LeaseTable();
        var id = table.Grant(0, 10, 0).LeaseId;
        var renewed = table.KeepAlive(id, 7_000);
        Assert.Equal(LeaseStatus.Ok, renewed.Status);
        Assert.Equal(10, renewed.TtlSeconds);
        Assert.Equal(10_000, table.TimeToLive(id, 7_000).RemainingMs);
    }

    [Fact]
    public void KeepAlive_of_an_unknown_lease_returns_TTL_0_and_NotFound()
    {
        var table = new LeaseTable();
        var result = table.KeepAlive(99, 0);
        Assert.Equal(LeaseStatus.NotFound, result.Status);
        Assert.Equal(0, result.TtlSeconds);
        Assert.Equal("etcdserver: requested lease not found", result.Error);
    }

    [Fact]
    public void KeepAlive_after_the_deadline_is_refused_because_the_lease_awaits_revocation()
    {
        var table = new LeaseTable();
        var id = table.Grant(0, 10, 0).LeaseId;
        Assert.True(table.KeepAlive(id, 9_999).IsSuccess);
        Assert.Equal(LeaseStatus.NotFound, table.KeepAlive(id, 19_999 + 1).Status);
        Assert.True(table.Contains(id));
    }

    [Fact]
    public void Revoke_returns_the_attached_keys_sorted_by_content()
    {
        var table = new LeaseTable();
        var id = table.Grant(0, 10, 0).LeaseId;
        foreach (var k in new[] { "b", "a", "ab", "\u00ff", "B" }) Assert.Equal(LeaseStatus.Ok, table.Attach(id, Key(k)));
        var revoked = table.Revoke(id).ThrowIfFailed();
        Assert.Equal(["B", "a", "ab", "b", "\u00ff"], revoked.Keys.Select(k => Encoding.UTF8.GetString(k.Span)));
        Assert.False(table.Contains(id));
        Assert.Equal(0, table.AttachedKeyCount);
        table.AssertInvariants();
    }

    [Fact]
    public void Revoke_of_an_unknown_lease_is_NotFound_with_etcds_text()
    {
        var table = new LeaseTable();
        var result = table.Revoke(5);
        Assert.Equal(LeaseStatus.NotFound, result.Status);
        Assert.Equal("etcdserver: requested lease not found", result.Error);
        Assert.Empty(result.Keys);
        var ex = Assert.Throws<LeaseException>(() => result.ThrowIfFailed());
        Assert.Equal(LeaseErrors.NotFound, ex.Message);
    }

    [Fact]
    public void TimeToLive_reports_granted_and_truncated_remaining_seconds_like_etcd()
    {
        var table = new LeaseTable();
        var grant = table.Grant(0, 10, 1_000);
        table.Attach(grant.LeaseId, Key("k1"));
        var fresh = table.TimeToLive(grant.LeaseId, 1_000, includeKeys: true);
        Assert.Equal(10, fresh.GrantedTtlSeconds);
        Assert.Equal(10, fresh.RemainingTtlSeconds);
        Assert.Equal(grant.FencingToken, fresh.FencingToken);
        Assert.Equal("k1", Encoding.UTF8.GetString(Assert.Single(fresh.Keys).Span));
        var later = table.TimeToLive(grant.LeaseId, 1_001);
        Assert.Equal(9, later.RemainingTtlSeconds);
        Assert.Equal(9_999, later.RemainingMs);
        Assert.Empty(later.Keys);
        Assert.Equal(0, table.TimeToLive(grant.LeaseId, 50_000).RemainingMs);
    }

    [Fact]
    public void TimeToLive_of_an_unknown_lease_is_minus_1()
    {
        var result = new LeaseTable().TimeToLive(8, 0);
        Assert.Equal(LeaseStatus.NotFound, result.Status);
        Assert.Equal(-1, result.RemainingTtlSeconds);
        Assert.Equal(0, result.GrantedTtlSeconds);
    }

    [Fact]
    public void Leases_lists_ids_in_ascending_order()
    {
        var table = new LeaseTable();
        foreach (var id in new long[] { 50, 7, 1_000_000_000_000, 3 }) table.Grant(id, 10, 0);
        table.Revoke(7);
        Assert.Equal([3L, 50L, 1_000_000_000_000L], table.Leases());
    }

    [Fact]
    public void Keys_compare_by_content_and_move_between_leases()
    {
        var table = new LeaseTable();
        var a = table.Grant(0, 10, 0).LeaseId;
        var b = table.Grant(0, 10, 0).LeaseId;
        Assert.Equal(LeaseStatus.Ok, table.Attach(a, Key("x")));
        Assert.Equal(LeaseStatus.Ok, table.Attach(a, Key("x"))); // another array, same content: no duplicate
        Assert.Equal(1, table.AttachedKeyCount);
        Assert.Equal(a, table.LeaseOfKey(Key("x")));
        Assert.Equal(LeaseStatus.Ok, table.Attach(b, Key("x")));
        Assert.Equal(b, table.LeaseOfKey(Key("x")));
        Assert.Empty(table.Revoke(a).Keys);
        Assert.Equal(1, table.AttachedKeyCount);
        table.AssertInvariants();
    }

    [Fact]
    public void Detach_removes_a_key_and_ignores_keys_the_lease_does_not_have()
    {
        var table = new LeaseTable();
        var a = table.Grant(0, 10, 0).LeaseId;
        var b = table.Grant(0, 10, 0).LeaseId;
        table.Attach(a, Key("x"));
        table.Attach(b, Key("y"));
        Assert.Equal(LeaseStatus.Ok, table.Detach(a, Key("y")));
        Assert.Equal(b, table.LeaseOfKey(Key("y")));
        Assert.Equal(LeaseStatus.Ok, table.Detach(a, Key("x")));
        Assert.Equal(0, table.LeaseOfKey(Key("x")));
        Assert.Empty(table.Revoke(a).Keys);
        table.AssertInvariants();
    }

    [Fact]
    public void Attach_and_Detach_on_an_unknown_lease_are_NotFound()
    {
        var table = new LeaseTable();
        Assert.Equal(LeaseStatus.NotFound, table.Attach(1, Key("x")));
        Assert.Equal(LeaseStatus.NotFound, table.Detach(1, Key("x")));
        Assert.Equal(0, table.AttachedKeyCount);
    }

    [Fact]
    public void A_backwards_time_fails_an_invariant()
    {
        var table = new LeaseTable();
        table.Grant(0, 10, 5_000);
        var ex = Assert.Throws<InvariantViolationException>(() => table.KeepAlive(1, 4_999));
        Assert.Contains("time went backwards from 5000 ms to 4999 ms", ex.Message);
        Assert.Throws<InvariantViolationException>(() => table.Grant(0, 10, 0));
        Assert.Throws<InvariantViolationException>(() => table.TimeToLive(1, 0));
        table.Grant(0, 10, 5_000); // equal times are fine
    }

    [Fact]
    public void Error_texts_match_etcd_byte_for_byte()
    {
        Assert.Equal("etcdserver: requested lease not found", LeaseErrors.MessageOf(LeaseStatus.NotFound));
        Assert.Equal("etcdserver: lease already exists", LeaseErrors.MessageOf(LeaseStatus.AlreadyExists));
        Assert.Equal("etcdserver: too large lease TTL", LeaseErrors.MessageOf(LeaseStatus.TtlTooLarge));
        Assert.Null(LeaseErrors.MessageOf(LeaseStatus.Ok));
        foreach (var status in Enum.GetValues<LeaseStatus>().Where(s => s != LeaseStatus.Ok))
            Assert.False(string.IsNullOrEmpty(LeaseErrors.MessageOf(status)));
    }
}
