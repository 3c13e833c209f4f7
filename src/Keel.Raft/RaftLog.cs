using System.Diagnostics;
using Keel.Core;

namespace Keel.Raft;

/// <summary>
/// The log of one node: the stable part in <see cref="IRaftStorage"/> plus the unstable tail not yet persisted (and
/// possibly a snapshot received from the leader), with the commit and apply cursors. Mirrors etcd-io/raft
/// <c>log.go</c> and <c>log_unstable.go</c>, including the "in progress" cursor that lets a driver persist
/// asynchronously while the node keeps producing batches.
/// </summary>
public sealed class RaftLog
{
    private readonly IRaftStorage _storage;
    private readonly List<Entry> _unstable = [];
    private Snapshot? _unstableSnapshot;
    private bool _snapshotInProgress;
    private ulong _offset;            // index of _unstable[0]
    private ulong _offsetInProgress;  // entries below this were handed to a Ready and are being persisted
    private ulong _committed;

    /// <summary>Creates the log over what storage holds; committed and applied start at the snapshot index.</summary>
    public RaftLog(IRaftStorage storage)
    {
        _storage = storage ?? throw new ArgumentNullException(nameof(storage));
        _offset = storage.LastIndex + 1;
        _offsetInProgress = _offset;
        _committed = storage.FirstIndex - 1;
        Applying = Applied = _committed;
    }

    /// <summary>The highest index known to be committed. Never decreases, never exceeds <see cref="LastIndex"/>.</summary>
    public ulong Committed => _committed;

    /// <summary>The highest index handed to the application for applying.</summary>
    public ulong Applying { get; private set; }

    /// <summary>The highest index the application reported applied.</summary>
    public ulong Applied { get; private set; }

    /// <summary>The storage the stable part lives in.</summary>
    public IRaftStorage Storage => _storage;

    /// <summary>The first index still held (in storage or after an unstable snapshot).</summary>
    public ulong FirstIndex => _unstableSnapshot is { } s ? s.Metadata.Index + 1 : _storage.FirstIndex;

    /// <summary>The last index, including the unstable tail.</summary>
    public ulong LastIndex
    {
        get
        {
            if (_unstable.Count > 0) return _offset + (ulong)_unstable.Count - 1;
            if (_unstableSnapshot is { } s) return s.Metadata.Index;
            return _storage.LastIndex;
        }
    }

    /// <summary>The term of the last entry.</summary>
    public ulong LastTerm
    {
        get
        {
            var status = TryGetTerm(LastIndex, out var term);
            Invariant.Check(status == StorageStatus.Ok, "the term of the last entry must be known");
            return term;
        }
    }

    /// <summary>The last index known to be durable on this node: what it may count towards commit.</summary>
    public ulong PersistedIndex => _unstableSnapshot is not null ? 0 : _offset - 1;

    /// <summary>True when an unstable snapshot waits to be persisted or is being persisted.</summary>
    public bool HasPendingSnapshot => _unstableSnapshot is not null;

    /// <summary>The latest snapshot: an unstable one received from the leader, else storage's.</summary>
    public Snapshot Snapshot => _unstableSnapshot ?? _storage.Snapshot;

    /// <summary>The term of the entry at <paramref name="index"/>; valid range [FirstIndex - 1, LastIndex].</summary>
    public StorageStatus TryGetTerm(ulong index, out ulong term)
    {
        term = 0;
        var first = FirstIndex;
        if (index + 1 < first) return StorageStatus.Compacted;
        if (index > LastIndex) return StorageStatus.Unavailable;
        if (index >= _offset && _unstable.Count > 0)
        {
            term = _unstable[(int)(index - _offset)].Term;
            return StorageStatus.Ok;
        }
        if (_unstableSnapshot is { } s)
        {
            if (index == s.Metadata.Index)
            {
                term = s.Metadata.Term;
                return StorageStatus.Ok;
            }
            return StorageStatus.Compacted;
        }
        return _storage.TryGetTerm(index, out term);
    }

    /// <summary>True when the entry at <paramref name="index"/> exists and has <paramref name="term"/>.</summary>
    public bool MatchTerm(ulong index, ulong term) => TryGetTerm(index, out var t) == StorageStatus.Ok && t == term;

    /// <summary>
    /// The election restriction (Raft 5.4.1): a candidate whose last entry is (<paramref name="lastTerm"/>,
    /// <paramref name="lastIndex"/>) is at least as up to date as this log.
    /// </summary>
    public bool IsUpToDate(ulong lastIndex, ulong lastTerm)
    {
        var myTerm = LastTerm;
        return lastTerm > myTerm || (lastTerm == myTerm && lastIndex >= LastIndex);
    }

