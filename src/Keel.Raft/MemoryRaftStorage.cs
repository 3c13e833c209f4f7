using Keel.Core;
using Keel.Quorum;

namespace Keel.Raft;

/// <summary>
/// An in-memory <see cref="IRaftStorage"/> (etcd <c>MemoryStorage</c>), for tests and the simulator. The driver calls
/// <see cref="SetHardState"/>, <see cref="Append"/> and <see cref="ApplySnapshot"/> while it handles a <see cref="Ready"/>,
/// and <see cref="CreateSnapshot(ulong, Membership, ReadOnlyMemory{byte})"/> when the application has a state image.
/// </summary>
public sealed class MemoryRaftStorage : IRaftStorage
{
    // _entries[0] stands for the snapshot's last entry (index and term only), like etcd's dummy entry.
    private readonly List<Entry> _entries = [];
    private HardState _hardState;
    private Snapshot _snapshot;

    // Entries at or below _releasedThrough hold no payload here (their index and term stay): they are read back from
    // _archive. Only applied, durable entries are released, so none of them is ever overwritten.
    private ulong _releasedThrough;
    private IRaftEntryArchive? _archive;
    private long _payloadBytesInMemory;

    /// <summary>Creates an empty log whose initial configuration is <paramref name="bootstrap"/>.</summary>
    public MemoryRaftStorage(Membership bootstrap)
    {
        ArgumentNullException.ThrowIfNull(bootstrap);
        _snapshot = new Snapshot(new SnapshotMetadata(0, 0, bootstrap), ReadOnlyMemory<byte>.Empty);
        _entries.Add(new Entry(0, 0, EntryType.Normal, ReadOnlyMemory<byte>.Empty));
    }

    /// <summary>Bytes of entry payloads held in memory (entries not released to the archive).</summary>
    public long PayloadBytesInMemory => _payloadBytesInMemory;

    /// <summary>The highest index whose payload was released to the archive (0: none).</summary>
    public ulong ReleasedThroughIndex => _releasedThrough;

    /// <summary>The persisted hard state.</summary>
    public HardState HardState => _hardState;

    /// <inheritdoc/>
    public Snapshot Snapshot => _snapshot;

    /// <inheritdoc/>
    public ulong FirstIndex => _entries[0].Index + 1;

    /// <inheritdoc/>
    public ulong LastIndex => _entries[0].Index + (ulong)_entries.Count - 1;

    /// <inheritdoc/>
    public RaftInitialState InitialState() => new(_hardState, _snapshot.Metadata.Membership);

    /// <summary>Persists the hard state.</summary>
    public void SetHardState(HardState hardState) => _hardState = hardState;

    /// <inheritdoc/>
    public StorageStatus TryGetTerm(ulong index, out ulong term)
    {
        term = 0;
        var offset = _entries[0].Index;
        if (index < offset) return StorageStatus.Compacted;
        if (index - offset >= (ulong)_entries.Count) return StorageStatus.Unavailable;
        term = _entries[(int)(index - offset)].Term;
        return StorageStatus.Ok;
    }

    /// <inheritdoc/>
    public StorageStatus TryGetEntries(ulong low, ulong high, long maxBytes, List<Entry> into)
    {
        var offset = _entries[0].Index;
        if (low <= offset) return StorageStatus.Compacted;
        if (high > LastIndex + 1) return StorageStatus.Unavailable;
        long size = 0;
        var i = low;
        if (i <= _releasedThrough)
        {
            var archivedHigh = Math.Min(high, _releasedThrough + 1);
            var first = into.Count;
            _archive!.ReadEntries(i, archivedHigh, maxBytes, into);
            Invariant.Check(into.Count > first, "the archive returns at least one entry");
            for (var k = first; k < into.Count; k++, i++)
            {
                var read = into[k];
                var held = _entries[(int)(i - offset)];
                Invariant.Check(read.Index == i && read.Term == held.Term && read.Type == held.Type,
                    "an entry read back from the archive is the one the log holds (index, term and type)");
                size += read.PayloadBytes;
            }
            if (i < archivedHigh) return StorageStatus.Ok;
        }
        for (; i < high; i++)
        {
            var entry = _entries[(int)(i - offset)];
            size += entry.PayloadBytes;
            if (i > low && size > maxBytes) break;
            into.Add(entry);
        }
        return StorageStatus.Ok;
    }

