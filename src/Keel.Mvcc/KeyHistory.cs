using Keel.Core;
using System.Diagnostics;

namespace Keel.Mvcc;

/// <summary>
/// A key's retained versions, oldest first; a null <see cref="KeyRevision.Kv"/> is a tombstone (it ends a generation,
/// as etcd's keyIndex generations). The key's bytes are held once here and shared by every version's
/// <see cref="KeyValue.Key"/>.
/// </summary>
/// <remarks>
/// <para>A version slot, once written, is never written again: <see cref="Add"/> writes past the end (a new array when
/// it grows) and <see cref="RemoveOldest"/> moves the kept versions to a new array. Snapshots rely on it: a history a
/// capture froze (an older <see cref="Generation"/>) is never changed; the store changes a copy (<see cref="CopyAt"/>)
/// that shares the version array, and the copy only writes past the frozen count.</para>
/// <para>Allocation-light on purpose: most keys of a large store have one retained version, so the first version lives in
/// a field and only the later ones in a struct array (exact growth from 1), instead of a <see cref="List{T}"/> object
/// plus its four-slot array per key (about 100 bytes less per single-version key).</para>
/// </remarks>
internal sealed class KeyHistory(byte[] key)
{
    private KeyRevision _first;
    private KeyRevision[]? _rest;
    private int _count;

    public byte[] Key { get; } = key;

    /// <summary>
    /// The <see cref="KeyIndex"/> generation it was created in: once the index is frozen past it (a snapshot captured
    /// it), the history is never changed again and the store changes a copy instead (<see cref="CopyAt"/>).
    /// </summary>
    public long Generation { get; init; }

    /// <summary>A copy to change in place of this frozen one; it shares the version array, whose written slots never change.</summary>
    public KeyHistory CopyAt(long generation) => new(Key) { Generation = generation, _first = _first, _rest = _rest, _count = _count };

    /// <summary>Number of retained versions (tombstones included).</summary>
    public int Count => _count;

    public KeyRevision this[int index]
    {
        get
        {
            Debug.Assert((uint)index < (uint)_count, "version index within the history");
            return index == 0 ? _first : _rest![index - 1];
        }
    }

    /// <summary>The versions as they are now, for a <see cref="StoreImage"/>: slots below the count never change again.</summary>
    public CapturedHistory Capture() => new(Key, _first, _rest, _count);

    /// <summary>The newest retained version.</summary>
    public KeyRevision Last => this[_count - 1];

    public void Add(KeyRevision entry)
    {
        if (_count == 0)
        {
            _first = entry;
            _count = 1;
            return;
        }
        var restCount = _count - 1;
        if (_rest is null || restCount == _rest.Length) Array.Resize(ref _rest, restCount == 0 ? 1 : restCount * 2);
        _rest[restCount] = entry;
        _count++;
    }

    /// <summary>
    /// Replaces every live version by <paramref name="map"/>'s answer (values moved to another segment: same stamps).
    /// The kept versions go to a new array, as in <see cref="RemoveOldest"/>: a capture may be reading the old one.
    /// </summary>
    public void MapVersions(Func<KeyValue, KeyValue> map)
    {
        if (_count == 0) return;
        if (_first.Kv is { } first) _first = new KeyRevision(_first.Revision, map(first));
        if (_rest is null) return;
        var rest = new KeyRevision[_rest.Length];
        for (var i = 0; i < _count - 1; i++)
            rest[i] = _rest[i].Kv is { } kv ? new KeyRevision(_rest[i].Revision, map(kv)) : _rest[i];
        _rest = rest;
    }

    /// <summary>Drops the <paramref name="count"/> oldest versions (compaction).</summary>
    public void RemoveOldest(int count)
    {
        if (count <= 0) return;
        if (count >= _count)
        {
            _first = default;
            _rest = null;
            _count = 0;
            return;
        }
        _first = _rest![count - 1];
        var remaining = _count - 1 - count;
        // A new array, not a shift in place: a captured image may still be reading the old slots.
        _rest = remaining == 0 ? null : _rest.AsSpan(count, remaining).ToArray();
        _count -= count;
    }
}

