using Keel.Core;

namespace Keel.Leases;

public sealed partial class LeaseTable
{
    /// <summary>
    /// Checks every structural and safety invariant, in O(n log n); throws <see cref="InvariantViolationException"/> on
    /// the first violation. Tests and the simulator call it after every step (as System.Threading.Channels' tests do).
    /// </summary>
    /// <remarks>
    /// The invariants: the expiry index holds exactly the live leases in heap order; every deadline is at or after the
    /// replicated deadline; ids are positive and below the id counter's reach; fencing tokens are unique and none is
    /// above the counter; every attached key belongs to exactly one live lease; every held resource is held by exactly
    /// one live lease, which knows it holds it.
    /// </remarks>
    public void AssertInvariants()
    {
        Invariant.Check(_expiry.Count == _leases.Count, "the expiry index holds every lease exactly once");
        Invariant.Check(_expiry.IsConsistent(), "the expiry index is in (deadline, id) heap order");
        Invariant.Check(_nextLeaseId >= 0, "the id counter never wraps to negative ids");

        var tokens = new HashSet<ulong>();
        var keyCount = 0;
        var resourceCount = 0;
        foreach (var lease in _leases.Values)
        {
            Invariant.Check(lease.Id > 0, "lease ids are positive");
            Invariant.Check(lease.HeapIndex >= 0 && lease.HeapIndex < _expiry.Count && ReferenceEquals(_expiry[lease.HeapIndex], lease),
                "every lease is in the expiry index at the slot it records");
            Invariant.Check(lease.TtlMs > 0 && lease.RemainingMs >= 0, "TTLs are positive and remaining TTLs non-negative");
            Invariant.Check(lease.ExpiresAtMs >= lease.ReplicatedDeadlineMs, "no deadline precedes the replicated deadline");
            Invariant.Check(lease.RecordedAtMs <= _lastNowMs, "no record is later than the table's time");
            Invariant.Check(lease.FencingToken > 0 && lease.FencingToken <= _fencingToken, "grant tokens were issued by the counter");
            Invariant.Check(tokens.Add(lease.FencingToken), "fencing tokens are unique");
            if (lease.Keys is { } keys)
            {
                foreach (var key in keys)
                    Invariant.Check(_keyOwners.TryGetValue(key, out var owner) && owner == lease.Id,
                        "every attached key is indexed to its lease");
                keyCount += keys.Count;
            }
            if (lease.Resources is { } resources)
            {
                foreach (var resource in resources)
                    Invariant.Check(_resources.TryGetValue(resource, out var hold) && hold.LeaseId == lease.Id,
                        "a lease's resources are held by that lease");
                resourceCount += resources.Count;
            }
        }
        Invariant.Check(keyCount == _keyOwners.Count, "every indexed key is attached to exactly one lease");
        Invariant.Check(resourceCount == _resources.Count, "no resource is held by two leases");
        foreach (var hold in _resources.Values)
        {
            Invariant.Check(_leases.ContainsKey(hold.LeaseId), "every held resource is held by a live lease");
            Invariant.Check(hold.FencingToken > 0 && hold.FencingToken <= _fencingToken, "resource tokens were issued by the counter");
            Invariant.Check(tokens.Add(hold.FencingToken), "fencing tokens are unique");
        }
    }
}
