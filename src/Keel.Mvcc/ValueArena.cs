using Keel.Core;

namespace Keel.Mvcc;

/// <summary>
/// A fixed-size block of memory that an <see cref="MvccStore"/> copies values into, one after another, so a value is
/// not an array of its own on the GC heap: a file mapping in the server (the values live in the page cache, as bbolt's
/// pages do for etcd, and count in the process's memory only while they are read), plain memory in the simulator.
/// </summary>
/// <remarks>
/// The contract every implementation keeps: bytes are written once, at offsets past everything written before, on the
/// store's thread; once written they never change and can be read on any thread for as long as the segment object is
/// reachable. A segment is freed by the garbage collector when no version refers to it any more (no index, watch history,
/// capture or response), which is what makes it safe to read a captured version on another thread while the store moves
/// values out of a sparse segment (see <see cref="MvccStore.Compact"/>).
/// </remarks>
public abstract class ValueSegment
{
    /// <summary>Creates a segment of <paramref name="capacityBytes"/> bytes.</summary>
    protected ValueSegment(int capacityBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacityBytes);
        CapacityBytes = capacityBytes;
    }

    /// <summary>Bytes the segment holds.</summary>
    public int CapacityBytes { get; }

    /// <summary>Bytes of values the store's index refers to in this segment (the store's thread only).</summary>
    internal long LiveBytes { get; set; }

    /// <summary>The <paramref name="length"/> bytes at <paramref name="offset"/>, written before; safe on any thread.</summary>
    public abstract ReadOnlySpan<byte> Read(int offset, int length);

    /// <summary>Copies <paramref name="bytes"/> to <paramref name="offset"/>, past everything written before (the store's thread).</summary>
    public abstract void Write(int offset, ReadOnlySpan<byte> bytes);

    /// <summary>
    /// The store writes nothing more here. A file-backed segment drops its pages from the process (they stay in the
    /// page cache and come back when read); memory does nothing.
    /// </summary>
    public virtual void Seal() { }

    /// <summary>
    /// A reader went through much of the segment (a snapshot was encoded from it): a file-backed segment drops its pages
    /// from the process again. Safe on any thread and at any time, since the bytes stay in the file.
    /// </summary>
    public virtual void ReleaseResidentPages() { }
}

/// <summary>Makes the segments an <see cref="MvccStore"/> copies its values into (see <see cref="ValueSegment"/>).</summary>
public abstract class ValueSegmentSource
{
    /// <summary>The size of a segment; a value larger than it gets a segment of its own size.</summary>
    public abstract int SegmentBytes { get; }

    /// <summary>A new, empty segment of at least <paramref name="capacityBytes"/>.</summary>
    /// <exception cref="IOException">The segment could not be made (a full disk, for a file): the store keeps the value
    /// in an array of its own instead, and counts it in <see cref="MvccStore.ValuesOutsideSegments"/>.</exception>
    public abstract ValueSegment Create(int capacityBytes);
}

/// <summary>Segments in plain managed memory: the simulator's (deterministic) and any embedder's without files.</summary>
/// <param name="segmentBytes">Bytes per segment; small ones make every run move values between segments.</param>
public sealed class HeapValueSegmentSource(int segmentBytes) : ValueSegmentSource
{
    /// <inheritdoc/>
    public override int SegmentBytes { get; } = segmentBytes > 0 ? segmentBytes : throw new ArgumentOutOfRangeException(nameof(segmentBytes));

    /// <inheritdoc/>
    public override ValueSegment Create(int capacityBytes) => new HeapValueSegment(capacityBytes);

    private sealed class HeapValueSegment(int capacityBytes) : ValueSegment(capacityBytes)
    {
        private readonly byte[] _bytes = new byte[capacityBytes];

        public override ReadOnlySpan<byte> Read(int offset, int length) => _bytes.AsSpan(offset, length);

        public override void Write(int offset, ReadOnlySpan<byte> bytes) => bytes.CopyTo(_bytes.AsSpan(offset));
    }
}

/// <summary>
/// The store's side of its value segments: where the next value goes, how many bytes of each segment the index still
/// refers to, and which sealed segments are sparse enough that compaction should move their values out (so the space a
/// workload of overwrites leaves behind is given back: at most about twice the live values, plus the retained history).
/// </summary>
internal sealed class ValueArena(ValueSegmentSource source)
{
    // The segments the store writes or refers to: sealed ones with live values, and the tail.
    private readonly List<ValueSegment> _segments = [];
    private ValueSegment? _tail;
    private int _tailUsed;

