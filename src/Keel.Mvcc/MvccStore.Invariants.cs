using Keel.Core;

namespace Keel.Mvcc;

public sealed partial class MvccStore
{
    /// <summary>The size <see cref="SizeBytes"/> tracks, counted from scratch (restore and invariant checks).</summary>
    private long ComputeSizeBytes()
    {
        long size = 0;
        foreach (var history in _index)
        {
            size += KeyOverheadBytes + history.Key.Length;
            for (var i = 0; i < history.Count; i++) size += SizeOfEntry(history[i]);
        }
        size += SizeOfRecords(_log.Count, _log.ChangeCount);
        return size;
    }

    /// <summary>How many keys are held as their one live version, with no history object (tests of the representation).</summary>
    internal int CountKeysHeldAsOneVersion() => _index.Count(entry => entry.Single is not null);

    /// <summary>
    /// Checks every structural invariant (O(size of the store); for tests and the simulator): revisions and compaction
    /// in bounds; one log record per revision from the compaction (or 2) to the current, with non-decreasing
    /// timestamps; each key's versions in increasing revision order, stamped consistently (mod = revision, version +1
    /// per put within a generation, create = first put of the generation), at most one version at or below the
    /// compaction and that one live; every change logged above the compaction is in the index.
    /// </summary>
    /// <exception cref="InvariantViolationException">An invariant does not hold.</exception>
    public void AssertInvariants()
    {
        Invariant.Check(_currentRevision >= 1, "the store revision starts at 1");
        Invariant.Check(_compactRevision >= 0 && _compactRevision <= _currentRevision, "compaction is within the revisions");
        Invariant.Check(_pendingEvents.Count == 0, "no write is half applied");
        Invariant.Check(_sizeBytes == ComputeSizeBytes(), "the incremental size equals the size counted from scratch");

        var firstLogged = Math.Max(2, _compactRevision);
        Invariant.Check(_log.Count == Math.Max(0, _currentRevision - firstLogged + 1), "one log record per retained revision");
        for (var i = 0; i < _log.Count; i++)
        {
            Invariant.Check(_log.RevisionOf(i) == firstLogged + i, "log records are consecutive revisions");
            Invariant.Check(_log.ChangesOf(i).Length > 0, "a revision changes something");
            if (i > 0) Invariant.Check(_log.TimestampOf(i) >= _log.TimestampOf(i - 1), "hybrid timestamps never decrease");
        }
        if (_log.Count > 0) Invariant.Check(_log.TimestampOf(_log.Count - 1) == _lastHybridTimestamp, "the last timestamp is the last record's");

        _index.AssertInvariants();
        // The versions above the compaction, for the log check below: a set lookup per logged change instead of a
        // search of the index (a restore of a million keys runs this check; the searches were a quarter of it).
        // Sized up front: growing a set of a million versions rehashes it about twenty times (a restart runs this).
        var putsAboveCompaction = new HashSet<KeyValue>((int)Math.Min(_log.ChangeCount, int.MaxValue), ReferenceEqualityComparer.Instance);
        var tombstonesAboveCompaction = new HashSet<(byte[] Key, long Revision)>(TombstoneComparer.Instance);
        foreach (var history in _index)
        {
            Invariant.Check(history.History is not { } held || held.Generation <= _index.Generation, "no key history is newer than its index");
            var entries = history;
            Invariant.Check(entries.Count > 0, "an indexed key has a retained version");
            Invariant.Check(history.Single is not null || entries.Count > 1 || entries[0].Kv is null,
                "a key whose one retained version is live is held as that version (no history object)");
            Invariant.Check(entries[0].Kv is not null, "a key's history starts with a put");
            for (var i = 0; i < entries.Count; i++)
            {
                var entry = entries[i];
                Invariant.Check(entry.Revision >= 2 && entry.Revision <= _currentRevision, "versions are within the revisions");
                if (i > 0)
                {
                    Invariant.Check(entry.Revision > entries[i - 1].Revision, "a key's versions are in revision order");
                    Invariant.Check(entry.Revision > _compactRevision, "at most one version at or below the compaction");
                }
                if (entry.Kv is not { } kv)
                {
                    if (entry.Revision > _compactRevision) tombstonesAboveCompaction.Add((history.Key, entry.Revision));
                    continue;
                }
                Invariant.Check(kv.ModRevision == entry.Revision && ReferenceEquals(kv.Key, history.Key), "a version is stamped with its revision and key");
                if (entry.Revision > _compactRevision) putsAboveCompaction.Add(kv);
                var previous = i > 0 ? entries[i - 1].Kv : null;
                if (previous is not null)
                    Invariant.Check(kv.Version == previous.Version + 1 && kv.CreateRevision == previous.CreateRevision, "a put in a generation adds 1 to the version");
                else if (i > 0 || entry.Revision > _compactRevision)
                    Invariant.Check(kv.Version == 1 && kv.CreateRevision == entry.Revision, "a generation starts with version 1 at its create revision");
                else
                    Invariant.Check(kv.Version >= 1 && kv.CreateRevision <= entry.Revision, "a compacted generation keeps its stamps");
            }
        }

        if (_values is not null) AssertValueSegments(_values);

        for (var r = 0; r < _log.Count; r++)
        {
            var revision = _log.RevisionOf(r);
            if (revision <= _compactRevision) continue;
            foreach (var change in _log.ChangesOf(r))
            {
                Invariant.Check(change.Kv.ModRevision == revision, "an event carries its revision");
                // A put's version is the very object the index holds at that revision (one copy of each value; the
                // index check above tied each held version to its key and revision); a delete is a tombstone there.
                if (change.Type == EventType.Put)
                    Invariant.Check(putsAboveCompaction.Contains(change.Kv), "a logged put is the index's version (one copy of each value)");
                else
                    Invariant.Check(tombstonesAboveCompaction.Contains((change.Kv.Key, revision)), "a logged delete is a tombstone in the index");
            }
        }
    }

