namespace Keel.Leases;

/// <summary>
/// Named resources held by leases, built so that a resource never has two holders: a lease acquires a resource only
/// while no other live lease holds it, and the resource is released when its holder's lease is revoked or expires
/// (ZooKeeper's ephemeral lock nodes, etcd's v3lock). Every acquisition issues a fencing token from the table's
/// counter; <see cref="ValidateFence"/> refuses the token of a former holder (Kleppmann 2016: a holder paused by GC
/// past its lease would otherwise write after another holder took over).
/// </summary>
/// <remarks>
/// "Live" means present in the table: a lease stops holding only when a Revoke or an expiry is applied, never because a
/// replica's clock says its deadline passed, so every replica agrees on who holds what. The state is part of the
/// table's snapshot. The resource itself must still check the token (keep the largest token it has seen and reject
/// smaller ones); this table cannot stop a write it never sees.
/// </remarks>
public sealed class LeaseLock
{
    private readonly LeaseTable _table;

    internal LeaseLock(LeaseTable table) => _table = table;

    /// <summary>Number of held resources.</summary>
    public int Count => _table.ResourceCount;

    /// <summary>
    /// Acquires <paramref name="resource"/> for <paramref name="leaseId"/>. Acquiring a resource the lease already
    /// holds succeeds again with the same token (a retry is idempotent).
    /// </summary>
    /// <returns>The holder and its fresh fencing token; or NotFound (no such lease), HeldByAnotherLease (with the
    /// holder's id but not its token), FencingTokensExhausted.</returns>
    public AcquireResult Acquire(string resource, long leaseId)
    {
        ArgumentException.ThrowIfNullOrEmpty(resource);
        return _table.AcquireResource(resource, leaseId);
    }

    /// <summary>Releases <paramref name="resource"/> held by <paramref name="leaseId"/> (an unlock).</summary>
    /// <returns>Ok; NotFound when the lease does not exist; NotHolder when the lease does not hold the resource.</returns>
    public LeaseStatus Release(string resource, long leaseId)
    {
        ArgumentException.ThrowIfNullOrEmpty(resource);
        return _table.ReleaseResource(resource, leaseId);
    }

    /// <summary>
    /// Whether a write to <paramref name="resource"/> carrying <paramref name="fencingToken"/> may proceed: only the
    /// current holder's token is valid.
    /// </summary>
    public FenceCheck ValidateFence(string resource, ulong fencingToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(resource);
        if (!_table.TryGetResource(resource, out var hold)) return FenceCheck.NotHeld;
        if (fencingToken == hold.FencingToken) return FenceCheck.Valid;
        return fencingToken < hold.FencingToken ? FenceCheck.Stale : FenceCheck.NeverIssued;
    }

    /// <summary>Who holds <paramref name="resource"/>, if anyone.</summary>
    public bool TryGetHolder(string resource, out ResourceHold hold)
    {
        ArgumentException.ThrowIfNullOrEmpty(resource);
        return _table.TryGetResource(resource, out hold);
    }

    /// <summary>Every held resource, in ordinal order of name.</summary>
    public ResourceHold[] Holds() => _table.ResourceHolds();
}
