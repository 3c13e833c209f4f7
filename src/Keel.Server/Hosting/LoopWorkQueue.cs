using System.Collections.Concurrent;

namespace Keel.Server.Hosting;

/// <summary>
/// The node loop's inbox: many threads post work items, one dedicated thread takes them in order and blocks while
/// there are none.
/// </summary>
/// <remarks>
/// The loop blocks its thread on purpose (WAL fsync is synchronous), so it must own a thread instead of borrowing one
/// from the thread pool, and its wake-up must not depend on the pool either: a channel's waiter is completed by a
/// pool continuation, so when the pool is starved (2 cores, a pool thread blocked elsewhere) the loop would sleep
/// through heartbeats until the pool injects a thread, about half a second later. Here a writer wakes the loop
/// thread directly through an event.
/// </remarks>
internal sealed class LoopWorkQueue : IDisposable
{
    private readonly ConcurrentQueue<Action> _items = new();
    private readonly ManualResetEventSlim _signal = new(initialState: false, spinCount: 0);
    private volatile bool _completed;

    /// <summary>Adds a work item; false once <see cref="Complete"/> was called (the node is stopping).</summary>
    public bool TryWrite(Action work)
    {
        if (_completed) return false;
        _items.Enqueue(work);
        _signal.Set();
        return true;
    }

    /// <summary>Takes the oldest work item, if any.</summary>
    public bool TryRead(out Action work) => _items.TryDequeue(out work!);

    /// <summary>
    /// Blocks the calling (loop) thread until a work item is queued or <paramref name="timeoutMs"/> passes (the loop's
    /// next tick is due); false only when the queue was completed and is empty.
    /// </summary>
    /// <remarks>
    /// The loop keeps its own time instead of being woken by a timer: a timer's callback runs on a pool thread, and on
    /// 2 cores a hundred of those wake-ups a second (each followed by the pool's spin-wait for more work) cost an idle
    /// member about a tenth of a core.
    /// </remarks>
    public bool WaitToRead(int timeoutMs)
    {
        // Reset before looking, so a write between the look and the wait still wakes us.
        _signal.Reset();
        if (!_items.IsEmpty) return true;
        if (_completed) return false;
        if (timeoutMs > 0) _signal.Wait(timeoutMs);
        return !_completed || !_items.IsEmpty;
    }

    /// <summary>True once <see cref="Complete"/> was called and every queued item was taken: the loop ends.</summary>
    public bool IsDrained => _completed && _items.IsEmpty;

    /// <summary>No more writes; the loop drains what is queued and ends.</summary>
    public void Complete()
    {
        _completed = true;
        _signal.Set();
    }

    /// <inheritdoc/>
    public void Dispose() => _signal.Dispose();
}