    /// <summary>
    /// The value segments' counts are what the index refers to: every value the index holds in a segment is in one the
    /// arena still counts (compaction moved the values out of every segment it retired), and each segment's live bytes,
    /// and their sum, are the lengths of those values.
    /// </summary>
    private void AssertValueSegments(ValueArena values)
    {
        var inUse = new Dictionary<ValueSegment, long>(ReferenceEqualityComparer.Instance);
        foreach (var segment in values.SegmentsInUse()) inUse.Add(segment, 0);
        long live = 0;
        foreach (var entries in _index)
            for (var i = 0; i < entries.Count; i++)
            {
                if (entries[i].Kv?.Segment is not { } segment) continue;
                Invariant.Check(inUse.TryGetValue(segment, out var bytes), "an indexed value is in a segment the store still counts");
                inUse[segment] = bytes + entries[i].Kv!.ValueLength;
                live += entries[i].Kv!.ValueLength;
            }
        Invariant.Check(live == values.LiveBytes, "the live value bytes are those the index refers to");
        foreach (var (segment, bytes) in inUse)
            Invariant.Check(segment.LiveBytes == bytes, "a segment's live bytes are those the index refers to in it");
    }

    /// <summary>A tombstone by key content and revision.</summary>
    private sealed class TombstoneComparer : IEqualityComparer<(byte[] Key, long Revision)>
    {
        public static readonly TombstoneComparer Instance = new();

        public bool Equals((byte[] Key, long Revision) x, (byte[] Key, long Revision) y) =>
            x.Revision == y.Revision && ByteKeyComparer.Instance.Equals(x.Key, y.Key);

        public int GetHashCode((byte[] Key, long Revision) obj) => HashCode.Combine(ByteKeyComparer.Instance.GetHashCode(obj.Key), obj.Revision);
    }
}
