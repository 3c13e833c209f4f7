using Keel.Core;

namespace Keel.Mvcc;

/// <summary>
/// The multi-version key-value store: the deterministic state machine that Raft log entries are applied to, with
/// etcd's revision semantics (server/mvcc/kvstore.go, kvstore_txn.go, key_index.go; etcdserver/apply.go). An empty
/// store is at revision 1; every write transaction that changes anything raises the revision by exactly 1 and stamps
/// every key it changes with that mod revision. Old versions stay readable until <see cref="Compact"/>.
/// </summary>
/// <remarks>
/// <para>Structure: a sorted index (a copy-on-write B+tree, <see cref="KeyIndex"/>, in unsigned byte order) from key to
/// the key's revision history (puts and tombstones, oldest first; a tombstone ends a generation, as etcd's keyIndex
/// generations), plus a revision-ordered log of changes with their prev_kv (the watch history) and the hybrid
/// timestamp of each revision. Both share the same immutable <see cref="KeyValue"/> objects.</para>
/// <para>Costs (n keys in the store, m keys in a range, h versions of a key, R revisions retained): point read
/// O(log n + log h); range O(log n + m log h) — also with a limit, because etcd's <c>count</c> counts the whole range;
/// put/delete O(log n) plus the list append; compaction O(n + versions dropped), as etcd's index compaction walks every
/// key; <see cref="RevisionAt"/> O(log R); watch history O(log R + events scanned).</para>
/// <para>No I/O, clock, randomness or threads: the same sequence of calls gives the same state on every replica. Not
/// thread-safe; the node applies entries on one thread. Requests are validated completely before anything changes, so a
/// refused request (<see cref="MvccException"/>) leaves the store as it was.</para>
/// </remarks>
public sealed partial class MvccStore
{
    private readonly KeyIndex _index = new();
    private readonly RevisionLog _log = new();
    private readonly List<Change> _pendingEvents = [];
    private long _currentRevision = 1;
    private long _compactRevision;
    private long _lastHybridTimestamp = long.MinValue;
    private long _sizeBytes;
    private readonly ValueArena? _values;

    /// <summary>Creates an empty store at revision 1 that holds each value in an array of its own.</summary>
    public MvccStore() { }

    /// <summary>
    /// Creates an empty store at revision 1 that copies every value into segments from <paramref name="valueSegments"/>
    /// (null: an array per value, as <see cref="MvccStore()"/>). The server gives it file-backed segments, so values live
    /// in the page cache rather than on the GC heap (docs/mvcc.md, "Values in segments").
    /// </summary>
    public MvccStore(ValueSegmentSource? valueSegments)
    {
        if (valueSegments is not null) _values = new ValueArena(valueSegments);
    }

    /// <summary>Where the values go (null: an array per value); a store restored from a snapshot keeps it.</summary>
    public ValueSegmentSource? ValueSegments => _values?.Source;

    /// <summary>Value segments in use (0 without segments).</summary>
    public int ValueSegmentCount => _values?.SegmentCount ?? 0;

    /// <summary>Bytes of the value segments in use.</summary>
    public long ValueSegmentBytes => _values?.SegmentBytes ?? 0;

    /// <summary>Bytes of values the index refers to in segments.</summary>
    public long ValueLiveBytes => _values?.LiveBytes ?? 0;

    /// <summary>Values kept in arrays of their own because no segment could be made (a full disk).</summary>
    public long ValuesOutsideSegments => _values?.ValuesOutsideSegments ?? 0;

    /// <summary>Values compaction moved out of sparse segments, in all.</summary>
    public long ValuesMoved => _values?.ValuesMoved ?? 0;

    /// <summary>The store revision: that of the latest write transaction, 1 for an empty store.</summary>
    public long CurrentRevision => _currentRevision;

    /// <summary>The revision of the last compaction, 0 if never compacted; reads below it fail.</summary>
    public long CompactRevision => _compactRevision;

