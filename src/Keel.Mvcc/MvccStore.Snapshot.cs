using System.Buffers.Binary;
using System.IO.Hashing;
using Keel.Core.Encoding;
using Keel.Core;

namespace Keel.Mvcc;

public sealed partial class MvccStore
{
    private static ReadOnlySpan<byte> SnapshotMagic => "KMVC"u8;

    // Version 2 (this code writes it): the watch history refers to the index's versions by revision instead of
    // writing their values again, so a value is in the image once, as it is in memory. Version 1 images (every
    // event's kv and prev_kv written in full) are still read.
    private const byte SnapshotVersion = 2;
    private const byte SnapshotVersionFullEvents = 1;

    // The smallest encoded event of version 1: type, a key-value with empty key and value, and the "no previous" byte.
    private const int MinEventBytes = 1 + 4 + 8 * 4 + 4 + 1;

    // Version 2: type, empty key, no kv reference (a delete), no previous.
    private const int MinEventBytesV2 = 1 + 4 + 1;

    // How a version-2 event names a version: not at all (no prev_kv), by its revision in the key's retained
    // versions (the index holds the very object), or in full (the index dropped it: a prev_kv kept past compaction).
    internal const byte NoVersion = 0;
    internal const byte IndexedVersion = 1;
    internal const byte InlineVersion = 2;

    /// <summary>
    /// Encodes the whole state (revisions, index with every retained version, watch history with timestamps) in a
    /// <see cref="ChecksummedFrame"/> ("KMVC", version 2), for Raft snapshots. Each value is written once (the history
    /// refers to the index). Same as <see cref="CaptureImage"/> then <see cref="StoreImage.ToArray"/>.
    /// </summary>
    /// <exception cref="ImageTooLargeException">The image would not fit in one array (about 2 GiB).</exception>
    public byte[] Snapshot() => CaptureImage().ToArray();

    /// <summary>
    /// Captures the store as it is now for a snapshot encoded later, possibly on another thread, while this store
    /// keeps changing (reference copies only: see <see cref="StoreImage"/>).
    /// </summary>
    public StoreImage CaptureImage() =>
        StoreImage.Capture(_currentRevision, _compactRevision, _lastHybridTimestamp, _index, _log, _values?.SegmentsInUse() ?? []);

    internal static byte CurrentSnapshotVersion => SnapshotVersion;

    /// <summary>
    /// Rebuilds a store from <see cref="Snapshot"/> bytes (version 2, or version 1 of older members) and checks its
    /// invariants; its values go into segments from <paramref name="valueSegments"/> (null: an array per value).
    /// </summary>
    /// <exception cref="EncodingFormatException">The bytes are truncated, damaged or not an MVCC snapshot, or they
    /// decode to a state that breaks the store's invariants (<see cref="EncodingProblem.InconsistentContent"/>: duplicate
    /// keys, revisions out of order... which a checksum cannot rule out when the sender itself was wrong).</exception>
    public static MvccStore Restore(ReadOnlySpan<byte> snapshot, ValueSegmentSource? valueSegments = null)
    {
        var version = snapshot.Length > SnapshotMagic.Length && snapshot[..SnapshotMagic.Length].SequenceEqual(SnapshotMagic)
            && snapshot[SnapshotMagic.Length] == SnapshotVersionFullEvents ? SnapshotVersionFullEvents : SnapshotVersion;
        var reader = ChecksummedFrame.Open(snapshot, SnapshotMagic, version);
        try
        {
            return ReadStore(ref reader, version, valueSegments);
        }
        catch (InvariantViolationException e)
        {
            // Untrusted input that decodes to an impossible store is a format error, not a bug in this process.
            throw new EncodingFormatException(reader.Position, e.Message, e);
        }
    }

    private static MvccStore ReadStore(ref BinarySpanReader reader, byte version, ValueSegmentSource? valueSegments)
    {
        var store = new MvccStore(valueSegments)
        {
            _currentRevision = reader.I64(),
            _compactRevision = reader.I64(),
            _lastHybridTimestamp = reader.I64(),
        };
        var keyCount = reader.ReadCount(8);
        for (var k = 0; k < keyCount; k++)
        {
            var key = reader.ReadBytes(reader.ReadCount(1)).ToArray();
            var entryCount = reader.ReadCount(9);
            KeyEntry entry;
            var first = entryCount > 0 ? store.ReadIndexedVersion(ref reader, key) : default;
            // One live version (most keys): held as that version, with no history (the canonical form).
            if (entryCount == 1 && first.Kv is { Version: > 0 } single) entry = new KeyEntry(single);
            else
            {
                // Zero versions stay an empty history here, for the invariant check to refuse with its message.
                var history = new KeyHistory(key);
                if (entryCount > 0) history.Add(first);
                for (var e = 1; e < entryCount; e++) history.Add(store.ReadIndexedVersion(ref reader, key));
                entry = history;
            }
            // Images are written in key order; any other order (or a duplicate) takes the general path.
            if (!store._index.AddGreatest(entry) && !store._index.Add(entry))
                throw new EncodingFormatException(reader.Position, "a key appears twice in the snapshot");
        }
        var recordCount = reader.ReadCount(20);
        var changes = new List<Change>();
        for (var r = 0; r < recordCount; r++)
        {
            var revision = reader.I64();
            var timestamp = reader.I64();
            var eventCount = reader.ReadCount(version == SnapshotVersionFullEvents ? MinEventBytes : MinEventBytesV2);
            changes.Clear();
            for (var e = 0; e < eventCount; e++)
            {
                if (version == SnapshotVersionFullEvents)
                {
                    var type = (EventType)reader.U8();
                    var kv = store.Intern(ReadKv(ref reader));
                    var prev = reader.U8() != 0 ? store.Intern(ReadKv(ref reader)) : null;
                    changes.Add(new Change(type, kv, prev));
                }
                else changes.Add(store.ReadChange(ref reader, revision));
            }
            if (store._log.Count > 0 && revision != store._log.FirstRevision + store._log.Count)
                throw new EncodingFormatException(reader.Position, "log records are not consecutive revisions");
            store._log.Add(revision, timestamp, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(changes));
        }
        if (!reader.IsAtEnd) throw new EncodingFormatException(EncodingProblem.CountOutOfRange, reader.Position, reader.Remaining, 0);
        store._sizeBytes = store.ComputeSizeBytes();
        store.AssertInvariants();
        return store;
    }

