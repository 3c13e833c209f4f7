using System.Diagnostics;

namespace Keel.Leases;

/// <summary>
/// An indexed binary min-heap of leases ordered by (deadline, id). Every lease knows its slot, so a keep-alive moves it
/// in O(log n) without allocating, and removal of an arbitrary lease (revoke) is O(log n) too.
/// </summary>
/// <remarks>
/// The order is total (ids are unique), so the sequence of leases popped is fully determined by the deadlines, whatever
/// the heap's internal layout; that is what makes expiry order deterministic across replicas.
/// </remarks>
internal sealed class ExpiryQueue
{
    private LeaseEntry[] _heap = new LeaseEntry[16];

    public int Count { get; private set; }

    public LeaseEntry this[int index] => _heap[index];

    public static bool Precedes(LeaseEntry a, LeaseEntry b) =>
        a.ExpiresAtMs < b.ExpiresAtMs || (a.ExpiresAtMs == b.ExpiresAtMs && a.Id < b.Id);

    public void Add(LeaseEntry lease)
    {
        Debug.Assert(lease.HeapIndex < 0);
        if (Count == _heap.Length) Array.Resize(ref _heap, _heap.Length * 2);
        _heap[Count] = lease;
        lease.HeapIndex = Count;
        Count++;
        SiftUp(lease.HeapIndex);
    }

    public LeaseEntry? Peek() => Count == 0 ? null : _heap[0];

    public void Remove(LeaseEntry lease)
    {
        var index = lease.HeapIndex;
        Debug.Assert(index >= 0 && index < Count && ReferenceEquals(_heap[index], lease));
        Count--;
        var last = _heap[Count];
        _heap[Count] = null!;
        lease.HeapIndex = -1;
        if (index == Count) return;
        _heap[index] = last;
        last.HeapIndex = index;
        Update(last);
    }

    /// <summary>Restores the heap order after <paramref name="lease"/>'s deadline changed.</summary>
    public void Update(LeaseEntry lease)
    {
        var index = lease.HeapIndex;
        if (index > 0 && Precedes(lease, _heap[(index - 1) / 2])) SiftUp(index);
        else SiftDown(index);
    }

    /// <summary>Rebuilds the heap order after many deadlines changed at once (Floyd, O(n)).</summary>
    public void Heapify()
    {
        for (var i = Count / 2 - 1; i >= 0; i--) SiftDown(i);
    }

    /// <summary>True when every parent precedes its children and every lease knows its slot.</summary>
    public bool IsConsistent()
    {
        for (var i = 0; i < Count; i++)
        {
            if (_heap[i].HeapIndex != i) return false;
            if (i > 0 && Precedes(_heap[i], _heap[(i - 1) / 2])) return false;
        }
        return true;
    }

    private void SiftUp(int index)
    {
        var lease = _heap[index];
        while (index > 0)
        {
            var parentIndex = (index - 1) / 2;
            var parent = _heap[parentIndex];
            if (!Precedes(lease, parent)) break;
            _heap[index] = parent;
            parent.HeapIndex = index;
            index = parentIndex;
        }
        _heap[index] = lease;
        lease.HeapIndex = index;
    }

    private void SiftDown(int index)
    {
        var lease = _heap[index];
        while (true)
        {
            var child = 2 * index + 1;
            if (child >= Count) break;
            if (child + 1 < Count && Precedes(_heap[child + 1], _heap[child])) child++;
            if (!Precedes(_heap[child], lease)) break;
            _heap[index] = _heap[child];
            _heap[index].HeapIndex = index;
            index = child;
        }
        _heap[index] = lease;
        lease.HeapIndex = index;
    }
}