    /// <summary>Number of keys with at least one retained version (live or not).</summary>
    public int IndexedKeyCount => _index.Count;

    /// <summary>
    /// The store's size in bytes, kept up to date by every write and compaction (never by encoding the store): keys,
    /// values and a fixed overhead per retained revision of a key and per event of the watch history. It is what the
    /// space quota is measured against and what <c>Status</c> reports as the size in use; every replica computes the
    /// same figure from the same log.
    /// </summary>
    public long SizeBytes => _sizeBytes;

    // Per-object costs of the representation (object headers, references, the revision and the list slot), so the
    // figure follows memory rather than payload alone: a million tiny keys are not free.
    private const int KeyOverheadBytes = 80;
    private const int RevisionOverheadBytes = 96;
    private const int RecordOverheadBytes = 48;
    private const int EventOverheadBytes = 32;

    private static long SizeOfEntry(KeyRevision entry) => RevisionOverheadBytes + (entry.Kv?.ValueLength ?? 0);

    private static long SizeOfRecords(int records, long events) => (long)RecordOverheadBytes * records + (long)EventOverheadBytes * events;

    /// <summary>Reads a key or range (see <see cref="RangeRequest"/>), at the current or a historical revision.</summary>
    /// <exception cref="MvccException">Empty key; the revision is compacted or in the future.</exception>
    public RangeResponse Range(RangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckRange(request);
        return RangeCore(request, _currentRevision);
    }

    /// <summary>
    /// Freezes the store as it is now into a view that any thread can read while this store keeps changing (O(1): the
    /// index is copy-on-write, see <see cref="KeyIndex"/>). Writes after a capture copy the index nodes and key histories
    /// they change, once per capture, so capture when a reader will use the view, not on every write.
    /// </summary>
    public StoreReadView CaptureReadView() => new(this, _index.Freeze(), _currentRevision, _compactRevision);

    /// <summary>
    /// Whether <paramref name="view"/> was captured from this store and nothing a read sees has changed since: every write
    /// that changes something raises the revision, and every compaction raises the compaction revision.
    /// </summary>
    public bool IsCurrent(StoreReadView view)
    {
        ArgumentNullException.ThrowIfNull(view);
        return ReferenceEquals(view.Store, this) && view.Revision == _currentRevision && view.CompactRevision == _compactRevision;
    }

