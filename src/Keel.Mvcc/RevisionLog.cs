namespace Keel.Mvcc;

/// <summary>
/// The watch history: for every retained revision (consecutive, from <see cref="FirstRevision"/>) its hybrid
/// timestamp and the changes it made, in three flat chunked sequences instead of an object and an array per revision
/// and an object per event (about 75 bytes less per single-key revision). Record <c>i</c> is revision
/// <c>FirstRevision + i</c>; its changes are <c>[start[i], start[i + 1])</c> in the change sequence, positions counted
/// from the first change ever logged so compaction only drops a prefix. <see cref="Capture"/> is O(revisions / 1,024):
/// the sequences are append-only (<see cref="ChunkedLog{T}"/>).
/// </summary>
internal sealed class RevisionLog
{
    private readonly ChunkedLog<long> _timestamps = new();
    private readonly ChunkedLog<long> _changeStarts = new();
    private readonly ChunkedLog<Change> _changes = new();

    /// <summary>Revision of record 0 (meaningless while empty).</summary>
    public long FirstRevision { get; private set; }

    /// <summary>Number of retained revisions.</summary>
    public int Count => (int)_timestamps.Count;

    /// <summary>Number of retained changes over all revisions.</summary>
    public long ChangeCount => _changes.Count;

    public long RevisionOf(int index) => FirstRevision + index;

    public long TimestampOf(int index) => _timestamps[_timestamps.Start + index];

    /// <summary>The changes of record <paramref name="index"/>, in write order. Valid until the log drops them.</summary>
    public ChangeList ChangesOf(int index)
    {
        var record = _changeStarts.Start + index;
        var end = record + 1 < _changeStarts.End ? _changeStarts[record + 1] : _changes.End;
        return new ChangeList(_changes, default, _changeStarts[record], end);
    }

    /// <summary>Appends the next revision's record.</summary>
    public void Add(long revision, long hybridTimestamp, ReadOnlySpan<Change> changes)
    {
        if (Count == 0) FirstRevision = revision;
        Keel.Core.Invariant.Check(revision == FirstRevision + Count, "log records are consecutive revisions");
        _timestamps.Add(hybridTimestamp);
        _changeStarts.Add(_changes.End);
        foreach (var change in changes) _changes.Add(change);
    }

    /// <summary>
    /// The log as it is now, for a <see cref="StoreImage"/> encoded on another thread: the chunk references of the three
    /// sequences (nothing a capture reaches is written again).
    /// </summary>
    public CapturedRevisionLog Capture() => new(FirstRevision, _timestamps.Freeze(), _changeStarts.Freeze(), _changes.Freeze());

    /// <summary>
    /// Replaces the versions the retained changes refer to by <paramref name="map"/>'s answer (values moved to another
    /// segment), copy-on-write per chunk so a capture keeps what it saw.
    /// </summary>
    public void MapVersions(Func<KeyValue, KeyValue> map) =>
        _changes.MapRetained(change =>
        {
            var kv = map(change.Kv);
            var prev = change.PrevKv is { } before ? map(before) : null;
            return ReferenceEquals(kv, change.Kv) && ReferenceEquals(prev, change.PrevKv) ? (false, change) : (true, new Change(change.Type, kv, prev));
        });

    /// <summary>Drops every record below <paramref name="revision"/>; returns how many records and changes went.</summary>
    public (int Records, long Changes) DropBelow(long revision)
    {
        if (Count == 0 || revision <= FirstRevision) return (0, 0);
        var records = (int)Math.Min(Count, revision - FirstRevision);
        var keptFrom = records < Count ? _changeStarts[_changeStarts.Start + records] : _changes.End;
        var changes = keptFrom - _changes.Start;
        _timestamps.DropBefore(_timestamps.Start + records);
        _changeStarts.DropBefore(_changeStarts.Start + records);
        _changes.DropBefore(keptFrom);
        FirstRevision += records;
        return (records, changes);
    }
}

/// <summary>The watch history captured at one moment (see <see cref="RevisionLog.Capture"/>).</summary>
internal sealed class CapturedRevisionLog
{
    private readonly long _firstRevision;
    private readonly ChunkedLog<long>.Frozen _timestamps;
    private readonly ChunkedLog<long>.Frozen _changeStarts;
    private readonly ChunkedLog<Change>.Frozen _changes;

    internal CapturedRevisionLog(long firstRevision, ChunkedLog<long>.Frozen timestamps, ChunkedLog<long>.Frozen changeStarts,
        ChunkedLog<Change>.Frozen changes)
    {
        _firstRevision = firstRevision;
        _timestamps = timestamps;
        _changeStarts = changeStarts;
        _changes = changes;
    }

    public int Count => (int)(_timestamps.End - _timestamps.Start);

    public long RevisionOf(int index) => _firstRevision + index;

    public long TimestampOf(int index) => _timestamps[_timestamps.Start + index];

    public ChangeList ChangesOf(int index)
    {
        var record = _changeStarts.Start + index;
        var end = record + 1 < _changeStarts.End ? _changeStarts[record + 1] : _changes.End;
        return new ChangeList(null, _changes, _changeStarts[record], end);
    }
}

/// <summary>
/// The changes of one revision: positions <c>[start, end)</c> of the live change sequence or of a frozen one (a
/// revision's changes may span two chunks, so this is not a span). Enumerable with <c>foreach</c>.
/// </summary>
internal readonly struct ChangeList(ChunkedLog<Change>? live, ChunkedLog<Change>.Frozen frozen, long start, long end)
{
    public int Length => (int)(end - start);

    public Change this[int index] => live is not null ? live[start + index] : frozen[start + index];

    public Enumerator GetEnumerator() => new(this);

    /// <summary>Walks the changes in write order.</summary>
    public struct Enumerator(ChangeList list)
    {
        private int _next = -1;

        public readonly Change Current => list[_next];

        public bool MoveNext() => ++_next < list.Length;
    }
}
