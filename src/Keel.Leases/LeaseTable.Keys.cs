using Keel.Core;

namespace Keel.Leases;

public sealed partial class LeaseTable
{
    /// <summary>
    /// Attaches <paramref name="key"/> to a lease, so that it is returned for deletion when the lease is revoked or
    /// expires (an ephemeral key). Keys compare by content. A key belongs to at most one lease: attaching a key that is
    /// attached to another lease moves it (what an etcd Put with a new lease does). Attaching it again to the same
    /// lease changes nothing and allocates nothing.
    /// </summary>
    /// <returns>Ok, or NotFound when the lease does not exist.</returns>
    public LeaseStatus Attach(long leaseId, ReadOnlySpan<byte> key)
    {
        if (!_leases.TryGetValue(leaseId, out var lease)) return LeaseStatus.NotFound;
        if (_keyOwnersBySpan.TryGetValue(key, out var storedKey, out var ownerId))
        {
            if (ownerId == leaseId) return LeaseStatus.Ok;
            _leases[ownerId].Keys!.Remove(storedKey);
            _keyOwners[storedKey] = leaseId;
        }
        else
        {
            storedKey = key.ToArray();
            _keyOwners.Add(storedKey, leaseId);
        }
        (lease.Keys ??= new SortedSet<byte[]>(ByteKeyComparer.Instance)).Add(storedKey);
        return LeaseStatus.Ok;
    }

    /// <summary>
    /// Detaches <paramref name="key"/> from a lease (the key was deleted, or put without the lease). Detaching a key
    /// the lease does not have changes nothing, as in etcd.
    /// </summary>
    /// <returns>Ok, or NotFound when the lease does not exist.</returns>
    public LeaseStatus Detach(long leaseId, ReadOnlySpan<byte> key)
    {
        if (!_leases.TryGetValue(leaseId, out var lease)) return LeaseStatus.NotFound;
        if (_keyOwnersBySpan.TryGetValue(key, out var storedKey, out var ownerId) && ownerId == leaseId)
        {
            _keyOwners.Remove(storedKey);
            lease.Keys!.Remove(storedKey);
        }
        return LeaseStatus.Ok;
    }

    /// <summary>The lease <paramref name="key"/> is attached to, or 0 when it is attached to none.</summary>
    public long LeaseOfKey(ReadOnlySpan<byte> key) => _keyOwnersBySpan.TryGetValue(key, out var ownerId) ? ownerId : 0;
}
