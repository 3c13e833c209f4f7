using System.Diagnostics;
using Keel.Core;
using Keel.Core.Storage;
using Keel.Quorum;
using Keel.Raft;
using Keel.Storage;

namespace Keel.Node;

/// <summary>
/// Raft's log made durable by Keel's <see cref="WriteAheadLog"/>: every <see cref="Ready"/> is written entries first,
/// then the hard state, then one sync (etcd's <c>wal.Save</c> order, group commit), before any message that promises
/// durable state leaves and before anything is applied. Opening recovers the in-memory <see cref="MemoryRaftStorage"/>
/// Raft reads from whatever the WAL kept (a crash may tear or lose unsynced writes; the WAL cuts a torn tail).
/// </summary>
/// <remarks>
/// Snapshots (when opened with a <see cref="SnapshotStore"/>): <see cref="SaveSnapshot"/> writes the state image to the
/// store, then the WAL marker, then syncs, then the caller compacts (<see cref="Compact"/>): the WAL never refers to a
/// snapshot that is not durable (etcd's order). A snapshot received from the leader (InstallSnapshot) is persisted the
/// same way in <see cref="Persist"/>. Opening restores Raft's storage from the newest snapshot and the WAL entries after it.
/// </remarks>
public sealed class DurableRaftLog : IRaftEntryArchive
{
    /// <summary>Every member starts from a snapshot at this index holding the initial configuration (as etcd-io/raft tests do).</summary>
    public const ulong BootstrapIndex = 1;

    private readonly WriteAheadLog _wal;

    private readonly SnapshotStore? _snapshots;

    private DurableRaftLog(WriteAheadLog wal, MemoryRaftStorage storage, SnapshotStore? snapshots, StoredSnapshot? recovered)
    {
        _wal = wal;
        Storage = storage;
        _snapshots = snapshots;
        RecoveredSnapshot = recovered;
    }

    /// <summary>
    /// The snapshot the log was opened from (null when it starts from the bootstrap configuration), until the
    /// application restored its state from it and called <see cref="ReleaseRecoveredSnapshot"/>.
    /// </summary>
    public StoredSnapshot? RecoveredSnapshot { get; private set; }

    /// <summary>
    /// Lets go of <see cref="RecoveredSnapshot"/>'s image once the state is restored from it: Raft reads the image from
    /// its file when a follower needs it, so memory need not hold it (hundreds of MB at a million keys).
    /// </summary>
    public void ReleaseRecoveredSnapshot()
    {
        // A mapped file is unmapped now, not at some later finalization.
        RecoveredSnapshot?.Dispose();
        RecoveredSnapshot = null;
    }

    /// <summary>The durable snapshot file at (<paramref name="index"/>, <paramref name="term"/>), for Raft to read when a follower needs it.</summary>
    /// <exception cref="SnapshotFileException">The file is missing or its header is damaged.</exception>
    public IStoredSnapshotData OpenStoredSnapshot(ulong index, ulong term)
    {
        Invariant.Check(_snapshots is not null, "the log was opened without snapshot support");
        return new StoredSnapshotFile(_snapshots!.OpenFile(index, term));
    }

    /// <summary>The storage Raft reads; kept equal to what the WAL holds.</summary>
    public MemoryRaftStorage Storage { get; }

    /// <summary>Opens (or creates) the log in <paramref name="directory"/> for a cluster bootstrapped with <paramref name="voters"/>.</summary>
    /// <exception cref="WalCorruptionException">The WAL is damaged before its tail.</exception>
    public static DurableRaftLog Open(IStorageDirectory directory, IEnumerable<ulong> voters, long segmentSizeBytes) =>
        Open(directory, voters, segmentSizeBytes, null);

    /// <summary>
    /// Opens the log with snapshot support: the newest snapshot in the directory (if any) becomes Raft's snapshot, with
    /// the configuration <paramref name="membershipOf"/> reads from its data, and only WAL entries after it are kept.
    /// </summary>
    /// <exception cref="WalCorruptionException">The WAL is damaged before its tail.</exception>
    public static DurableRaftLog Open(IStorageDirectory directory, IEnumerable<ulong> voters, long segmentSizeBytes,
        Func<ReadOnlyMemory<byte>, Membership>? membershipOf) =>
        Open(directory, voters, segmentSizeBytes, membershipOf, ReadOnlyMemory<byte>.Empty, joining: false);

