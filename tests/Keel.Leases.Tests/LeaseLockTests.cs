namespace Keel.Leases.Tests;

public class LeaseLockTests
{
    [Fact]
    public void A_held_resource_refuses_other_leases_and_reveals_no_token()
    {
        var table = new LeaseTable();
        var a = table.Grant(0, 10, 0).LeaseId;
        var b = table.Grant(0, 10, 0).LeaseId;
        var acquired = table.Locks.Acquire("db", a);
        Assert.True(acquired.IsSuccess);
        Assert.Equal(a, acquired.HolderLeaseId);
        Assert.Equal(table.CurrentFencingToken, acquired.FencingToken);
        var refused = table.Locks.Acquire("db", b);
        Assert.Equal(LeaseStatus.HeldByAnotherLease, refused.Status);
        Assert.Equal(a, refused.HolderLeaseId);
        Assert.Equal(0UL, refused.FencingToken);
        Assert.Equal("keel: resource is held by another lease", refused.Error);
        table.AssertInvariants();
    }

    [Fact]
    public void Acquiring_again_with_the_same_lease_is_idempotent()
    {
        var table = new LeaseTable();
        var a = table.Grant(0, 10, 0).LeaseId;
        var first = table.Locks.Acquire("db", a);
        var retry = table.Locks.Acquire("db", a);
        Assert.True(retry.WasAlreadyHeld);
        Assert.Equal(first.FencingToken, retry.FencingToken);
        Assert.Equal(first.FencingToken, table.CurrentFencingToken);
    }

    [Fact]
    public void Acquire_with_an_unknown_lease_is_NotFound()
    {
        var result = new LeaseTable().Locks.Acquire("db", 3);
        Assert.Equal(LeaseStatus.NotFound, result.Status);
        Assert.Equal(LeaseErrors.NotFound, result.Error);
        Assert.Throws<ArgumentException>(() => new LeaseTable().Locks.Acquire("", 3));
    }

    [Fact]
    public void Revoking_the_holder_releases_the_resource_and_the_next_holder_gets_a_greater_token()
    {
        var table = new LeaseTable();
        var a = table.Grant(0, 10, 0).LeaseId;
        var b = table.Grant(0, 10, 0).LeaseId;
        var old = table.Locks.Acquire("db", a).FencingToken;
        Assert.Equal(["db"], table.Revoke(a).ReleasedResources);
        Assert.Equal(FenceCheck.NotHeld, table.Locks.ValidateFence("db", old));
        var next = table.Locks.Acquire("db", b);
        Assert.True(next.IsSuccess);
        Assert.True(next.FencingToken > old);
        Assert.Equal(FenceCheck.Stale, table.Locks.ValidateFence("db", old));
        Assert.Equal(FenceCheck.Valid, table.Locks.ValidateFence("db", next.FencingToken));
        Assert.Equal(FenceCheck.NeverIssued, table.Locks.ValidateFence("db", next.FencingToken + 1));
        table.AssertInvariants();
    }

    [Fact]
    public void Expiry_releases_the_resource_and_a_paused_former_holder_is_fenced_off()
    {
        var table = new LeaseTable();
        table.Promote(0);
        var a = table.Grant(0, 2, 0).LeaseId;
        var paused = table.Locks.Acquire("db", a).FencingToken;
        Assert.Equal(["db"], Assert.Single(table.ExpireDue(2_000, 10)).ReleasedResources);
        var b = table.Grant(0, 2, 2_000).LeaseId;
        var current = table.Locks.Acquire("db", b).FencingToken;
        // The former holder wakes from its GC pause and writes with its old token.
        Assert.Equal(FenceCheck.Stale, table.Locks.ValidateFence("db", paused));
        Assert.Equal(FenceCheck.Valid, table.Locks.ValidateFence("db", current));
    }

    [Fact]
    public void Release_frees_the_resource_and_refuses_a_non_holder()
    {
        var table = new LeaseTable();
        var a = table.Grant(0, 10, 0).LeaseId;
        var b = table.Grant(0, 10, 0).LeaseId;
        table.Locks.Acquire("db", a);
        Assert.Equal(LeaseStatus.NotHolder, table.Locks.Release("db", b));
        Assert.Equal(LeaseStatus.NotHolder, table.Locks.Release("other", a));
        Assert.Equal(LeaseStatus.NotFound, table.Locks.Release("db", 99));
        Assert.Equal(LeaseStatus.Ok, table.Locks.Release("db", a));
        Assert.False(table.Locks.TryGetHolder("db", out _));
        Assert.True(table.Locks.Acquire("db", b).IsSuccess);
        Assert.True(table.Locks.TryGetHolder("db", out var hold));
        Assert.Equal(b, hold.LeaseId);
        Assert.Empty(table.Revoke(a).ReleasedResources);
        table.AssertInvariants();
    }

    [Fact]
    public void Holds_are_listed_in_ordinal_order()
    {
        var table = new LeaseTable();
        var a = table.Grant(0, 10, 0).LeaseId;
        foreach (var name in new[] { "b", "a", "B", "é" }) table.Locks.Acquire(name, a);
        Assert.Equal(["B", "a", "b", "é"], table.Locks.Holds().Select(h => h.Resource));
        Assert.Equal(["B", "a", "b", "é"], table.Revoke(a).ReleasedResources);
    }
}
