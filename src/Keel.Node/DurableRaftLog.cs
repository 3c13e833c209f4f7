using System.Runtime.InteropServices;
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
/// <remarks>The log is not compacted yet, so no Raft snapshot is ever persisted; one arriving is a bug.</remarks>
public sealed class DurableRaftLog
{
    /// <summary>Every member starts from a snapshot at this index holding the initial configuration (as etcd-io/raft tests do).</summary>
    public const ulong BootstrapIndex = 1;

    private readonly WriteAheadLog _wal;
    private readonly List<WalEntry> _walBatch = [];

    private DurableRaftLog(WriteAheadLog wal, MemoryRaftStorage storage)
    {
        _wal = wal;
        Storage = storage;
    }

    /// <summary>The storage Raft reads; kept equal to what the WAL holds.</summary>
    public MemoryRaftStorage Storage { get; }

    /// <summary>Opens (or creates) the log in <paramref name="directory"/> for a cluster bootstrapped with <paramref name="voters"/>.</summary>
    /// <exception cref="WalCorruptionException">The WAL is damaged before its tail.</exception>
    public static DurableRaftLog Open(IStorageDirectory directory, IEnumerable<ulong> voters, long segmentSizeBytes)
    {
        var bootstrap = new Membership(voters);
        var storage = new MemoryRaftStorage(bootstrap);
        storage.ApplySnapshot(new Snapshot(new SnapshotMetadata(BootstrapIndex, 1, bootstrap), ReadOnlyMemory<byte>.Empty));
        var wal = WriteAheadLog.Open(directory, new WalOptions { SegmentSizeBytes = segmentSizeBytes }, out var recovery);
        if (recovery.Snapshot.Index == 0)
        {
            // A fresh log starts after the bootstrap snapshot, as the in-memory storage does.
            wal.SaveSnapshotMarker(new WalSnapshotMarker(BootstrapIndex, 1));
            wal.Sync();
        }
        var hard = recovery.HardState;
        storage.SetHardState(new HardState(hard.Term, hard.Vote, hard.Commit));
        var entries = new List<Entry>(recovery.Entries.Count);
        foreach (var entry in recovery.Entries)
        {
            var payload = entry.Payload.Span;
            Invariant.Check(payload.Length >= 1, "a WAL entry carries at least its entry type");
            entries.Add(new Entry(entry.Index, entry.Term, (EntryType)payload[0], payload[1..].ToArray()));
        }
        if (entries.Count > 0) storage.Append(entries);
        return new DurableRaftLog(wal, storage);
    }

    /// <summary>Makes the Ready's entries and hard state durable; returns once they are synced.</summary>
    public void Persist(Ready ready)
    {
        Invariant.Check(ready.Snapshot is null, "the log is never compacted, so no snapshot is ever sent or received");
        if (ready.Entries.Count > 0)
        {
            // The WAL stores opaque payloads: the entry type travels as the payload's first byte.
            _walBatch.Clear();
            foreach (var entry in ready.Entries)
            {
                var payload = new byte[1 + entry.Data.Length];
                payload[0] = (byte)entry.Type;
                entry.Data.Span.CopyTo(payload.AsSpan(1));
                _walBatch.Add(new WalEntry(entry.Index, entry.Term, payload));
            }
            _wal.Append(CollectionsMarshal.AsSpan(_walBatch));
            Storage.Append(ready.Entries);
        }
        // Entries before the hard state: its commit index may cover entries of this very Ready.
        if (ready.HardState is { } hard)
        {
            _wal.SetHardState(new WalHardState(hard.Term, hard.Vote, hard.Commit));
            Storage.SetHardState(hard);
        }
        if (ready.MustSync) _wal.Sync();
    }
}
