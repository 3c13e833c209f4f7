using System.Buffers.Binary;
using System.IO.Hashing;
using Keel.Core.Encoding;
using Keel.Core;

namespace Keel.Mvcc;

/// <summary>
/// The store captured at one revision for a snapshot, to be encoded later and on any thread while the store goes on
/// (issue 11: a snapshot never stalls the node loop). Capturing freezes the key index in O(1) (<see cref="KeyIndex.Freeze"/>:
/// the store copies any node or key history of the frozen generation before it changes it) and copies the watch
/// history's flat arrays. The shared <see cref="KeyValue"/> objects are immutable.
/// </summary>
/// <remarks>
/// Capture is O(retained revisions) of array copies on the store's thread (the index is a root pointer; walking a
/// sorted set of a million keys took 130–180 ms) instead of the encoding of every value (seconds for hundreds of
/// megabytes); <see cref="WriteTo"/> then
/// produces exactly the bytes <see cref="MvccStore.Snapshot"/> would have produced at the moment of capture.
/// </remarks>
public sealed class StoreImage
{
    private static ReadOnlySpan<byte> Magic => "KMVC"u8;

    private readonly long _currentRevision;
    private readonly long _compactRevision;
    private readonly long _lastHybridTimestamp;
    private readonly KeyIndex.Frozen _index;
    private readonly CapturedRevisionLog _log;
    private readonly ValueSegment[] _valueSegments;
    private long _sizeBytes = -1;

    internal StoreImage(long currentRevision, long compactRevision, long lastHybridTimestamp, KeyIndex.Frozen index, CapturedRevisionLog log,
        ValueSegment[] valueSegments)
    {
        _valueSegments = valueSegments;
        _currentRevision = currentRevision;
        _compactRevision = compactRevision;
        _lastHybridTimestamp = lastHybridTimestamp;
        _index = index;
        _log = log;
    }

    internal static StoreImage Capture(long currentRevision, long compactRevision, long lastHybridTimestamp, KeyIndex index, RevisionLog log,
        ValueSegment[] valueSegments) =>
        new(currentRevision, compactRevision, lastHybridTimestamp, index.Freeze(), log.Capture(), valueSegments);

    /// <summary>The store revision the image reflects.</summary>
    public long Revision => _currentRevision;

