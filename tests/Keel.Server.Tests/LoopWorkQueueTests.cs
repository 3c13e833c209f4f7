using System.Diagnostics;
using Keel.Server.Hosting;

namespace Keel.Server.Tests;

/// <summary>The node loop's inbox: a timed wait that ends on a write, on the timeout (a tick is due) or on completion.</summary>
public sealed class LoopWorkQueueTests
{
    [Fact]
    public void A_wait_with_nothing_queued_returns_after_its_timeout_so_the_loop_can_tick()
    {
        using var queue = new LoopWorkQueue();
        var clock = Stopwatch.StartNew();
        Assert.True(queue.WaitToRead(20));
        Assert.True(clock.ElapsedMilliseconds >= 15, $"returned after {clock.ElapsedMilliseconds} ms");
        Assert.False(queue.TryRead(out _));
    }

    [Fact]
    public async Task A_write_wakes_a_long_wait_at_once()
    {
        using var queue = new LoopWorkQueue();
        var woke = Task.Run(() => queue.WaitToRead(60_000));
        Assert.True(queue.TryWrite(() => { }));
        Assert.True(await woke.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(queue.TryRead(out _));
    }

    [Fact]
    public void A_completed_queue_is_drained_only_after_its_last_item_is_taken()
    {
        using var queue = new LoopWorkQueue();
        Assert.True(queue.TryWrite(() => { }));
        queue.Complete();
        Assert.False(queue.TryWrite(() => { }));
        Assert.False(queue.IsDrained);
        Assert.True(queue.WaitToRead(0));
        Assert.True(queue.TryRead(out _));
        Assert.True(queue.IsDrained);
        Assert.False(queue.WaitToRead(60_000));
    }
}
