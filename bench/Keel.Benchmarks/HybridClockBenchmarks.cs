using BenchmarkDotNet.Attributes;

namespace Keel.Benchmarks;

using Keel.HybridClock;

/// <summary>
/// Hot-path cost of <see cref="HybridLogicalClock"/>: local events and receives, each loop doing what a real driver does
/// (check whether an upper bound must be persisted, acknowledge it). Target: under 25 ns and 0 bytes per call.
/// </summary>
[MemoryDiagnoser]
public class HybridClockBenchmarks
{
    private const int Calls = 1024;
    private HybridLogicalClock _clock = null!;
    private long _wallMs;

    [GlobalSetup]
    public void Setup()
    {
        _clock = new HybridLogicalClock();
        _wallMs = 1_767_225_600_000;
    }

    /// <summary>
    /// The anchor: reading the system wall clock in Unix milliseconds, which a real host does before every
    /// <c>Now</c>. Ratios against it survive a noisy machine better than nanoseconds do.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Calls, Baseline = true)]
    public long Anchor_ReadWallClock()
    {
        long sum = 0;
        for (var i = 0; i < Calls; i++) sum += DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        return sum;
    }

    /// <summary>Local events with the wall clock advancing 1 ms per call: issues (wall, 0).</summary>
    [Benchmark(OperationsPerInvoke = Calls)]
    public ulong Now_AdvancingWall()
    {
        var clock = _clock;
        var wall = _wallMs;
        ulong sum = 0;
        for (var i = 0; i < Calls; i++)
        {
            sum += clock.Now(++wall).Raw;
            if (clock.IsUpperBoundPersistPending) clock.UpperBoundPersisted(clock.UpperBoundMs);
        }
        _wallMs = wall;
        return sum;
    }

    /// <summary>Local events within one millisecond (16 per ms): mostly logical increments.</summary>
    [Benchmark(OperationsPerInvoke = Calls)]
    public ulong Now_SameMillisecond()
    {
        var clock = _clock;
        var wall = _wallMs;
        ulong sum = 0;
        for (var i = 0; i < Calls; i++)
        {
            sum += clock.Now(wall + (i >> 4)).Raw;
            if (clock.IsUpperBoundPersistPending) clock.UpperBoundPersisted(clock.UpperBoundMs);
        }
        _wallMs = wall + (Calls >> 4);
        return sum;
    }

    /// <summary>Receives of a remote timestamp 2 ms ahead of the local wall: adopts the remote time.</summary>
    [Benchmark(OperationsPerInvoke = Calls)]
    public ulong Update_RemoteAhead()
    {
        var clock = _clock;
        var wall = _wallMs;
        ulong sum = 0;
        for (var i = 0; i < Calls; i++)
        {
            wall++;
            sum += clock.Update(HybridTimestamp.FromRaw((ulong)(wall + 2) << HybridTimestamp.LogicalBits), wall).Raw;
            if (clock.IsUpperBoundPersistPending) clock.UpperBoundPersisted(clock.UpperBoundMs);
        }
        _wallMs = wall;
        return sum;
    }

    /// <summary>Non-throwing receives of a remote timestamp behind the local clock.</summary>
    [Benchmark(OperationsPerInvoke = Calls)]
    public ulong TryUpdate_RemoteBehind()
    {
        var clock = _clock;
        var wall = _wallMs;
        ulong sum = 0;
        for (var i = 0; i < Calls; i++)
        {
            wall++;
            if (clock.TryUpdate(HybridTimestamp.FromRaw((ulong)(wall - 50) << HybridTimestamp.LogicalBits), wall, out var ts))
                sum += ts.Raw;
            if (clock.IsUpperBoundPersistPending) clock.UpperBoundPersisted(clock.UpperBoundMs);
        }
        _wallMs = wall;
        return sum;
    }
}