    /// <summary>CRC-32 over every captured version at or below <paramref name="at"/>, in key then revision order (see <see cref="MvccStore.HashKv"/>).</summary>
    internal uint Crc(long at)
    {
        var crc = new Crc32();
        Span<byte> number = stackalloc byte[8];
        void Number(Crc32 hash, Span<byte> scratch, long value)
        {
            BinaryPrimitives.WriteInt64LittleEndian(scratch, value);
            hash.Append(scratch);
        }
        foreach (var frozen in _index)
        {
            var history = frozen.Capture();
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
                Number(crc, number, kv.ValueLength);
                crc.Append(kv.ValueSpan);
            }
        }
        ReleaseResidentPages();
        return crc.GetCurrentHashAsUInt32();
    }

    /// <summary>Every value was read: file-backed segments drop their pages from the process again (safe on any thread).</summary>
    private void ReleaseResidentPages()
    {
        foreach (var segment in _valueSegments) segment.ReleaseResidentPages();
    }

    /// <summary>The exact size of the encoded image, in 64-bit arithmetic (may exceed 2 GiB); computed once.</summary>
    public long SizeBytes => _sizeBytes >= 0 ? _sizeBytes : _sizeBytes = ChecksummedFrame.OverheadBytes(Magic) + PayloadBytes();

    /// <summary>The encoded image in a new array.</summary>
    /// <exception cref="ImageTooLargeException">The image would not fit in one array (about 2 GiB).</exception>
    public byte[] ToArray()
    {
        var buffer = new byte[ImageSize.CheckFitsOneArray(SizeBytes, "the MVCC store's snapshot image")];
        var writer = new ChunkedImageWriter(buffer);
        WriteTo(writer);
        writer.Complete();
        return buffer;
    }

    /// <summary>
    /// Writes the image ("KMVC" version 2, see <see cref="MvccStore.Snapshot"/>) through <paramref name="writer"/>, which
    /// may stream it in bounded chunks (a snapshot file) or write it into an array; <see cref="SizeBytes"/> bytes in all.
    /// </summary>
    public void WriteTo(ChunkedImageWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var start = writer.Position;
        writer.BeginFrame(Magic, MvccStore.CurrentSnapshotVersion);
        writer.I64(_currentRevision);
        writer.I64(_compactRevision);
        writer.I64(_lastHybridTimestamp);
        writer.I32(_index.Count);
        foreach (var frozen in _index)
        {
            var history = frozen.Capture();
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
                writer.I32(kv.ValueLength);
                writer.Bytes(kv.ValueSpan);
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
                var history = Find(change.Kv.Key);
                if (change.Type == EventType.Put) WriteVersionRef(writer, history, change.Kv);
                if (change.PrevKv is null) writer.U8(MvccStore.NoVersion);
                else WriteVersionRef(writer, history, change.PrevKv);
            }
        }
        writer.EndFrame();
        Invariant.Check(writer.Position - start == SizeBytes, "encoded size was computed wrongly");
        ReleaseResidentPages();
    }

    /// <summary>The payload size, summed in 64 bits (a 32-bit sum wrapped past 2 GiB of state on every member at once).</summary>
    internal long PayloadBytes()
    {
        long payload = 8 * 3 + 4;
        foreach (var frozen in _index)
        {
            var history = frozen.Capture();
            payload += 4 + history.Key.Length + 4;
            for (var i = 0; i < history.Count; i++) payload += VersionBytes(history[i]);
        }
        payload += 4;
        for (var r = 0; r < _log.Count; r++)
        {
            payload += 8 + 8 + 4;
            foreach (var change in _log.ChangesOf(r))
            {
                var history = Find(change.Kv.Key);
                payload += 1 + 4 + change.Kv.Key.Length;
                if (change.Type == EventType.Put) payload += VersionRefBytes(history, change.Kv);
                payload += change.PrevKv is null ? 1 : VersionRefBytes(history, change.PrevKv);
            }
        }
        return payload;
    }

    /// <summary>Encoded size of one retained version in the index section.</summary>
    internal static long VersionBytes(KeyRevision entry) => 8 + 1 + (entry.Kv is null ? 0 : 8 * 3 + 4 + (long)entry.Kv.ValueLength);

    private static long VersionRefBytes(CapturedHistory? history, KeyValue kv) =>
        IsIndexed(history, kv) ? 1 + 8 : 1 + 8 * 4 + 4 + (long)kv.ValueLength;

    /// <summary>Whether the index holds this very version object (then the image refers to it by revision).</summary>
    private static bool IsIndexed(CapturedHistory? captured, KeyValue kv)
    {
        if (captured is not { } history || !ReferenceEquals(history.Key, kv.Key)) return false;
        var index = history.LastAtOrBelow(kv.ModRevision);
        return index >= 0 && ReferenceEquals(history[index].Kv, kv);
    }

    /// <summary>The captured history of <paramref name="key"/> (a lookup in the frozen index).</summary>
    private CapturedHistory? Find(byte[] key) => _index.TryGetValue(key, out var history) ? history.Capture() : null;

    private static void WriteVersionRef(ChunkedImageWriter writer, CapturedHistory? history, KeyValue kv)
    {
        if (IsIndexed(history, kv))
        {
            writer.U8(MvccStore.IndexedVersion);
            writer.I64(kv.ModRevision);
            return;
        }
        writer.U8(MvccStore.InlineVersion);
        writer.I64(kv.CreateRevision);
        writer.I64(kv.ModRevision);
        writer.I64(kv.Version);
        writer.I64(kv.Lease);
        writer.I32(kv.ValueLength);
        writer.Bytes(kv.ValueSpan);
    }
}

/// <summary>
/// What <see cref="MvccStore.HashKv"/> hashes, captured on the store's thread (<see cref="MvccStore.CaptureForHash"/>)
/// so the O(store) hash runs elsewhere.
/// </summary>
public sealed class StoreHashCapture
{
    private readonly StoreImage _image;
    private readonly long _at;
    private readonly long _compactRevision;
    private readonly long _currentRevision;

    internal StoreHashCapture(StoreImage image, long at, long compactRevision, long currentRevision)
    {
        _image = image;
        _at = at;
        _compactRevision = compactRevision;
        _currentRevision = currentRevision;
    }

    /// <summary>The store's revision at capture.</summary>
    public long CurrentRevision => _currentRevision;

    /// <summary>Computes the digest (any thread).</summary>
    public HashKvResult Hash() => new(_image.Crc(_at), _at, _compactRevision, _currentRevision);
}
