using Keel.Core;

namespace Keel.Mvcc;

public sealed partial class MvccStore
{
    /// <summary>
    /// A range at the revision <paramref name="currentRevision"/> treats as current (inside a write transaction, the
    /// write's own once it changed something), following etcdserver/apply.go Range: count the whole range, then filter
    /// by min/max revisions, sort, truncate to the limit (setting <c>more</c>), strip values for keys_only.
    /// </summary>
    private RangeResponse RangeCore(RangeRequest request, long currentRevision) =>
        RangeIn(_index, request, currentRevision, _compactRevision);

    /// <summary>
    /// The range over <paramref name="index"/> (the live index, or a frozen capture of it read on another thread: see
    /// <see cref="StoreReadView"/>), with nothing read from the store's own fields.
    /// </summary>
    internal static RangeResponse RangeIn(IKeyLookup index, RangeRequest request, long currentRevision, long compactRevision)
    {
        var revision = request.Revision <= 0 ? currentRevision : request.Revision;
        if (revision > currentRevision) throw new MvccException(MvccError.FutureRevision);
        if (revision < compactRevision) throw new MvccException(MvccError.Compacted);

        var sortOrder = request.SortOrder;
        // etcd: results come in key order; a non-key target with no order means ascending.
        if (request.SortTarget != SortTarget.Key && sortOrder == SortOrder.None) sortOrder = SortOrder.Ascend;
        var inKeyOrder = sortOrder == SortOrder.None || (sortOrder == SortOrder.Ascend && request.SortTarget == SortTarget.Key);
        // In key order, limit + 1 results decide `more`; the count still walks the whole range, as etcd's does.
        var keep = inKeyOrder && request.Limit is > 0 and < long.MaxValue ? request.Limit + 1 : long.MaxValue;

        var kvs = new List<KeyValue>();
        long count = 0;
        foreach (var history in KeysIn(index, request.Key, request.RangeEnd))
        {
            var kv = LiveAt(history, revision);
            if (kv is null) continue;
            count++;
            if (!request.CountOnly && kvs.Count < keep && PassesFilters(request, kv)) kvs.Add(kv);
        }
        if (request.CountOnly) return new RangeResponse(currentRevision, [], false, count);
        if (!inKeyOrder) kvs = Sort(kvs, request.SortTarget, sortOrder);

        var more = false;
        if (request.Limit > 0 && kvs.Count > request.Limit)
        {
            kvs.RemoveRange((int)request.Limit, kvs.Count - (int)request.Limit);
            more = true;
        }
        if (request.KeysOnly)
            for (var i = 0; i < kvs.Count; i++) kvs[i] = kvs[i] with { Value = [] };
        return new RangeResponse(currentRevision, kvs, more, count);
    }

    private static bool PassesFilters(RangeRequest request, KeyValue kv) =>
        (request.MinModRevision == 0 || kv.ModRevision >= request.MinModRevision) &&
        (request.MaxModRevision == 0 || kv.ModRevision <= request.MaxModRevision) &&
        (request.MinCreateRevision == 0 || kv.CreateRevision >= request.MinCreateRevision) &&
        (request.MaxCreateRevision == 0 || kv.CreateRevision <= request.MaxCreateRevision);

    /// <summary>Stable sort, so ties stay in key order (etcd's sort.Sort is unstable; ties there have no defined order).</summary>
    private static List<KeyValue> Sort(List<KeyValue> kvs, SortTarget target, SortOrder order)
    {
        Comparison<KeyValue> compare = target switch
        {
            SortTarget.Key => (a, b) => ByteKeyComparer.Instance.Compare(a.Key, b.Key),
            SortTarget.Version => (a, b) => a.Version.CompareTo(b.Version),
            SortTarget.Create => (a, b) => a.CreateRevision.CompareTo(b.CreateRevision),
            SortTarget.Mod => (a, b) => a.ModRevision.CompareTo(b.ModRevision),
            SortTarget.Value => (a, b) => a.ValueSpan.SequenceCompareTo(b.ValueSpan),
            _ => throw new MvccException(MvccError.InvalidRequest, $"keel: invalid sort target {(int)target}"),
        };
        var comparer = Comparer<KeyValue>.Create(compare);
        return order == SortOrder.Descend ? [.. kvs.OrderByDescending(kv => kv, comparer)] : [.. kvs.OrderBy(kv => kv, comparer)];
    }

    internal static void CheckRange(RangeRequest request)
    {
        if (request.Key.Length == 0) throw new MvccException(MvccError.EmptyKey);
        CheckSort(request);
    }

    private static void CheckPut(PutRequest request)
    {
        if (request.Key.Length == 0) throw new MvccException(MvccError.EmptyKey);
        if (request.IgnoreValue && request.Value.Length != 0) throw new MvccException(MvccError.ValueProvided);
        if (request.IgnoreLease && request.Lease != 0) throw new MvccException(MvccError.LeaseProvided);
    }

    private static void CheckDelete(DeleteRangeRequest request)
    {
        if (request.Key.Length == 0) throw new MvccException(MvccError.EmptyKey);
    }

    /// <summary>ignore_value / ignore_lease need the key to exist now (etcdserver/apply.go checkRequestPut).</summary>
    private void CheckPutAgainstState(PutRequest request)
    {
        if (!request.IgnoreValue && !request.IgnoreLease) return;
        if (!_index.TryGetValue(request.Key, out var history) || LiveAt(history, _currentRevision) is null)
            throw new MvccException(MvccError.KeyNotFound);
    }
}
