namespace Keel.Leases;

public sealed partial class LeaseTable
{
    internal int ResourceCount => _resources.Count;

    internal AcquireResult AcquireResource(string resource, long leaseId)
    {
        if (!_leases.TryGetValue(leaseId, out var lease))
            return new AcquireResult { Status = LeaseStatus.NotFound, Resource = resource };
        if (_resources.TryGetValue(resource, out var hold))
        {
            if (hold.LeaseId == leaseId)
                return new AcquireResult
                {
                    Status = LeaseStatus.Ok, Resource = resource, HolderLeaseId = leaseId,
                    FencingToken = hold.FencingToken, WasAlreadyHeld = true,
                };
            return new AcquireResult
            {
                Status = LeaseStatus.HeldByAnotherLease, Resource = resource, HolderLeaseId = hold.LeaseId,
            };
        }
        if (_fencingToken == ulong.MaxValue)
            return new AcquireResult { Status = LeaseStatus.FencingTokensExhausted, Resource = resource };

        hold = new ResourceHold(resource, leaseId, IssueFencingToken());
        _resources.Add(resource, hold);
        (lease.Resources ??= new SortedSet<string>(StringComparer.Ordinal)).Add(resource);
        return new AcquireResult
        {
            Status = LeaseStatus.Ok, Resource = resource, HolderLeaseId = leaseId, FencingToken = hold.FencingToken,
        };
    }

    internal LeaseStatus ReleaseResource(string resource, long leaseId)
    {
        if (!_leases.TryGetValue(leaseId, out var lease)) return LeaseStatus.NotFound;
        if (!_resources.TryGetValue(resource, out var hold) || hold.LeaseId != leaseId) return LeaseStatus.NotHolder;
        _resources.Remove(resource);
        lease.Resources!.Remove(resource);
        return LeaseStatus.Ok;
    }

    internal bool TryGetResource(string resource, out ResourceHold hold) => _resources.TryGetValue(resource, out hold);

    internal ResourceHold[] ResourceHolds()
    {
        var holds = new ResourceHold[_resources.Count];
        _resources.Values.CopyTo(holds, 0);
        Array.Sort(holds, static (a, b) => string.CompareOrdinal(a.Resource, b.Resource));
        return holds;
    }
}
