using System.Runtime.InteropServices;
using Keel.Core;
using Keel.Core.Storage;
using Keel.Quorum;
using Keel.Raft;
using Keel.Storage;

namespace Keel.Node;

// Durability: every Ready is written to the WAL entries first, then the hard state, then one sync (etcd wal.Save),
// before any message that promises durable state leaves and before anything is applied. Recovery rebuilds Raft's
// in-memory storage from what the WAL kept (a crash may tear or lose unsynced writes; the WAL drops a torn tail).
public sealed partial class KeelNode
{
    private readonly List<WalEntry> _walBatch = [];

    private void Persist(Ready ready)
    {
        Invariant.Check(ready.Snapshot is null, "the node never compacts its log, so no snapshot is ever sent or received");
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
            _storage.Append(ready.Entries);
        }
        // Entries before the hard state: its commit index may cover entries of this very Ready.
        if (ready.HardState is { } hard)
        {
            _wal.SetHardState(new WalHardState(hard.Term, hard.Vote, hard.Commit));
            _storage.SetHardState(hard);
        }
        // Group commit: one sync per Ready, before votes, acks and applies that depend on it.
        if (ready.MustSync) _wal.Sync();
    }

    private static MemoryRaftStorage Recover(IStorageDirectory directory, KeelNodeOptions options, out WriteAheadLog wal,
        out ulong bootstrapIndex)
    {
        var bootstrap = new Membership(options.Voters);
        var storage = new MemoryRaftStorage(bootstrap);
        // Every member starts from a snapshot at index 1 holding the initial configuration (as etcd-io/raft tests do).
        bootstrapIndex = 1;
        storage.ApplySnapshot(new Snapshot(new SnapshotMetadata(bootstrapIndex, 1, bootstrap), ReadOnlyMemory<byte>.Empty));
        wal = WriteAheadLog.Open(directory, new WalOptions { SegmentSizeBytes = options.WalSegmentSizeBytes }, out var recovery);
        if (recovery.Snapshot.Index == 0)
        {
            wal.SaveSnapshotMarker(new WalSnapshotMarker(bootstrapIndex, 1));
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
        return storage;
    }
}
