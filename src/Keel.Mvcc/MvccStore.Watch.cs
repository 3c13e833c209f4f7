namespace Keel.Mvcc;

public sealed partial class MvccStore
{
    /// <summary>
    /// The watch history: every change to a key in the range (conventions of <see cref="RangeRequest.RangeEnd"/>) with
    /// revision in [<paramref name="startRevision"/>, <paramref name="endRevision"/>], in revision order and, within a
    /// revision, in the order the transaction wrote them; each with its prev_kv. A start beyond the current revision
    /// gives no events (watching the future is allowed); the watch service pages with <paramref name="endRevision"/>.
    /// </summary>
    /// <exception cref="MvccException">The start is below the compaction revision (etcd cancels such a watch).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The start is below 1.</exception>
    public IReadOnlyList<WatchEvent> Events(long startRevision, byte[] key, byte[] rangeEnd, long endRevision = long.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(startRevision, 1);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(rangeEnd);
        if (startRevision < _compactRevision) throw new MvccException(MvccError.Compacted);
        var events = new List<WatchEvent>();
        if (_log.Count == 0) return events;
        var first = (int)Math.Min(_log.Count, Math.Max(0, startRevision - _log.FirstRevision));
        for (var i = first; i < _log.Count && _log.RevisionOf(i) <= endRevision; i++)
            foreach (var change in _log.ChangesOf(i))
                if (InRange(key, rangeEnd, change.Kv.Key)) events.Add(change.ToEvent());
        return events;
    }
}