    /// <summary>Entries [<paramref name="low"/>, <paramref name="high"/>) limited to <paramref name="maxBytes"/> (at least one).</summary>
    public StorageStatus TryGetEntries(ulong low, ulong high, long maxBytes, List<Entry> into)
    {
        if (low >= high) return StorageStatus.Ok;
        if (low < FirstIndex) return StorageStatus.Compacted;
        if (high > LastIndex + 1) return StorageStatus.Unavailable;
        long size = 0;
        var start = into.Count;
        if (low < _offset)
        {
            var status = _storage.TryGetEntries(low, Math.Min(high, _offset), maxBytes, into);
            if (status != StorageStatus.Ok) return status;
            for (var i = start; i < into.Count; i++) size += into[i].PayloadBytes;
            // Storage stopped early at the byte limit: do not continue with unstable entries.
            if ((ulong)(into.Count - start) < Math.Min(high, _offset) - low) return StorageStatus.Ok;
        }
        for (var i = Math.Max(low, _offset); i < high; i++)
        {
            var entry = _unstable[(int)(i - _offset)];
            size += entry.PayloadBytes;
            if (into.Count > start && size > maxBytes) break;
            into.Add(entry);
        }
        return StorageStatus.Ok;
    }

    /// <summary>
    /// Appends entries after a log-matching check done by the caller; a conflicting unstable tail is replaced.
    /// Committed entries are never overwritten.
    /// </summary>
    /// <returns>The new last index.</returns>
    internal ulong Append(IReadOnlyList<Entry> entries)
    {
        if (entries.Count == 0) return LastIndex;
        var after = entries[0].Index - 1;
        Invariant.Check(after >= _committed, "an append must never overwrite a committed entry");
        Invariant.Check(after <= LastIndex, "an append must not leave a gap in the log");
        for (var i = 1; i < entries.Count; i++)
        {
            Invariant.Check(entries[i].Index == entries[i - 1].Index + 1, "appended entries must be contiguous");
            Invariant.Check(entries[i].Term >= entries[i - 1].Term, "terms in the log never decrease");
        }
        if (after > 0)
        {
            Invariant.Check(TryGetTerm(after, out var prevTerm) != StorageStatus.Ok || prevTerm <= entries[0].Term,
                "an appended entry may not have a lower term than its predecessor");
        }
        TruncateAndAppend(entries);
        return LastIndex;
    }

    private void TruncateAndAppend(IReadOnlyList<Entry> entries)
    {
        var from = entries[0].Index;
        var end = _offset + (ulong)_unstable.Count;
        if (from == end)
        {
            _unstable.AddRange(entries);
        }
        else if (from <= _offset)
        {
            // Replaces the whole unstable tail and the stored entries from 'from' on; the driver's storage append
            // truncates them when it persists these.
            _unstable.Clear();
            _unstable.AddRange(entries);
            _offset = from;
            _offsetInProgress = _offset;
        }
        else
        {
            _unstable.RemoveRange((int)(from - _offset), _unstable.Count - (int)(from - _offset));
            _unstable.AddRange(entries);
            _offsetInProgress = Math.Min(_offsetInProgress, from);
        }
    }

    /// <summary>
    /// etcd <c>findConflict</c>: the index of the first entry of <paramref name="entries"/> that conflicts with the log
    /// or is new; 0 when every entry is already present.
    /// </summary>
    public ulong FindConflict(IReadOnlyList<Entry> entries)
    {
        foreach (var entry in entries)
        {
            if (!MatchTerm(entry.Index, entry.Term)) return entry.Index;
        }
        return 0;
    }

    /// <summary>
    /// etcd <c>findConflictByTerm</c>: the largest index at or below <paramref name="index"/> whose term is at most
    /// <paramref name="term"/>, with that term. Lets a rejection skip a whole term of mismatching entries at once.
    /// </summary>
    public (ulong Index, ulong Term) FindConflictByTerm(ulong index, ulong term)
    {
        for (; index > 0; index--)
        {
            if (TryGetTerm(index, out var ourTerm) != StorageStatus.Ok) return (index, 0);
            if (ourTerm <= term) return (index, ourTerm);
        }
        return (0, 0);
    }

    /// <summary>
    /// The follower side of AppendEntries (etcd <c>maybeAppend</c>): if the entry at <paramref name="prevIndex"/> has
    /// <paramref name="prevTerm"/>, append the new part of <paramref name="entries"/> and advance the commit index.
    /// </summary>
    /// <returns>The last index the message proves to match the leader's log, or null when the check fails.</returns>
    internal ulong? MaybeAppend(ulong prevIndex, ulong prevTerm, ulong leaderCommit, IReadOnlyList<Entry> entries)
    {
        if (!MatchTerm(prevIndex, prevTerm)) return null;
        var lastNew = prevIndex + (ulong)entries.Count;
        var conflict = FindConflict(entries);
        if (conflict != 0)
        {
            Invariant.Check(conflict > _committed, "a conflicting entry must never be committed (log matching)");
            var skip = (int)(conflict - (prevIndex + 1));
            Append(skip == 0 ? entries : entries.Skip(skip).ToArray());
        }
        CommitTo(Math.Min(leaderCommit, lastNew));
        return lastNew;
    }

    /// <summary>Raises the commit index; never lowers it. Beyond the last index is a caller bug.</summary>
    internal void CommitTo(ulong index)
    {
        if (index <= _committed) return;
        Invariant.Check(index <= LastIndex, "commit index may never exceed the last index");
        _committed = index;
    }

