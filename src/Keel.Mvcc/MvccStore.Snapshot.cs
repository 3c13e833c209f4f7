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
    private const byte NoVersion = 0;
    private const byte IndexedVersion = 1;
    private const byte InlineVersion = 2;

    /// <summary>
    /// Encodes the whole state (revisions, index with every retained version, watch history with timestamps) in a
    /// <see cref="ChecksummedFrame"/> ("KMVC", version 2), for Raft snapshots: <see cref="SnapshotSizeBytes"/> then
    /// <see cref="WriteSnapshot"/> into one new array. Each value is written once (the history refers to the index).
    /// </summary>
    /// <exception cref="ImageTooLargeException">The image would not fit in one array (about 2 GiB).</exception>
    public byte[] Snapshot()
    {
        var buffer = new byte[ImageSize.CheckFitsOneArray(SnapshotSizeBytes(), "the MVCC store's snapshot image")];
        WriteSnapshot(buffer);
        return buffer;
    }

    /// <summary>The exact size of the image <see cref="WriteSnapshot"/> writes, in 64-bit arithmetic (may exceed 2 GiB).</summary>
    public long SnapshotSizeBytes() => ChecksummedFrame.OverheadBytes(SnapshotMagic) + PayloadBytes(_index, _log);

    /// <summary>
    /// Writes the image into <paramref name="destination"/>, which must be exactly <see cref="SnapshotSizeBytes"/>
    /// long, so a caller can place it inside a larger image without a second copy.
    /// </summary>
    /// <exception cref="ArgumentException">The destination is not exactly the image's size.</exception>
    public void WriteSnapshot(Span<byte> destination)
    {
        if (destination.Length != SnapshotSizeBytes())
            throw new ArgumentException($"the destination is {destination.Length} bytes; the image is {SnapshotSizeBytes()}", nameof(destination));
        var writer = new BinarySpanWriter(destination);
        ChecksummedFrame.WriteHeader(ref writer, SnapshotMagic, SnapshotVersion);
        writer.I64(_currentRevision);
        writer.I64(_compactRevision);
        writer.I64(_lastHybridTimestamp);
        writer.I32(_index.Count);
        foreach (var history in _index)
        {
            writer.I32(history.Key.Length);
            writer.Bytes(history.Key);
            writer.I32(history.Count);
            for (var i = 0; i < history.Count; i++)
            {
                var entry = history[i];
                writer.I64(entry.Revision);
                writer.U8(entry.Kv is null ? (byte)0 : (byte)1);
                if (entry.Kv is not { } kv) continue;
                writer.I64(kv.CreateRevision);
                writer.I64(kv.Version);
                writer.I64(kv.Lease);
                writer.I32(kv.Value.Length);
                writer.Bytes(kv.Value);
            }
        }
        writer.I32(_log.Count);
        for (var r = 0; r < _log.Count; r++)
        {
            var changes = _log.ChangesOf(r);
            writer.I64(_log.RevisionOf(r));
            writer.I64(_log.TimestampOf(r));
            writer.I32(changes.Length);
            foreach (var change in changes)
            {
                writer.U8((byte)change.Type);
                writer.I32(change.Kv.Key.Length);
                writer.Bytes(change.Kv.Key);
                var history = Find(_index, change.Kv.Key);
                if (change.Type == EventType.Put) WriteVersionRef(ref writer, history, change.Kv);
                if (change.PrevKv is null) writer.U8(NoVersion);
                else WriteVersionRef(ref writer, history, change.PrevKv);
            }
        }
        ChecksummedFrame.WriteChecksum(ref writer);
        writer.AssertFull();
    }

    /// <summary>
    /// The payload size of an image of <paramref name="index"/> and <paramref name="log"/>, summed in 64 bits (a
    /// 32-bit sum wrapped past 2 GiB of state on every member at once).
    /// </summary>
    internal static long PayloadBytes(SortedSet<KeyHistory> index, RevisionLog log)
    {
        long payload = 8 * 3 + 4;
        foreach (var history in index)
        {
            payload += 4 + history.Key.Length + 4;
            for (var i = 0; i < history.Count; i++) payload += VersionBytes(history[i]);
        }
        payload += 4;
        for (var r = 0; r < log.Count; r++)
        {
            payload += 8 + 8 + 4;
            foreach (var change in log.ChangesOf(r))
            {
                var history = Find(index, change.Kv.Key);
                payload += 1 + 4 + change.Kv.Key.Length;
                if (change.Type == EventType.Put) payload += VersionRefBytes(history, change.Kv);
                payload += change.PrevKv is null ? 1 : VersionRefBytes(history, change.PrevKv);
            }
        }
        return payload;
    }

    /// <summary>Encoded size of one retained version in the index section.</summary>
    internal static long VersionBytes(KeyRevision entry) => 8 + 1 + (entry.Kv is null ? 0 : 8 * 3 + 4 + (long)entry.Kv.Value.Length);

    private static long VersionRefBytes(KeyHistory? history, KeyValue kv) =>
        IsIndexed(history, kv) ? 1 + 8 : 1 + 8 * 4 + 4 + (long)kv.Value.Length;

    /// <summary>Whether the index holds this very version object (then the image refers to it by revision).</summary>
    private static bool IsIndexed(KeyHistory? history, KeyValue kv)
    {
        if (history is null || !ReferenceEquals(history.Key, kv.Key)) return false;
        var index = LastAtOrBelow(history, kv.ModRevision);
        return index >= 0 && ReferenceEquals(history[index].Kv, kv);
    }

    private static KeyHistory? Find(SortedSet<KeyHistory> index, byte[] key) =>
        index.TryGetValue(new KeyHistory(key), out var history) ? history : null;

    private static void WriteVersionRef(ref BinarySpanWriter writer, KeyHistory? history, KeyValue kv)
    {
        if (IsIndexed(history, kv))
        {
            writer.U8(IndexedVersion);
            writer.I64(kv.ModRevision);
            return;
        }
        writer.U8(InlineVersion);
        writer.I64(kv.CreateRevision);
        writer.I64(kv.ModRevision);
        writer.I64(kv.Version);
        writer.I64(kv.Lease);
        writer.I32(kv.Value.Length);
        writer.Bytes(kv.Value);
    }

    /// <summary>Rebuilds a store from <see cref="Snapshot"/> bytes (version 2, or version 1 of older members) and checks its invariants.</summary>
    /// <exception cref="EncodingFormatException">The bytes are truncated, damaged or not an MVCC snapshot, or they
    /// decode to a state that breaks the store's invariants (<see cref="EncodingProblem.InconsistentContent"/>: duplicate
    /// keys, revisions out of order... which a checksum cannot rule out when the sender itself was wrong).</exception>
    public static MvccStore Restore(ReadOnlySpan<byte> snapshot)
    {
        var version = snapshot.Length > SnapshotMagic.Length && snapshot[..SnapshotMagic.Length].SequenceEqual(SnapshotMagic)
            && snapshot[SnapshotMagic.Length] == SnapshotVersionFullEvents ? SnapshotVersionFullEvents : SnapshotVersion;
        var reader = ChecksummedFrame.Open(snapshot, SnapshotMagic, version);
        try
        {
            return ReadStore(ref reader, version);
        }
        catch (InvariantViolationException e)
        {
            // Untrusted input that decodes to an impossible store is a format error, not a bug in this process.
            throw new EncodingFormatException(reader.Position, e.Message, e);
        }
    }

    private static MvccStore ReadStore(ref BinarySpanReader reader, byte version)
    {
        var store = new MvccStore
        {
            _currentRevision = reader.I64(),
            _compactRevision = reader.I64(),
            _lastHybridTimestamp = reader.I64(),
        };
        var keyCount = reader.ReadCount(8);
        for (var k = 0; k < keyCount; k++)
        {
            var history = new KeyHistory(reader.ReadBytes(reader.ReadCount(1)).ToArray());
            var entryCount = reader.ReadCount(9);
            for (var e = 0; e < entryCount; e++)
            {
                var revision = reader.I64();
                var live = reader.U8() != 0;
                if (!live) { history.Add(new KeyRevision(revision, null)); continue; }
                var create = reader.I64();
                var versionNumber = reader.I64();
                var lease = reader.I64();
                var value = reader.ReadBytes(reader.ReadCount(1)).ToArray();
                history.Add(new KeyRevision(revision, new KeyValue(history.Key, create, revision, versionNumber, value, lease)));
            }
            if (!store._index.Add(history)) throw new EncodingFormatException(reader.Position, "a key appears twice in the snapshot");
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

    /// <summary>One version-2 event of <paramref name="revision"/>, sharing the index's objects.</summary>
    private Change ReadChange(ref BinarySpanReader reader, long revision)
    {
        var type = (EventType)reader.U8();
        if (type is not (EventType.Put or EventType.Delete))
            throw new EncodingFormatException(reader.Position, $"unknown event type {(int)type} in the snapshot");
        var keyBytes = reader.ReadBytes(reader.ReadCount(1));
        var history = _index.TryGetValue(new KeyHistory(keyBytes.ToArray()), out var found) ? found : null;
        var key = history?.Key ?? keyBytes.ToArray();
        var kv = type == EventType.Put
            ? ReadVersionRef(ref reader, history, key) ?? throw new EncodingFormatException(reader.Position, "a put event without its version")
            : new KeyValue(key, 0, revision, 0, [], 0);
        var prev = ReadVersionRef(ref reader, history, key);
        return new Change(type, kv, prev);
    }

    private static KeyValue? ReadVersionRef(ref BinarySpanReader reader, KeyHistory? history, byte[] key)
    {
        switch (reader.U8())
        {
            case NoVersion:
                return null;
            case IndexedVersion:
                var revision = reader.I64();
                var index = history is null ? -1 : LastAtOrBelow(history, revision);
                if (index < 0 || history![index].Revision != revision || history[index].Kv is not { } kv)
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
    public HashKvResult HashKv(long revision)
    {
        var at = revision <= 0 ? _currentRevision : revision;
        if (at > _currentRevision) throw new MvccException(MvccError.FutureRevision);
        if (at < _compactRevision) throw new MvccException(MvccError.Compacted);
        var crc = new Crc32();
        Span<byte> number = stackalloc byte[8];
        void Number(Crc32 hash, Span<byte> scratch, long value)
        {
            BinaryPrimitives.WriteInt64LittleEndian(scratch, value);
            hash.Append(scratch);
        }
        foreach (var history in _index)
        {
            for (var i = 0; i < history.Count; i++)
            {
                var entry = history[i];
                if (entry.Revision > at) break;
                Number(crc, number, history.Key.Length);
                crc.Append(history.Key);
                Number(crc, number, entry.Revision);
                if (entry.Kv is not { } kv) { Number(crc, number, -1); continue; }
                Number(crc, number, kv.CreateRevision);
                Number(crc, number, kv.Version);
                Number(crc, number, kv.Lease);
                Number(crc, number, kv.Value.Length);
                crc.Append(kv.Value);
            }
        }
        return new HashKvResult(crc.GetCurrentHashAsUInt32(), at, _compactRevision, _currentRevision);
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
        if (!_index.TryGetValue(new KeyHistory(kv.Key), out var history)) return kv;
        var index = LastAtOrBelow(history, kv.ModRevision);
        return index >= 0 && history[index].Kv is { } stored && stored.Equals(kv) ? stored : kv;
    }
}