    /// <summary>
    /// Appends entries, overwriting any conflicting tail (a new leader may replace uncommitted entries). Entries already
    /// compacted are skipped.
    /// </summary>
    public void Append(IReadOnlyList<Entry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        if (entries.Count == 0) return;
        var first = FirstIndex;
        var lastNew = entries[^1].Index;
        if (lastNew < first) return;
        var skip = first > entries[0].Index ? (int)(first - entries[0].Index) : 0;
        var start = entries[skip].Index;
        Invariant.Check(start <= LastIndex + 1, "storage append must not leave a gap in the log");
        Invariant.Check(start > _releasedThrough, "an entry released to the archive (applied) is never overwritten");
        var keep = (int)(start - _entries[0].Index);
        for (var i = keep; i < _entries.Count; i++) _payloadBytesInMemory -= _entries[i].Data.Length;
        _entries.RemoveRange(keep, _entries.Count - keep);
        for (var i = skip; i < entries.Count; i++)
        {
            Invariant.Check(entries[i].Index == start + (ulong)(i - skip), "appended entries must be contiguous");
            _entries.Add(entries[i]);
            _payloadBytesInMemory += entries[i].Data.Length;
        }
    }

    /// <summary>Replaces the log with a snapshot received from the leader; older snapshots are ignored.</summary>
    /// <returns>False when the snapshot is older than the one held.</returns>
    public bool ApplySnapshot(Snapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        if (snapshot.Metadata.Index <= _snapshot.Metadata.Index) return false;
        _snapshot = snapshot;
        _entries.Clear();
        _payloadBytesInMemory = 0;
        // Nothing at or below the snapshot is held any more; nothing above it was released.
        _releasedThrough = snapshot.Metadata.Index;
        _entries.Add(new Entry(snapshot.Metadata.Index, snapshot.Metadata.Term, EntryType.Normal, ReadOnlyMemory<byte>.Empty));
        return true;
    }

    /// <summary>
    /// Records the application's state image at <paramref name="index"/> (which must be applied, hence stored). The
    /// entries stay until <see cref="Compact"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The index is older than the current snapshot or beyond the log.</exception>
    public Snapshot CreateSnapshot(ulong index, Membership membership, ReadOnlyMemory<byte> data) =>
        _snapshot = new Snapshot(NewSnapshotMetadata(index, membership), data);

    /// <summary>As <see cref="CreateSnapshot(ulong, Membership, ReadOnlyMemory{byte})"/>, for an image kept in a file.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The index is older than the current snapshot or beyond the log.</exception>
    public Snapshot CreateSnapshot(ulong index, Membership membership, IStoredSnapshotData stored)
    {
        ArgumentNullException.ThrowIfNull(stored);
        return _snapshot = new Snapshot(NewSnapshotMetadata(index, membership), stored);
    }

    /// <summary>
    /// Swaps the image of the snapshot held at <paramref name="index"/> for the same image kept in a file (once the
    /// application has stored it), so memory no longer holds it. Returns false when the snapshot held is another one.
    /// </summary>
    public bool MoveSnapshotToStorage(ulong index, IStoredSnapshotData stored)
    {
        ArgumentNullException.ThrowIfNull(stored);
        if (_snapshot.Metadata.Index != index || _snapshot.Stored is not null) return false;
        Invariant.Check(stored.LengthBytes == _snapshot.Data.Length, "the stored image has the size of the one in memory");
        _snapshot = new Snapshot(_snapshot.Metadata, stored);
        return true;
    }