    /// <summary>
    /// Opens the log with snapshot support. A bootstrap member starts from a snapshot at <see cref="BootstrapIndex"/>
    /// holding <paramref name="bootstrapImage"/> (the application's initial state, identical on every bootstrap member,
    /// so a leader can send it to a member that joins later). A <paramref name="joining"/> member starts with an empty
    /// log and no configuration, and waits for the leader's snapshot.
    /// </summary>
    /// <exception cref="WalCorruptionException">The WAL is damaged before its tail.</exception>
    public static DurableRaftLog Open(IStorageDirectory directory, IEnumerable<ulong> voters, long segmentSizeBytes,
        Func<ReadOnlyMemory<byte>, Membership>? membershipOf, ReadOnlyMemory<byte> bootstrapImage, bool joining)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var bootstrap = new Membership(joining ? [] : voters);
        var storage = new MemoryRaftStorage(bootstrap);
        if (!joining) storage.ApplySnapshot(new Snapshot(new SnapshotMetadata(BootstrapIndex, 1, bootstrap), bootstrapImage));
        SnapshotStore? snapshots = null;
        StoredSnapshot? recovered = null;
        if (membershipOf is not null)
        {
            snapshots = new SnapshotStore(directory);
            recovered = snapshots.LoadNewest([]);
            if (recovered is not null && recovered.Index >= BootstrapIndex && recovered.Data.Length > 0 && recovered.Index > storage.Snapshot.Metadata.Index)
            {
                // Raft keeps the file, not the image: the application restores from RecoveredSnapshot and lets it go.
                var metadata = new SnapshotMetadata(recovered.Index, recovered.Term, membershipOf(recovered.Data));
                storage.ApplySnapshot(new Snapshot(metadata, new StoredSnapshotFile(snapshots.OpenFile(recovered.Index, recovered.Term))));
            }
            else recovered = null;
        }
        var wal = WriteAheadLog.Open(directory, new WalOptions { SegmentSizeBytes = segmentSizeBytes }, out var recovery);
        if (recovery.Snapshot.Index == 0 && !joining)
        {
            // A fresh log starts after the bootstrap snapshot, as the in-memory storage does.
            wal.SaveSnapshotMarker(new WalSnapshotMarker(BootstrapIndex, 1));
            wal.Sync();
        }
        var hard = recovery.HardState;
        storage.SetHardState(new HardState(hard.Term, hard.Vote, hard.Commit));
        var entries = new List<Entry>(recovery.Entries.Count);
        var snapshotIndex = storage.Snapshot.Metadata.Index;
        foreach (var entry in recovery.Entries)
        {
            if (entry.Index <= snapshotIndex) continue;
            var payload = entry.Payload.Span;
            Invariant.Check(payload.Length >= 1, "a WAL entry carries at least its entry type");
            // Recovery hands out each entry in an array of its own: the entry's data is a slice of it, not a copy.
            entries.Add(new Entry(entry.Index, entry.Term, (EntryType)payload[0], entry.Payload[1..]));
        }
        Invariant.Check(entries.Count == 0 || entries[0].Index == snapshotIndex + 1,
            "the WAL continues right after the newest snapshot (no entry between them was compacted away)");
        if (entries.Count > 0) storage.Append(entries);
        return new DurableRaftLog(wal, storage, snapshots, recovered);
    }

    /// <summary>
    /// Records the application's state at <paramref name="index"/> as Raft's snapshot and makes it durable: the snapshot
    /// file first, then the WAL marker, then one sync. Older snapshot files whose index is in <paramref name="streamed"/>
    /// are kept beyond the retention: they are being streamed to followers.
    /// </summary>
    public Snapshot SaveSnapshot(ulong index, Membership membership, ReadOnlyMemory<byte> data, IReadOnlyCollection<ulong>? streamed = null)
    {
        Invariant.Check(_snapshots is not null, "the log was opened without snapshot support");
        var snapshot = Storage.CreateSnapshot(index, membership, data);
        _snapshots!.Save(index, snapshot.Metadata.Term, data.Span, streamed);
        _wal.SaveSnapshotMarker(new WalSnapshotMarker(index, snapshot.Metadata.Term));
        _wal.Sync();
        Storage.MoveSnapshotToStorage(index, OpenStoredSnapshot(index, snapshot.Metadata.Term));
        return Storage.Snapshot;
    }

    /// <summary>
    /// The first half of <see cref="SaveSnapshot"/> for a driver that writes snapshot files in the background: records
    /// the state at <paramref name="index"/> as Raft's (in-memory) snapshot and returns it; nothing is durable yet, and
    /// the WAL is not compacted until <see cref="MarkSnapshotDurable"/>.
    /// </summary>
    public Snapshot CreateSnapshot(ulong index, Membership membership, ReadOnlyMemory<byte> data) =>
        Storage.CreateSnapshot(index, membership, data);

    /// <summary>As <see cref="CreateSnapshot(ulong, Membership, ReadOnlyMemory{byte})"/> for an image the driver already wrote to its file.</summary>
    public Snapshot CreateSnapshot(ulong index, Membership membership, IStoredSnapshotData stored) =>
        Storage.CreateSnapshot(index, membership, stored);

    /// <summary>
    /// The second half: the snapshot file at (<paramref name="index"/>, <paramref name="term"/>) is durable (written by
    /// the driver with a <see cref="SnapshotStore"/> on the same directory), so the WAL marker may now refer to it.
    /// Returns false when a newer snapshot (InstallSnapshot from the leader) made it moot.
    /// </summary>
    public bool MarkSnapshotDurable(ulong index, ulong term)
    {
        if (index <= _wal.DurableSnapshot.Index || IsDiskFull) return false;
        _wal.SaveSnapshotMarker(new WalSnapshotMarker(index, term));
        // A full device leaves the marker buffered: it becomes durable with the next successful retry, and the log is
        // compacted at a later snapshot.
        _unsynced = (true, 0);
        return TryCompletePersist();
    }

    /// <summary>
    /// Keeps Raft's in-memory log within <paramref name="maxPayloadBytesInMemory"/> of payload: when it holds more, the
    /// payloads of the oldest entries up to <paramref name="appliedIndex"/> that are durable are let go of until a quarter
    /// of the bound is free, and Raft reads them back from the WAL when a lagging follower needs them. Without it the log
    /// between two snapshots (up to <c>--snapshot-count</c> entries, 100,000 by default) is held whole: 30 MB of
    /// 300-byte puts, or gigabytes of large values. Returns the number of entries released.
    /// </summary>
    public int ReleaseAppliedPayloads(ulong appliedIndex, long maxPayloadBytesInMemory)
    {
        if (Storage.PayloadBytesInMemory <= maxPayloadBytesInMemory) return 0;
        var through = Math.Min(appliedIndex, _wal.DurableLastIndex);
        var first = Math.Max(Storage.ReleasedThroughIndex + 1, Storage.FirstIndex);
        if (through < first) return 0;
        // Every entry released must be readable from the WAL: locations are contiguous, so both ends tell.
        if (!_wal.CanRead(first) || !_wal.CanRead(through))
        {
            Debug.Assert(false, $"entries {first}..{through} are in Raft's log but cannot be read back from the WAL");
            return 0;
        }
        return Storage.ReleasePayloads(through, maxPayloadBytesInMemory - maxPayloadBytesInMemory / 4, this);
    }

    /// <summary>Entries read back from the WAL for Raft since the log was opened (a lagging follower's catch-up).</summary>
    public long EntriesReadBack { get; private set; }

    // The entries read back last, contiguous: a lagging follower is probed with the same entries every heartbeat
    // until it answers, and followers catching up read consecutive ranges; both are served from here, not the disk.
    // Released entries are committed, so what this holds never changes; compaction cuts requests off before they reach it.
    private readonly List<Entry> _readBack = [];
    private long _readBackBytes;

    /// <summary>Bound of the read-back window (<see cref="EntriesReadBack"/>'s entries kept for repeated reads): 2 MiB.</summary>
    public const long ReadBackWindowBytes = 2L * 1024 * 1024;

    /// <inheritdoc/>
    void IRaftEntryArchive.ReadEntries(ulong low, ulong high, long maxBytes, List<Entry> into)
    {
        long size = 0;
        var index = low;
        if (_readBack.Count > 0 && low >= _readBack[0].Index && low <= _readBack[^1].Index)
        {
            for (var k = (int)(low - _readBack[0].Index); k < _readBack.Count && index < high; k++, index++)
            {
                size += _readBack[k].PayloadBytes;
                if (index > low && size > maxBytes) return;
                into.Add(_readBack[k]);
            }
            if (index == high) return;
        }
        // The window continues where it ends, or starts again here.
        if (_readBack.Count == 0 || _readBack[^1].Index + 1 != index)
        {
            _readBack.Clear();
            _readBackBytes = 0;
        }
        using var reader = _wal.OpenReader();
        for (; index < high; index++)
        {
            var read = reader.Read(index);
            Invariant.Check(read.Payload.Length >= 1, "a WAL entry carries at least its entry type");
            var entry = new Entry(index, read.Term, (EntryType)read.Payload.Span[0], read.Payload[1..]);
            EntriesReadBack++;
            _readBack.Add(entry);
            _readBackBytes += entry.PayloadBytes;
            size += entry.PayloadBytes;
            if (index > low && size > maxBytes) break;
            into.Add(entry);
        }
        var drop = 0;
        while (_readBackBytes > ReadBackWindowBytes && drop < _readBack.Count - 1) _readBackBytes -= _readBack[drop++].PayloadBytes;
        if (drop > 0) _readBack.RemoveRange(0, drop);
    }

    /// <summary>Drops WAL segments wholly at or below <paramref name="index"/> (covered by the durable snapshot).</summary>
    public int Compact(ulong index) => _wal.Compact(Math.Min(index, _wal.DurableSnapshot.Index));

    /// <summary>Makes the Ready's entries and hard state durable; returns once they are synced.</summary>
    public void Persist(Ready ready)
    {
        Buffer(ready);
        _unsynced = (ready.MustSync, ready.Snapshot?.Metadata.Index ?? 0);
        // A full device throws WalNoSpaceException here and leaves _unsynced for RetryPersist. A Ready that need not be
        // synced (a new commit index alone) is still written, so a member killed now re-applies on restart everything it
        // has applied (and served) so far; only a power loss can take that back, and the leader tells it again.
        if (_unsynced.MustSync) _wal.Sync();
        else _wal.Flush();
        FinishPersist();
    }

    /// <summary>
    /// Pipelined persistence (issue 12 item 1): writes the Ready's records to the WAL file and returns the ticket whose
    /// sync, run off the caller's thread, makes them durable (<see cref="WalSyncTicket.Sync"/>, then
    /// <see cref="CompleteSync"/>), so the caller can go on taking Readys meanwhile. Returns
    /// <see cref="PipelinedPersist.Durable"/> when the Ready was made durable here instead (a snapshot from the leader,
    /// or a WAL that must roll to a new segment first: a synchronous <see cref="Persist"/>, which also makes every
    /// earlier pipelined write durable), <see cref="PipelinedPersist.NoSyncNeeded"/> for a Ready that promises nothing
    /// durable (written, not synced) and <see cref="PipelinedPersist.DiskFull"/> as <see cref="TryPersist"/> returns false.
    /// </summary>
    public PipelinedPersist PersistPipelined(Ready ready, out WalSyncTicket? ticket)
    {
        ArgumentNullException.ThrowIfNull(ready);
        ticket = null;
        if (ready.Snapshot is not null) return TryPersist(ready) ? PipelinedPersist.Durable : PipelinedPersist.DiskFull;
        Buffer(ready);
        if (!ready.MustSync)
        {
            _wal.Flush();
            return PipelinedPersist.NoSyncNeeded;
        }
        ticket = _wal.BeginSync();
        if (ticket is not null) return PipelinedPersist.Pending;
        _unsynced = (true, 0);
        return TryCompletePersist() ? PipelinedPersist.Durable : PipelinedPersist.DiskFull;
    }

    /// <summary>True when everything <paramref name="ticket"/> covers is durable.</summary>
    public bool IsDurable(WalSyncTicket ticket) => _wal.IsDurable(ticket);

    /// <summary>
    /// The sync of <paramref name="ticket"/> ended, on the syncing thread, with <paramref name="error"/> (null: it
    /// succeeded). A full device falls back to a synchronous sync that writes every pending record again (false, with
    /// the NOSPACE alarm raised, if that fails too: retry with <see cref="RetryPersist"/>); any other error is thrown:
    /// the file's durable state is unknown and the member must stop.
    /// </summary>
    public bool CompleteSync(WalSyncTicket ticket, Exception? error)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        switch (error)
        {
            case null:
                _wal.CompleteSync(ticket);
                return true;
            case DiskFullException:
                _wal.ForgetUnsyncedWrites();
                _unsynced = (true, 0);
                return TryCompletePersist();
            default:
                throw new IOException($"a pipelined WAL sync failed; the log's durable state is unknown: {error.Message}", error);
        }
    }

    // The Ready's records, in etcd's wal.Save order, into the WAL's buffer and Raft's in-memory storage.
    private void Buffer(Ready ready)
    {
        if (ready.Snapshot is { } received)
        {
            // InstallSnapshot from the leader: durable image, then the marker (which resets the WAL to start after it).
            Invariant.Check(_snapshots is not null, "a snapshot arrived at a log opened without snapshot support");
            _snapshots!.Save(received.Metadata.Index, received.Metadata.Term, received.Data.Span);
            _wal.SaveSnapshotMarker(new WalSnapshotMarker(received.Metadata.Index, received.Metadata.Term));
            // The application restores from the received image; Raft keeps only the file (for its own followers later).
            Storage.ApplySnapshot(new Snapshot(received.Metadata, OpenStoredSnapshot(received.Metadata.Index, received.Metadata.Term)));
        }
        if (ready.Entries.Count > 0)
        {
            // The WAL stores opaque payloads: the entry type travels as the payload's first byte, framed together with
            // the entry's data straight into the WAL's buffer.
            foreach (var entry in ready.Entries) _wal.Append(entry.Index, entry.Term, (byte)entry.Type, entry.Data.Span);
            Storage.Append(ready.Entries);
        }
        // Entries before the hard state: its commit index may cover entries of this very Ready.
        if (ready.HardState is { } hard)
        {
            _wal.SetHardState(new WalHardState(hard.Term, hard.Vote, hard.Commit));
            Storage.SetHardState(hard);
        }
    }

    private (bool MustSync, ulong CompactTo) _unsynced;

    /// <summary>True while the device is full: a Ready is buffered but not durable (see <see cref="TryPersist"/>).</summary>
    public bool IsDiskFull => _wal.NoSpaceAlarm;

    /// <summary>
    /// As <see cref="Persist"/>, but a full device is not an exception: the Ready's records stay buffered in the WAL and
    /// false is returned; call <see cref="RetryPersist"/> until it returns true, and act on nothing of the Ready (no
    /// messages after persist, no applies) until then. Any other I/O failure still throws: the member must stop.
    /// </summary>
    public bool TryPersist(Ready ready)
    {
        try
        {
            Persist(ready);
            return true;
        }
        catch (WalNoSpaceException)
        {
            return false;
        }
    }

    /// <summary>Tries again to make the buffered Ready durable after <see cref="TryPersist"/> returned false.</summary>
    public bool RetryPersist() => TryCompletePersist();

    private bool TryCompletePersist()
    {
        try
        {
            if (_unsynced.MustSync) _wal.Sync();
        }
        catch (WalNoSpaceException)
        {
            return false;
        }
        FinishPersist();
        return true;
    }

    private void FinishPersist()
    {
        if (_unsynced.CompactTo > 0) _wal.Compact(_unsynced.CompactTo);
        _unsynced = default;
    }
}

/// <summary>What <see cref="DurableRaftLog.PersistPipelined"/> did with a Ready.</summary>
public enum PipelinedPersist
{
    /// <summary>Written; durable once its ticket's sync completes.</summary>
    Pending,

    /// <summary>Durable now, with every earlier pipelined write.</summary>
    Durable,

    /// <summary>Written; it promises nothing durable, so it may be acted on once every earlier Ready has been.</summary>
    NoSyncNeeded,

    /// <summary>The device is full: buffered, not durable; retry with <see cref="DurableRaftLog.RetryPersist"/>.</summary>
    DiskFull,
}
