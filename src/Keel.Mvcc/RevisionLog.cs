using System.Runtime.InteropServices;

namespace Keel.Mvcc;

/// <summary>
/// The watch history: for every retained revision (consecutive, from <see cref="FirstRevision"/>) its hybrid
/// timestamp and the changes it made, in three flat struct lists instead of an object and an array per revision and
/// an object per event (about 75 bytes less per single-key revision). Record <c>i</c> is revision
/// <c>FirstRevision + i</c>; its changes are <c>[start[i], start[i + 1])</c> in the change list, positions counted
/// from the first change ever logged so compaction only drops a prefix.
/// </summary>
internal sealed class RevisionLog
{
    private readonly List<long> _timestamps = [];
    private readonly List<long> _changeStarts = [];
    private readonly List<Change> _changes = [];
    private long _changesDropped;

    /// <summary>Revision of record 0 (meaningless while empty).</summary>
    public long FirstRevision { get; private set; }

    /// <summary>Number of retained revisions.</summary>
    public int Count => _timestamps.Count;

    /// <summary>Number of retained changes over all revisions.</summary>
    public int ChangeCount => _changes.Count;

    public long RevisionOf(int index) => FirstRevision + index;

    public long TimestampOf(int index) => _timestamps[index];

    /// <summary>The changes of record <paramref name="index"/>, in write order. Valid until the log changes.</summary>
    public ReadOnlySpan<Change> ChangesOf(int index)
    {
        var start = (int)(_changeStarts[index] - _changesDropped);
        var end = index + 1 < _changeStarts.Count ? (int)(_changeStarts[index + 1] - _changesDropped) : _changes.Count;
        return CollectionsMarshal.AsSpan(_changes)[start..end];
    }

    /// <summary>Appends the next revision's record.</summary>
    public void Add(long revision, long hybridTimestamp, ReadOnlySpan<Change> changes)
    {
        if (Count == 0) FirstRevision = revision;
        Keel.Core.Invariant.Check(revision == FirstRevision + Count, "log records are consecutive revisions");
        _timestamps.Add(hybridTimestamp);
        _changeStarts.Add(_changesDropped + _changes.Count);
        _changes.AddRange(changes);
    }

    /// <summary>
    /// Copies the log as it is now (three flat arrays, no per-record object), for a <see cref="StoreImage"/> that is
    /// encoded on another thread: the lists are shifted in place by compaction, so they cannot be shared.
    /// </summary>
    public CapturedRevisionLog Capture()
    {
        var starts = new long[_changeStarts.Count];
        for (var i = 0; i < starts.Length; i++) starts[i] = _changeStarts[i] - _changesDropped;
        return new CapturedRevisionLog(FirstRevision, _timestamps.ToArray(), starts, _changes.ToArray());
    }

    /// <summary>Drops every record below <paramref name="revision"/>; returns how many records and changes went.</summary>
    public (int Records, int Changes) DropBelow(long revision)
    {
        if (Count == 0 || revision <= FirstRevision) return (0, 0);
        var records = (int)Math.Min(Count, revision - FirstRevision);
        var keptFrom = records < Count ? _changeStarts[records] : _changesDropped + _changes.Count;
        var changes = (int)(keptFrom - _changesDropped);
        _timestamps.RemoveRange(0, records);
        _changeStarts.RemoveRange(0, records);
        _changes.RemoveRange(0, changes);
        _changesDropped = keptFrom;
        FirstRevision += records;
        return (records, changes);
    }
}

/// <summary>The watch history captured at one moment (see <see cref="RevisionLog.Capture"/>); change positions start at 0.</summary>
internal sealed class CapturedRevisionLog(long firstRevision, long[] timestamps, long[] changeStarts, Change[] changes)
{
    public int Count => timestamps.Length;

    public long RevisionOf(int index) => firstRevision + index;

    public long TimestampOf(int index) => timestamps[index];

    public ReadOnlySpan<Change> ChangesOf(int index)
    {
        var start = (int)changeStarts[index];
        var end = index + 1 < changeStarts.Length ? (int)changeStarts[index + 1] : changes.Length;
        return changes.AsSpan(start, end - start);
    }
}