    /// <summary>Records that the application applied everything up to <paramref name="index"/>.</summary>
    internal void AppliedTo(ulong index)
    {
        if (index <= Applied) return;
        Invariant.Check(index <= _committed, "only committed entries can be applied");
        Applied = index;
        if (Applying < index) Applying = index;
    }

    /// <summary>Unstable entries not yet handed to a Ready.</summary>
    internal IReadOnlyList<Entry> NextUnstableEntries()
    {
        var start = (int)(_offsetInProgress - _offset);
        if (start >= _unstable.Count) return [];
        return _unstable.GetRange(start, _unstable.Count - start);
    }

    /// <summary>An unstable snapshot not yet handed to a Ready.</summary>
    internal Snapshot? NextUnstableSnapshot() => _snapshotInProgress ? null : _unstableSnapshot;

    internal bool HasNextUnstableEntries => _offsetInProgress < _offset + (ulong)_unstable.Count;

    /// <summary>Marks everything unstable as handed to the driver, so the next Ready does not repeat it.</summary>
    internal void AcceptUnstable()
    {
        _offsetInProgress = _offset + (ulong)_unstable.Count;
        _snapshotInProgress = _unstableSnapshot is not null;
    }

    internal bool HasNextCommittedEntries => !HasPendingSnapshot && _committed > Applying;

    /// <summary>Committed entries not yet handed out for applying (none while a snapshot is pending).</summary>
    internal List<Entry> NextCommittedEntries()
    {
        var result = new List<Entry>();
        if (!HasNextCommittedEntries) return result;
        var status = TryGetEntries(Applying + 1, _committed + 1, long.MaxValue, result);
        Invariant.Check(status == StorageStatus.Ok, "committed entries to apply must be available");
        return result;
    }

    internal void AcceptApplying(ulong index)
    {
        Debug.Assert(index <= _committed);
        if (index > Applying) Applying = index;
    }

    /// <summary>
    /// The driver made entries up to (<paramref name="index"/>, <paramref name="term"/>) durable. Ignored when the
    /// entry was since replaced by a newer leader's (then a later write covers it).
    /// </summary>
    internal bool StableTo(ulong index, ulong term)
    {
        if (_unstable.Count == 0 || index < _offset) return false;
        if (index >= _offset + (ulong)_unstable.Count) return false;
        if (_unstable[(int)(index - _offset)].Term != term) return false;
        var count = (int)(index + 1 - _offset);
        _unstable.RemoveRange(0, count);
        _offset = index + 1;
        _offsetInProgress = Math.Max(_offsetInProgress, _offset);
        return true;
    }

    /// <summary>The driver made the unstable snapshot at <paramref name="index"/> durable.</summary>
    internal bool StableSnapshotTo(ulong index)
    {
        if (_unstableSnapshot is null || _unstableSnapshot.Metadata.Index != index) return false;
        _unstableSnapshot = null;
        _snapshotInProgress = false;
        return true;
    }

    /// <summary>Replaces the log with a snapshot from the leader (etcd <c>raftLog.restore</c>).</summary>
    internal void Restore(Snapshot snapshot)
    {
        Invariant.Check(snapshot.Metadata.Index > _committed, "a restored snapshot must be newer than the commit index");
        _committed = snapshot.Metadata.Index;
        _unstable.Clear();
        _offset = snapshot.Metadata.Index + 1;
        _offsetInProgress = _offset;
        _unstableSnapshot = snapshot;
        _snapshotInProgress = false;
    }

    /// <summary>The snapshot was applied to the state machine: the apply cursors jump to its index.</summary>
    internal void AppliedSnapshot(ulong index)
    {
        if (index > Applied) Applied = index;
        if (index > Applying) Applying = index;
    }

    /// <summary>Sets the commit index from a persisted hard state at startup.</summary>
    internal void LoadCommit(ulong commit)
    {
        if (commit < _committed) return; // hard state older than the snapshot: the snapshot wins
        if (commit > LastIndex)
            throw new InvalidOperationException($"persisted commit {commit} is beyond the last stored index {LastIndex}: storage lost entries");
        _committed = commit;
    }

    /// <summary>Checks the cursors and the unstable tail.</summary>
    public void AssertInvariants()
    {
        Invariant.Check(Applied <= Applying && Applying <= _committed, "applied <= applying <= committed");
        Invariant.Check(_committed <= LastIndex, "commit index may never exceed the last index");
        Invariant.Check(_offsetInProgress >= _offset && _offsetInProgress <= _offset + (ulong)_unstable.Count,
            "the in-progress cursor lies within the unstable tail");
        for (var i = 0; i < _unstable.Count; i++)
        {
            Invariant.Check(_unstable[i].Index == _offset + (ulong)i, "unstable entries are contiguous from the offset");
            if (i > 0) Invariant.Check(_unstable[i].Term >= _unstable[i - 1].Term, "terms in the log never decrease");
        }
        if (_unstableSnapshot is { } s) Invariant.Check(_offset == s.Metadata.Index + 1 || _unstable.Count > 0, "entries follow the unstable snapshot");
        Invariant.Check(FirstIndex <= LastIndex + 1, "first index at most last index + 1");
    }
}
