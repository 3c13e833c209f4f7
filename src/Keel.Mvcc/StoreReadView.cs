namespace Keel.Mvcc;

/// <summary>
/// The store frozen at one revision (<see cref="MvccStore.CaptureReadView"/>): ranges over it give what the store gave
/// at the capture, and it is safe to read from any number of threads while the store, on its own thread, goes on
/// changing. The server serves serializable reads from the latest view on the RPC's own thread instead of queueing them
/// behind the node loop, as etcd serves them from a bbolt read transaction.
/// </summary>
/// <remarks>
/// Nothing here is written after the capture: the index nodes and key histories it reaches belong to a frozen
/// generation, which the store never changes again (it changes copies), and value and key arrays are never changed.
/// A view holds on to the versions it can reach, so a long-lived view keeps compacted history alive; the host drops it
/// as soon as the store has changed (<see cref="MvccStore.IsCurrent"/>).
/// </remarks>
public sealed class StoreReadView
{
    private readonly KeyIndex.Frozen _index;

    internal StoreReadView(MvccStore store, KeyIndex.Frozen index, long revision, long compactRevision)
    {
        Store = store;
        _index = index;
        Revision = revision;
        CompactRevision = compactRevision;
    }

    /// <summary>The store revision at the capture.</summary>
    public long Revision { get; }

    /// <summary>The compaction revision at the capture; reads below it fail.</summary>
    public long CompactRevision { get; }

    internal MvccStore Store { get; }

    /// <summary>Reads a key or range as <see cref="MvccStore.Range"/> did at the capture.</summary>
    /// <exception cref="MvccException">Empty key or bad sort; the revision is compacted or after the capture.</exception>
    public RangeResponse Range(RangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        MvccStore.CheckRange(request);
        return MvccStore.RangeIn(_index, request, Revision, CompactRevision);
    }
}
