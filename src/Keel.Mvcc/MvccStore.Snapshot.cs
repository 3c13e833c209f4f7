using System.Buffers.Binary;
using System.IO.Hashing;
using Keel.Core.Encoding;
using Keel.Core;

namespace Keel.Mvcc;

public sealed partial class MvccStore
{
    private static ReadOnlySpan<byte> SnapshotMagic => "KMVC"u8;

    private const byte SnapshotVersion = 1;

    // The smallest encoded event: type, a key-value with empty key and value, and the "no previous" byte.
    private const int MinEventBytes = 1 + 4 + 8 * 4 + 4 + 1;

    /// <summary>
    /// Encodes the whole state (revisions, index with every retained version, watch history with timestamps) in a
    /// <see cref="ChecksummedFrame"/> ("KMVC", version 1), for Raft snapshots. Size is computed first, one allocation.
    /// The log's versions are written out again rather than referenced, so the snapshot is larger than the state by
    /// the retained history; <see cref="Restore"/> shares them again.
    /// </summary>
    public byte[] Snapshot()
    {
        var payload = 8 * 3 + 4;
        foreach (var history in _index)
        {
            payload += 4 + history.Key.Length + 4;
            foreach (var entry in history.Entries) payload += 8 + 1 + (entry.Kv is null ? 0 : 8 * 3 + 4 + entry.Kv.Value.Length);
        }
        payload += 4;
        foreach (var record in _log)
        {
            payload += 8 + 8 + 4;
            foreach (var change in record.Events) payload += 1 + KvSize(change.Kv) + 1 + (change.PrevKv is null ? 0 : KvSize(change.PrevKv));
        }
        var buffer = new byte[ChecksummedFrame.OverheadBytes(SnapshotMagic) + payload];
        var writer = new BinarySpanWriter(buffer);
        ChecksummedFrame.WriteHeader(ref writer, SnapshotMagic, SnapshotVersion);
        writer.I64(_currentRevision);
        writer.I64(_compactRevision);
        writer.I64(_lastHybridTimestamp);
        writer.I32(_index.Count);
        foreach (var history in _index)
        {
            writer.I32(history.Key.Length);
            writer.Bytes(history.Key);
            writer.I32(history.Entries.Count);
            foreach (var entry in history.Entries)
            {
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
        foreach (var record in _log)
        {
            writer.I64(record.Revision);
            writer.I64(record.HybridTimestamp);
            writer.I32(record.Events.Length);
            foreach (var change in record.Events)
            {
                writer.U8((byte)change.Type);
                WriteKv(ref writer, change.Kv);
                writer.U8(change.PrevKv is null ? (byte)0 : (byte)1);
                if (change.PrevKv is not null) WriteKv(ref writer, change.PrevKv);
            }
        }
        ChecksummedFrame.WriteChecksum(ref writer);
        writer.AssertFull();
        return buffer;
    }

    /// <summary>Rebuilds a store from <see cref="Snapshot"/> bytes and checks its invariants.</summary>
    /// <exception cref="EncodingFormatException">The bytes are truncated, damaged or not an MVCC snapshot, or they
    /// decode to a state that breaks the store's invariants (<see cref="EncodingProblem.InconsistentContent"/>: duplicate
    /// keys, revisions out of order... which a checksum cannot rule out when the sender itself was wrong).</exception>
    public static MvccStore Restore(ReadOnlySpan<byte> snapshot)
    {
        var reader = ChecksummedFrame.Open(snapshot, SnapshotMagic, SnapshotVersion);
        try
        {
            return ReadStore(ref reader);
        }
        catch (InvariantViolationException e)
        {
            // Untrusted input that decodes to an impossible store is a format error, not a bug in this process.
            throw new EncodingFormatException(reader.Position, e.Message, e);
        }
    }

    private static MvccStore ReadStore(ref BinarySpanReader reader)
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
                if (!live) { history.Entries.Add(new KeyRevision(revision, null)); continue; }
                var create = reader.I64();
                var version = reader.I64();
                var lease = reader.I64();
                var value = reader.ReadBytes(reader.ReadCount(1)).ToArray();
                history.Entries.Add(new KeyRevision(revision, new KeyValue(history.Key, create, revision, version, value, lease)));
            }
            if (!store._index.Add(history)) throw new EncodingFormatException(reader.Position, "a key appears twice in the snapshot");
        }
        var recordCount = reader.ReadCount(20);
        for (var r = 0; r < recordCount; r++)
        {
            var revision = reader.I64();
            var timestamp = reader.I64();
            var events = new WatchEvent[reader.ReadCount(MinEventBytes)];
            for (var e = 0; e < events.Length; e++)
            {
                var type = (EventType)reader.U8();
                var kv = store.Intern(ReadKv(ref reader));
                var prev = reader.U8() != 0 ? store.Intern(ReadKv(ref reader)) : null;
                events[e] = new WatchEvent(type, kv, prev);
            }
            store._log.Add(new RevisionRecord(revision, timestamp, events));
        }
        if (!reader.IsAtEnd) throw new EncodingFormatException(EncodingProblem.CountOutOfRange, reader.Position, reader.Remaining, 0);
        store._sizeBytes = store.ComputeSizeBytes();
        store.AssertInvariants();
        return store;
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
            foreach (var entry in history.Entries)
            {
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

    private static int KvSize(KeyValue kv) => 4 + kv.Key.Length + 8 * 4 + 4 + kv.Value.Length;

    private static void WriteKv(ref BinarySpanWriter writer, KeyValue kv)
    {
        writer.I32(kv.Key.Length);
        writer.Bytes(kv.Key);
        writer.I64(kv.CreateRevision);
        writer.I64(kv.ModRevision);
        writer.I64(kv.Version);
        writer.I64(kv.Lease);
        writer.I32(kv.Value.Length);
        writer.Bytes(kv.Value);
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
        var index = LastAtOrBelow(history.Entries, kv.ModRevision);
        return index >= 0 && history.Entries[index].Kv is { } stored && stored.Equals(kv) ? stored : kv;
    }
}