    /// <summary>Writes one key at a new revision stamped with <paramref name="hybridTimestamp"/>.</summary>
    /// <param name="request">The put.</param>
    /// <param name="hybridTimestamp">The opaque hybrid-clock time of the log entry; not below the previous write's.</param>
    /// <exception cref="MvccException">Empty key; value or lease provided with ignore; ignore on a missing key.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The timestamp is below the previous write's.</exception>
    public PutResponse Put(PutRequest request, long hybridTimestamp)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckPut(request);
        CheckPutAgainstState(request);
        CheckTimestamp(hybridTimestamp);
        var writeRevision = _currentRevision + 1;
        var response = PutCore(request, writeRevision);
        EndWrite(hybridTimestamp);
        return response with { Revision = _currentRevision };
    }

    /// <summary>Deletes a key or range; a new revision only if something was deleted.</summary>
    /// <param name="request">The delete.</param>
    /// <param name="hybridTimestamp">The opaque hybrid-clock time of the log entry; not below the previous write's.</param>
    /// <exception cref="MvccException">Empty key.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The timestamp is below the previous write's.</exception>
    public DeleteRangeResponse DeleteRange(DeleteRangeRequest request, long hybridTimestamp)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckDelete(request);
        CheckTimestamp(hybridTimestamp);
        var response = DeleteCore(request, _currentRevision + 1);
        EndWrite(hybridTimestamp);
        return response with { Revision = _currentRevision };
    }

    /// <summary>
    /// Compacts history at <paramref name="revision"/>: every version superseded at or before it is dropped, so reads
    /// and watches below it fail with the compacted error; the latest version of each live key stays. Does not create
    /// a revision (as in etcd).
    /// </summary>
    /// <exception cref="MvccException">At or below the last compaction (compacted); above the current revision (future).</exception>
    public void Compact(long revision)
    {
        if (revision <= _compactRevision) throw new MvccException(MvccError.Compacted);
        if (revision > _currentRevision) throw new MvccException(MvccError.FutureRevision);
        List<byte[]>? emptied = null;
        foreach (var found in _index)
        {
            var last = LastAtOrBelow(found, revision);
            if (last < 0) continue;
            // Keep the version current at the compaction revision unless it is a tombstone (key_index.go compact).
            var keepFrom = found[last].Kv is null ? last + 1 : last;
            // A key held as its one live version keeps it (keepFrom is 0): only histories are compacted.
            if (keepFrom == 0) continue;
            for (var i = 0; i < keepFrom; i++)
            {
                _sizeBytes -= SizeOfEntry(found[i]);
                if (found[i].Kv is { } dropped) _values?.Release(dropped);
            }
            if (keepFrom == found.Count - 1 && found.Last.Kv is { } only)
            {
                // One live version left: the key is held as that version again (no history object).
                _index.Replace(new KeyEntry(only));
                continue;
            }
            var history = Writable(found.History!);
            history.RemoveOldest(keepFrom);
            if (history.Count == 0)
            {
                (emptied ??= []).Add(history.Key);
                _sizeBytes -= KeyOverheadBytes + history.Key.Length;
            }
        }
        if (emptied is not null)
            foreach (var key in emptied) _index.Remove(key);
        var (records, events) = _log.DropBelow(revision);
        _sizeBytes -= SizeOfRecords(records, events);
        _compactRevision = revision;
        if (_values is not null) MoveSparseValues(_values);
    }

    /// <summary>
    /// Moves the live values out of the sealed segments that compaction left less than half used, so overwrites give
    /// their space back. The index and the watch history get new versions (same stamps, value in the tail segment) in
    /// place of the old ones, copy-on-write, so a capture taken before still reads the old segment, which the garbage
    /// collector frees once nothing refers to it.
    /// </summary>
    private void MoveSparseValues(ValueArena values)
    {
        var sparse = values.TakeSparseSegments();
        if (sparse.Count == 0) return;
        var moved = new Dictionary<KeyValue, KeyValue>(ReferenceEqualityComparer.Instance);
        bool InSparse(KeyValue? kv) => kv?.Segment is { } segment && sparse.Contains(segment);
        KeyValue Moved(KeyValue kv)
        {
            if (!InSparse(kv)) return kv;
            if (!moved.TryGetValue(kv, out var copy)) moved[kv] = copy = values.Move(kv);
            return copy;
        }
        foreach (var found in _index)
        {
            if (found.Single is { } single)
            {
                var copy = Moved(single);
                if (!ReferenceEquals(copy, single)) _index.Replace(new KeyEntry(copy));
                continue;
            }
            var history = found.History!;
            var any = false;
            for (var i = 0; i < history.Count && !any; i++) any = InSparse(history[i].Kv);
            if (any) Writable(history).MapVersions(Moved);
        }
        if (moved.Count > 0) _log.MapVersions(kv => moved.GetValueOrDefault(kv, kv));
    }

    /// <summary>
    /// Keel's "read as of a wall-clock time": the revision that was current at hybrid time
    /// <paramref name="hybridTimestamp"/>, i.e. the latest revision written at or before it (1 if none was).
    /// Binary search over the retained revisions.
    /// </summary>
    /// <exception cref="MvccException">That revision has been compacted.</exception>
    public long RevisionAt(long hybridTimestamp)
    {
        if (_log.Count == 0) return _currentRevision;
        if (hybridTimestamp < _log.TimestampOf(0))
        {
            if (_log.FirstRevision == 2 && _compactRevision <= 1) return 1;
            throw new MvccException(MvccError.Compacted);
        }
        int low = 0, high = _log.Count - 1;
        while (low < high)
        {
            var mid = low + (high - low + 1) / 2;
            if (_log.TimestampOf(mid) <= hybridTimestamp) low = mid;
            else high = mid - 1;
        }
        return _log.RevisionOf(low);
    }

    /// <summary>The hybrid timestamp recorded with <paramref name="revision"/> (a retained revision of at least 2).</summary>
    /// <exception cref="MvccException">Compacted or future revision.</exception>
    /// <exception cref="ArgumentOutOfRangeException">Revision 1 or less (the empty store has no write time).</exception>
    public long TimestampOf(long revision)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(revision, 2);
        if (revision > _currentRevision) throw new MvccException(MvccError.FutureRevision);
        if (_log.Count == 0 || revision < _log.FirstRevision) throw new MvccException(MvccError.Compacted);
        return _log.TimestampOf((int)(revision - _log.FirstRevision));
    }

    private void CheckTimestamp(long hybridTimestamp)
    {
        if (hybridTimestamp < _lastHybridTimestamp)
            throw new ArgumentOutOfRangeException(nameof(hybridTimestamp), hybridTimestamp,
                $"hybrid timestamps of writes must not go backwards (previous write: {_lastHybridTimestamp})");
    }

    /// <summary>Commits the pending changes, if any, as one new revision.</summary>
    private void EndWrite(long hybridTimestamp)
    {
        if (_pendingEvents.Count == 0) return;
        _currentRevision++;
        _log.Add(_currentRevision, hybridTimestamp, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_pendingEvents));
        _sizeBytes += SizeOfRecords(1, _pendingEvents.Count);
        _lastHybridTimestamp = hybridTimestamp;
        _pendingEvents.Clear();
    }

    /// <summary>The revision a read inside a write sees: the write's own if it has changed something yet.</summary>
    private long ReadRevisionInWrite => _pendingEvents.Count > 0 ? _currentRevision + 1 : _currentRevision;

    private PutResponse PutCore(PutRequest request, long writeRevision)
    {
        var exists = _index.TryGetValue(request.Key, out var entry);
        var previous = exists ? LiveAt(entry, writeRevision) : null;
        var key = exists ? entry.Key : request.Key.ToArray();
        var lease = request.IgnoreLease ? previous!.Lease : request.Lease;
        var create = previous?.CreateRevision ?? writeRevision;
        var version = (previous?.Version ?? 0) + 1;
        KeyValue kv;
        if (request.IgnoreValue)
        {
            // The previous version's value, shared where it is held (array or segment), not copied.
            kv = previous! with { CreateRevision = create, ModRevision = writeRevision, Version = version, Lease = lease };
            _values?.Share(kv);
        }
        else if (_values is not null) kv = _values.Store(key, create, writeRevision, version, request.Value, lease);
        else kv = new KeyValue(key, create, writeRevision, version, request.HandsOverValue ? request.Value : request.Value.ToArray(), lease);
        if (exists) Append(entry, writeRevision, kv);
        else AddKey(kv);
        _pendingEvents.Add(new Change(EventType.Put, kv, previous));
        return new PutResponse(writeRevision, request.PrevKv ? previous : null);
    }

    private DeleteRangeResponse DeleteCore(DeleteRangeRequest request, long writeRevision)
    {
        List<KeyValue> previous = [];
        foreach (var history in KeysIn(request.Key, request.RangeEnd))
        {
            var live = LiveAt(history, writeRevision);
            if (live is null) continue;
            Append(history, writeRevision, null);
            _pendingEvents.Add(new Change(EventType.Delete, new KeyValue(history.Key, 0, writeRevision, 0, [], 0), live));
            previous.Add(live);
        }
        return new DeleteRangeResponse(ReadRevisionInWrite, previous.Count, request.PrevKv ? previous : []);
    }

    /// <summary>Adds a version (or a tombstone) to an indexed key; a key held as one version becomes a history.</summary>
    private void Append(KeyEntry key, long revision, KeyValue? kv)
    {
        Invariant.Check(key.Last.Revision < revision, "a key changes at most once per revision");
        var entry = new KeyRevision(revision, kv);
        if (key.History is { } history) Writable(history).Add(entry);
        else
        {
            var single = key.Single!;
            var grown = new KeyHistory(single.Key) { Generation = _index.Generation };
            grown.Add(new KeyRevision(single.ModRevision, single));
            grown.Add(entry);
            _index.Replace(grown);
        }
        _sizeBytes += SizeOfEntry(entry);
    }

    /// <summary>Indexes a key that has no retained version, held as its first version.</summary>
    private void AddKey(KeyValue first)
    {
        var added = _index.Add(new KeyEntry(first));
        Invariant.Check(added, "an added key was not in the index");
        _sizeBytes += KeyOverheadBytes + first.Key.Length + SizeOfEntry(new KeyRevision(first.ModRevision, first));
    }

    /// <summary>
    /// The history to change for a key: itself, or, when a capture froze it (an older generation of the index), a copy
    /// that takes its place in the index, so the capture's view never changes (O(1) snapshots, see <see cref="KeyIndex"/>).
    /// </summary>
    private KeyHistory Writable(KeyHistory history)
    {
        if (history.Generation == _index.Generation) return history;
        var copy = history.CopyAt(_index.Generation);
        _index.Replace(copy);
        return copy;
    }

    /// <summary>The live version of a key at <paramref name="revision"/>, or null (never written, deleted, or not yet created).</summary>
    private static KeyValue? LiveAt(KeyEntry entries, long revision)
    {
        var index = LastAtOrBelow(entries, revision);
        return index < 0 ? null : entries[index].Kv;
    }

    /// <summary>Index of the last entry with revision at most <paramref name="revision"/>, or -1.</summary>
    private static int LastAtOrBelow(KeyEntry entries, long revision)
    {
        // Most keys have one retained version: answer without the search.
        if (entries.Count == 1) return entries[0].Revision <= revision ? 0 : -1;
        int low = 0, high = entries.Count - 1, found = -1;
        while (low <= high)
        {
            var mid = low + (high - low) / 2;
            if (entries[mid].Revision <= revision) { found = mid; low = mid + 1; }
            else high = mid - 1;
        }
        return found;
    }

    /// <summary>Whether <paramref name="key"/> lies in the request range (etcd's empty / "\0" / half-open conventions).</summary>
    internal static bool InRange(byte[] start, byte[] rangeEnd, ReadOnlySpan<byte> key)
    {
        if (rangeEnd.Length == 0) return key.SequenceEqual(start);
        if (key.SequenceCompareTo(start) < 0) return false;
        return IsFromKey(rangeEnd) || key.SequenceCompareTo(rangeEnd) < 0;
    }

    private static bool IsFromKey(byte[] rangeEnd) => rangeEnd is [0];

    /// <summary>The index entries of the keys in a request range, in key order (including keys not live now).</summary>
    private IEnumerable<KeyEntry> KeysIn(byte[] key, byte[] rangeEnd) => KeysIn(_index, key, rangeEnd);

    private static IEnumerable<KeyEntry> KeysIn(IKeyLookup index, byte[] key, byte[] rangeEnd)
    {
        if (rangeEnd.Length == 0)
        {
            if (index.TryGetValue(key, out var single)) yield return single;
            yield break;
        }
        if (index.Count == 0) yield break;
        var fromKey = IsFromKey(rangeEnd);
        if (!fromKey && ByteKeyComparer.Instance.Compare(key, rangeEnd) >= 0) yield break;
        foreach (var history in index.From(key))
        {
            if (!fromKey && ByteKeyComparer.Instance.Compare(history.Key, rangeEnd) >= 0) yield break;
            yield return history;
        }
    }
}