    /// <summary>One version of a key as the image's index holds it: a put (stamps and value) or a tombstone.</summary>
    private KeyRevision ReadIndexedVersion(ref BinarySpanReader reader, byte[] key)
    {
        var revision = reader.I64();
        var live = reader.U8() != 0;
        if (!live) return new KeyRevision(revision, null);
        var create = reader.I64();
        var versionNumber = reader.I64();
        var lease = reader.I64();
        var value = reader.ReadBytes(reader.ReadCount(1));
        return new KeyRevision(revision, _values is null
            ? new KeyValue(key, create, revision, versionNumber, value.ToArray(), lease)
            : _values.Store(key, create, revision, versionNumber, value, lease));
    }

    /// <summary>One version-2 event of <paramref name="revision"/>, sharing the index's objects.</summary>
    private Change ReadChange(ref BinarySpanReader reader, long revision)
    {
        var type = (EventType)reader.U8();
        if (type is not (EventType.Put or EventType.Delete))
            throw new EncodingFormatException(reader.Position, $"unknown event type {(int)type} in the snapshot");
        var keyBytes = reader.ReadBytes(reader.ReadCount(1));
        _index.TryGetValue(keyBytes, out var history);
        var key = history.IsEmpty ? keyBytes.ToArray() : history.Key;
        var kv = type == EventType.Put
            ? ReadVersionRef(ref reader, history, key) ?? throw new EncodingFormatException(reader.Position, "a put event without its version")
            : new KeyValue(key, 0, revision, 0, [], 0);
        var prev = ReadVersionRef(ref reader, history, key);
        return new Change(type, kv, prev);
    }

    // history: the key's entry in the index restored so far; empty if the index does not hold the key.
    private static KeyValue? ReadVersionRef(ref BinarySpanReader reader, KeyEntry history, byte[] key)
    {
        switch (reader.U8())
        {
            case NoVersion:
                return null;
            case IndexedVersion:
                var revision = reader.I64();
                var index = history.IsEmpty ? -1 : LastAtOrBelow(history, revision);
                if (index < 0 || history[index].Revision != revision || history[index].Kv is not { } kv)
                    throw new EncodingFormatException(reader.Position, $"an event refers to version {revision} of a key, which the snapshot's index does not hold");
                return kv;
            case InlineVersion:
                var create = reader.I64();
                var mod = reader.I64();
                var version = reader.I64();
                var lease = reader.I64();
                var value = reader.ReadBytes(reader.ReadCount(1)).ToArray();
                return new KeyValue(key, create, mod, version, value, lease);
            default:
                throw new EncodingFormatException(reader.Position, "unknown version reference in the snapshot");
        }
    }

    /// <summary>
    /// A HashKV-style digest (etcd Maintenance.HashKV, server/mvcc/kvstore.go HashByRev): CRC-32 over every retained
    /// version with revision at most <paramref name="revision"/> (0 = current), in key then revision order. Replicas
    /// that applied the same log and compacted at the same revision agree. Not bit-compatible with etcd's bbolt-based hash.
    /// </summary>
    /// <exception cref="MvccException">The revision is compacted or in the future.</exception>
    public HashKvResult HashKv(long revision) => CaptureForHash(revision).Hash();

    /// <summary>
    /// Checks <paramref name="revision"/> as <see cref="HashKv"/> does and captures what the hash needs, so a driver can
    /// compute it off the node's thread (<see cref="StoreHashCapture.Hash"/>) while the store goes on.
    /// </summary>
    /// <exception cref="MvccException">The revision is compacted or in the future.</exception>
    public StoreHashCapture CaptureForHash(long revision)
    {
        var at = revision <= 0 ? _currentRevision : revision;
        if (at > _currentRevision) throw new MvccException(MvccError.FutureRevision);
        if (at < _compactRevision) throw new MvccException(MvccError.Compacted);
        return new StoreHashCapture(CaptureImage(), at, _compactRevision, _currentRevision);
    }

    private static KeyValue ReadKv(ref BinarySpanReader reader)
    {
        var key = reader.ReadBytes(reader.ReadCount(1)).ToArray();
        var create = reader.I64();
        var mod = reader.I64();
        var version = reader.I64();
        var lease = reader.I64();
        var value = reader.ReadBytes(reader.ReadCount(1)).ToArray();
        return new KeyValue(key, create, mod, version, value, lease);
    }

    /// <summary>The index's object for the same version, when it is still retained, so log and index share memory again.</summary>
    private KeyValue Intern(KeyValue kv)
    {
        if (!_index.TryGetValue(kv.Key, out var history)) return kv;
        var index = LastAtOrBelow(history, kv.ModRevision);
        return index >= 0 && history[index].Kv is { } stored && stored.Equals(kv) ? stored : kv;
    }
}