    public ValueSegmentSource Source => source;

    /// <summary>Segments in use (sealed with live values, and the one being written).</summary>
    public int SegmentCount => _segments.Count;

    /// <summary>Bytes of the segments in use.</summary>
    public long SegmentBytes { get; private set; }

    /// <summary>Bytes of values the index refers to.</summary>
    public long LiveBytes { get; private set; }

    /// <summary>Values kept in arrays of their own because no segment could be made.</summary>
    public long ValuesOutsideSegments { get; private set; }

    /// <summary>Values moved out of sparse segments by compaction, in all.</summary>
    public long ValuesMoved { get; private set; }

    /// <summary>The segments in use now, for a reader that drops their pages once it is done with them.</summary>
    public ValueSegment[] SegmentsInUse() => [.. _segments];

    /// <summary>A version whose value is copied into the tail segment (an empty value, or no segment to be had: an array).</summary>
    public KeyValue Store(byte[] key, long createRevision, long modRevision, long version, ReadOnlySpan<byte> value, long lease)
    {
        if (value.Length == 0) return new KeyValue(key, createRevision, modRevision, version, [], lease);
        if (_tail is null || value.Length > _tail.CapacityBytes - _tailUsed)
        {
            ValueSegment next;
            try
            {
                next = source.Create(Math.Max(source.SegmentBytes, value.Length));
            }
            catch (IOException)
            {
                // Nothing is lost: the value is held the way it was before segments, and the count says so.
                ValuesOutsideSegments++;
                return new KeyValue(key, createRevision, modRevision, version, value.ToArray(), lease);
            }
            Invariant.Check(next.CapacityBytes >= value.Length, "a new value segment holds the value");
            if (_tail is not null)
            {
                _tail.Seal();
                if (_tail.LiveBytes == 0) Retire(_tail);
            }
            _segments.Add(next);
            SegmentBytes += next.CapacityBytes;
            _tail = next;
            _tailUsed = 0;
        }
        var offset = _tailUsed;
        _tail.Write(offset, value);
        _tailUsed += value.Length;
        _tail.LiveBytes += value.Length;
        LiveBytes += value.Length;
        return new KeyValue(key, createRevision, modRevision, version, _tail, offset, value.Length, lease);
    }

    /// <summary>The index now refers to <paramref name="kv"/>'s value once more (a put that keeps the previous value shares it).</summary>
    public void Share(KeyValue kv)
    {
        if (kv.Segment is not { } segment) return;
        segment.LiveBytes += kv.ValueLength;
        LiveBytes += kv.ValueLength;
    }

    /// <summary>The index no longer refers to <paramref name="kv"/> (compaction dropped it).</summary>
    public void Release(KeyValue kv)
    {
        if (kv.Segment is not { } segment) return;
        segment.LiveBytes -= kv.ValueLength;
        LiveBytes -= kv.ValueLength;
        Invariant.Check(segment.LiveBytes >= 0 && LiveBytes >= 0, "a value segment's live bytes never go below zero");
    }

    /// <summary>
    /// The sealed segments less than half used by the index, which the caller empties by moving their live values
    /// (<see cref="Move"/>); they leave the arena's count now and are freed once nothing refers to them.
    /// </summary>
    public HashSet<ValueSegment> TakeSparseSegments()
    {
        var sparse = new HashSet<ValueSegment>(ReferenceEqualityComparer.Instance);
        foreach (var segment in _segments)
            if (!ReferenceEquals(segment, _tail) && segment.LiveBytes * 2 < segment.CapacityBytes) sparse.Add(segment);
        foreach (var segment in sparse) Retire(segment);
        return sparse;
    }

    /// <summary>The same version with its value copied into the tail segment (the old segment's count goes down).</summary>
    public KeyValue Move(KeyValue kv)
    {
        var moved = Store(kv.Key, kv.CreateRevision, kv.ModRevision, kv.Version, kv.ValueSpan, kv.Lease);
        // A retired segment is no longer counted; only what is still counted goes down.
        if (kv.Segment is { } from) from.LiveBytes -= kv.ValueLength;
        LiveBytes -= kv.ValueLength;
        ValuesMoved++;
        return moved;
    }

    private void Retire(ValueSegment segment)
    {
        if (!_segments.Remove(segment)) return;
        SegmentBytes -= segment.CapacityBytes;
        if (ReferenceEquals(segment, _tail))
        {
            _tail = null;
            _tailUsed = 0;
        }
    }
}
