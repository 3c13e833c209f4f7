using Keel.Core;

namespace Keel.Raft;

/// <summary>
/// The append messages in flight to one follower, as a ring of (last index, payload bytes) (etcd
/// <c>tracker/inflights.go</c>). Bounds a pipelined follower both in messages and in bytes, so a slow follower cannot
/// make the leader buffer without limit.
/// </summary>
public sealed class Inflights
{
    private readonly ulong[] _indexes;
    private readonly long[] _bytes;
    private readonly long _maxBytes;
    private int _start;

    /// <summary>Creates a window of <paramref name="capacity"/> messages and <paramref name="maxBytes"/> bytes (0 = unlimited).</summary>
    public Inflights(int capacity, long maxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        _indexes = new ulong[capacity];
        _bytes = new long[capacity];
        _maxBytes = maxBytes;
    }

    /// <summary>Messages in flight.</summary>
    public int Count { get; private set; }

    /// <summary>Payload bytes in flight.</summary>
    public long Bytes { get; private set; }

    /// <summary>Maximum messages in flight.</summary>
    public int Capacity => _indexes.Length;

    /// <summary>True when no more messages may be sent: the count or the byte budget is used up.</summary>
    public bool Full => Count == _indexes.Length || (_maxBytes != 0 && Bytes >= _maxBytes);

    /// <summary>Records a message whose last entry is <paramref name="index"/>. Indexes must increase.</summary>
    internal void Add(ulong index, long bytes)
    {
        Invariant.Check(!Full, "cannot add to a full inflights window");
        if (Count > 0) Invariant.Check(index > _indexes[(_start + Count - 1) % _indexes.Length], "inflight indexes must increase");
        var slot = (_start + Count) % _indexes.Length;
        _indexes[slot] = index;
        _bytes[slot] = bytes;
        Count++;
        Bytes += bytes;
    }

    /// <summary>Frees every message whose last index is at most <paramref name="index"/> (the follower acked it).</summary>
    internal void FreeLe(ulong index)
    {
        while (Count > 0 && _indexes[_start] <= index)
        {
            Bytes -= _bytes[_start];
            _start = (_start + 1) % _indexes.Length;
            Count--;
        }
        if (Count == 0) _start = 0;
    }

    /// <summary>Frees the oldest message in flight (it was probably lost).</summary>
    internal void FreeFirstOne()
    {
        if (Count == 0) return;
        FreeLe(_indexes[_start]);
    }

    /// <summary>Forgets everything in flight.</summary>
    internal void Reset()
    {
        Count = 0;
        Bytes = 0;
        _start = 0;
    }

    /// <summary>Checks count and byte accounting.</summary>
    public void AssertInvariants()
    {
        Invariant.Check(Count >= 0 && Count <= _indexes.Length, "inflight count within capacity");
        long total = 0;
        for (var i = 0; i < Count; i++) total += _bytes[(_start + i) % _indexes.Length];
        Invariant.Check(total == Bytes, "inflight byte accounting matches the ring");
    }
}