    /// <summary>The metadata of a new snapshot at <paramref name="index"/>, which must be above the current one and stored.</summary>
    private SnapshotMetadata NewSnapshotMetadata(ulong index, Membership membership)
    {
        ArgumentNullException.ThrowIfNull(membership);
        if (index <= _snapshot.Metadata.Index)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"snapshot index must be above the current snapshot {_snapshot.Metadata.Index}");
        if (index > LastIndex)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"snapshot index is beyond the last stored entry {LastIndex}");
        TryGetTerm(index, out var term);
        return new SnapshotMetadata(index, term, membership);
    }

    /// <inheritdoc/>
    /// <exception cref="ArgumentOutOfRangeException">The index is beyond the snapshot (the entries would be lost).</exception>
    public void Compact(ulong compactIndex)
    {
        var offset = _entries[0].Index;
        if (compactIndex <= offset) return;
        if (compactIndex > _snapshot.Metadata.Index)
            throw new ArgumentOutOfRangeException(nameof(compactIndex), compactIndex,
                $"cannot compact beyond the snapshot index {_snapshot.Metadata.Index}: those entries are in no snapshot");
        var cut = (int)(compactIndex - offset);
        for (var i = 1; i <= cut; i++) _payloadBytesInMemory -= _entries[i].Data.Length;
        var dummy = _entries[cut];
        _entries.RemoveRange(0, cut);
        _entries[0] = new Entry(dummy.Index, dummy.Term, EntryType.Normal, ReadOnlyMemory<byte>.Empty);
    }

    /// <summary>Checks the stored log: contiguous indexes, non-decreasing terms, snapshot not beyond the log start.</summary>
    public void AssertInvariants()
    {
        for (var i = 1; i < _entries.Count; i++)
        {
            Invariant.Check(_entries[i].Index == _entries[i - 1].Index + 1, "stored entries must be contiguous");
            Invariant.Check(_entries[i].Term >= _entries[i - 1].Term, "terms in the log never decrease");
        }
        Invariant.Check(_snapshot.Metadata.Index >= _entries[0].Index, "the log may not start after the snapshot");
        long bytes = 0;
        for (var i = 1; i < _entries.Count; i++)
        {
            Invariant.Check(_entries[i].Index > _releasedThrough || _entries[i].Data.IsEmpty, "a released entry holds no payload");
            bytes += _entries[i].Data.Length;
        }
        Invariant.Check(bytes == _payloadBytesInMemory, "the payload bytes in memory are counted exactly");
        Invariant.Check(_releasedThrough <= LastIndex, "only stored entries are released");
    }

    /// <summary>
    /// Lets go of the payloads of the oldest entries up to <paramref name="throughIndex"/> (which must be applied and
    /// durable in <paramref name="archive"/>) until at most <paramref name="keepBytes"/> of payload stay in memory; their
    /// index and term stay, and <see cref="TryGetEntries"/> reads them back from <paramref name="archive"/>. Returns the
    /// number of entries released.
    /// </summary>
    public int ReleasePayloads(ulong throughIndex, long keepBytes, IRaftEntryArchive archive)
    {
        ArgumentNullException.ThrowIfNull(archive);
        Invariant.Check(_archive is null || ReferenceEquals(_archive, archive), "one archive per log");
        if (_payloadBytesInMemory <= keepBytes) return 0;
        _archive = archive;
        var offset = _entries[0].Index;
        var last = Math.Min(throughIndex, LastIndex);
        var released = 0;
        for (var i = Math.Max(_releasedThrough, offset) + 1; i <= last && _payloadBytesInMemory > keepBytes; i++)
        {
            var k = (int)(i - offset);
            var entry = _entries[k];
            _payloadBytesInMemory -= entry.Data.Length;
            _entries[k] = entry with { Data = ReadOnlyMemory<byte>.Empty };
            _releasedThrough = i;
            released++;
        }
        return released;
    }
}