/// <summary>
/// A key's slot in the <see cref="KeyIndex"/>: its retained versions, oldest first. A key whose only retained version is a
/// live one is held as that very <see cref="KeyValue"/> (the object the watch history and responses share), with no
/// <see cref="KeyHistory"/>; any other key (more versions, or a tombstone) has a history.
/// </summary>
/// <remarks>
/// Most keys of a large store are written once, or compacted down to their latest version: a million of them are 64 MB
/// less this way (issue 11: the heap held a 64-byte history beside every 64-byte version). The store keeps the form
/// canonical, so a key with one live version is never a history (<see cref="MvccStore.AssertInvariants"/>): a put or
/// delete of a single key makes it a history, and a compaction that leaves one live version makes it single again. A
/// single version is immutable, so a frozen capture may share it; a history follows <see cref="KeyHistory"/>'s rules.
/// </remarks>
internal readonly struct KeyEntry
{
    private readonly object _item;

    public KeyEntry(KeyValue single)
    {
        Invariant.Check(single.Version > 0, "a key held as one version holds a live version");
        _item = single;
    }

    public KeyEntry(KeyHistory history) => _item = history;

    public static implicit operator KeyEntry(KeyHistory history) => new(history);

    /// <summary>Whether the slot holds nothing (the default value: an unused slot of a leaf).</summary>
    public bool IsEmpty => _item is null;

    /// <summary>The key's only version, when that is how it is held; otherwise null.</summary>
    public KeyValue? Single => _item as KeyValue;

    /// <summary>The key's history, when it has one; otherwise null.</summary>
    public KeyHistory? History => _item as KeyHistory;

    public byte[] Key => _item is KeyValue single ? single.Key : ((KeyHistory)_item).Key;

    /// <summary>Number of retained versions (tombstones included).</summary>
    public int Count => _item is KeyHistory history ? history.Count : 1;

    public KeyRevision this[int index]
    {
        get
        {
            if (_item is KeyHistory history) return history[index];
            Debug.Assert(index == 0, "a single version is at index 0");
            var single = (KeyValue)_item;
            return new KeyRevision(single.ModRevision, single);
        }
    }

    /// <summary>The newest retained version.</summary>
    public KeyRevision Last => this[Count - 1];

    /// <summary>The versions as they are now, for a <see cref="StoreImage"/> or a read on another thread.</summary>
    public CapturedHistory Capture() => _item is KeyHistory history
        ? history.Capture()
        : new CapturedHistory(((KeyValue)_item).Key, this[0], null, 1);
}

/// <summary>
/// A key's versions captured at one moment (see <see cref="KeyHistory.Capture"/>): immutable from then on, so it can be
/// read on another thread while the store keeps changing.
/// </summary>
internal readonly struct CapturedHistory(byte[] key, KeyRevision first, KeyRevision[]? rest, int count)
{
    public byte[] Key { get; } = key;


    public int Count { get; } = count;

    public KeyRevision this[int index] => index == 0 ? first : rest![index - 1];

    /// <summary>Index of the last version at or below <paramref name="revision"/>, -1 if none.</summary>
    public int LastAtOrBelow(long revision)
    {
        if (Count == 1) return first.Revision <= revision ? 0 : -1;
        int low = 0, high = Count - 1, found = -1;
        while (low <= high)
        {
            var mid = low + (high - low) / 2;
            if (this[mid].Revision <= revision) { found = mid; low = mid + 1; }
            else high = mid - 1;
        }
        return found;
    }
}

/// <summary>One change of a key: the version written at <paramref name="Revision"/>, or null for a delete.</summary>
internal readonly record struct KeyRevision(long Revision, KeyValue? Kv);

/// <summary>
/// One change in the watch history, as a struct in <see cref="RevisionLog"/>'s array (no object per event): the
/// version written (for a DELETE: key and mod revision only) and the version it replaced. Both are the same
/// <see cref="KeyValue"/> objects the index holds, so a value is stored once for index, history and prev_kv.
/// </summary>
/// <remarks>
/// 16 bytes, not 24: the type is not stored but read from the version (a put's version is at least 1, a delete event's
/// is 0), which the constructor checks, so a snapshot that decodes to a put of version 0 is refused, not turned into a
/// delete. A million retained revisions are 8 MB less.
/// </remarks>
internal readonly struct Change
{
    public Change(EventType type, KeyValue kv, KeyValue? prevKv)
    {
        Invariant.Check(type is EventType.Put or EventType.Delete, "an event is a put or a delete");
        Invariant.Check((type == EventType.Delete) == (kv.Version == 0), "a delete event has version 0 and a put a higher one");
        Kv = kv;
        PrevKv = prevKv;
    }

    /// <summary>PUT or DELETE.</summary>
    public EventType Type => Kv.Version == 0 ? EventType.Delete : EventType.Put;

    /// <summary>The version written (for DELETE: key and mod revision only).</summary>
    public KeyValue Kv { get; }

    /// <summary>The version the change replaced, or null if the key did not exist.</summary>
    public KeyValue? PrevKv { get; }

    public WatchEvent ToEvent() => new(Type, Kv, PrevKv);
}
