namespace Keel.HybridClock.Tests;

public sealed class AllocationTests
{
    [Fact]
    public void Now_Update_and_TryUpdate_do_not_allocate()
    {
        var clock = new HybridLogicalClock();
        var wall = Generators.BaseWallMs;
        void Run(int calls)
        {
            for (var i = 0; i < calls; i++)
            {
                wall++;
                clock.Now(wall);
                clock.Update(new HybridTimestamp(wall + 3, i & 0xFFFF), wall);
                clock.TryUpdate(new HybridTimestamp(wall + 10_000, 0), wall, out _); // rejected: no exception, no allocation
                if (clock.IsUpperBoundPersistPending) clock.UpperBoundPersisted(clock.UpperBoundMs);
            }
        }
        Run(1000); // warm up (JIT)

        var before = GC.GetAllocatedBytesForCurrentThread();
        Run(10_000);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.Equal(11_000, clock.RejectedRemoteCount);
    }

    [Fact]
    public void TryFormat_and_span_parsing_do_not_allocate()
    {
        var ts = new HybridTimestamp(1_795_688_130_123, 4);
        var buffer = new char[HybridTimestamp.MaxFormattedLength];
        ts.TryFormat(buffer, out _);
        HybridTimestamp.TryParse(buffer.AsSpan(0, HybridTimestamp.FormattedLength), out _);
        HybridTimestamp.TryParse("2026-02-30T10:15:30.123Z+0004".AsSpan(), out _);

        var before = GC.GetAllocatedBytesForCurrentThread();
        var ok = ts.TryFormat(buffer, out var written);
        var parsed = HybridTimestamp.TryParse(buffer.AsSpan(0, written), out var back);
        var rejected = !HybridTimestamp.TryParse("2026-02-30T10:15:30.123Z+0004".AsSpan(), out _);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(ok && parsed && rejected);
        Assert.Equal(ts, back);
        Assert.Equal(0, allocated);
    }
}
