using System.Runtime.CompilerServices;
using Keel.Core;

namespace Keel.Heartbeat;

/// <summary>
/// A sliding window of the last <see cref="Capacity"/> heartbeat inter-arrival intervals with their running sum and
/// sum of squares, so that the mean and the standard deviation cost O(1) per added interval.
/// </summary>
/// <remarks>
/// Akka's <c>HeartbeatHistory</c> (akka-remote/src/main/scala/akka/remote/PhiAccrualFailureDetector.scala) keeps an
/// immutable vector plus running sums. This is a preallocated ring buffer (no allocation after construction) whose
/// sums are exact integers (<see cref="long"/> and <see cref="Int128"/>), so adding and evicting never accumulates
/// floating-point drift and the running statistics always equal a recomputation over the window. The variance is the
/// population variance, as in Akka: <c>sumOfSquares / n - mean^2</c>, computed exactly as
/// <c>(n * sumOfSquares - sum^2) / n^2</c>, which can never come out negative.
/// </remarks>
public sealed class HeartbeatHistory
{
    /// <summary>The largest interval accepted (about 35 years); bounds the sums so they cannot overflow.</summary>
    public const long MaxIntervalMs = 1L << 40;

    /// <summary>The largest window accepted (about a million intervals, 8 MiB).</summary>
    public const int MaxCapacity = 1 << 20;

    private readonly long[] _intervalsMs;
    private int _oldest;
    private int _count;
    private long _sumMs;
    private Int128 _sumOfSquaresMs2;

    /// <summary>Creates an empty window holding at most <paramref name="capacity"/> intervals.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When <paramref name="capacity"/> is outside [1, <see cref="MaxCapacity"/>].</exception>
    public HeartbeatHistory(int capacity)
    {
        if (capacity < 1 || capacity > MaxCapacity)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity,
                $"The heartbeat history capacity must be between 1 and {MaxCapacity} intervals.");
        _intervalsMs = new long[capacity];
    }

    /// <summary>The most intervals the window holds; older ones are evicted.</summary>
    public int Capacity => _intervalsMs.Length;

    /// <summary>How many intervals the window holds now.</summary>
    public int Count => _count;

    /// <summary>The exact sum of the intervals in the window.</summary>
    public long SumMs => _sumMs;

    /// <summary>The exact sum of the squared intervals in the window.</summary>
    public Int128 SumOfSquaresMs2 => _sumOfSquaresMs2;

    /// <summary>The mean interval; 0 when empty.</summary>
    public double MeanMs => _count == 0 ? 0 : (double)_sumMs / _count;

    /// <summary>The population variance of the intervals (never negative); 0 when empty.</summary>
    public double VarianceMs2
    {
        get
        {
            if (_count == 0) return 0;
            var numerator = _count * _sumOfSquaresMs2 - (Int128)_sumMs * _sumMs;
            return (double)numerator / ((double)_count * _count);
        }
    }

    /// <summary>The population standard deviation of the intervals; 0 when empty.</summary>
    public double StdDeviationMs => Math.Sqrt(VarianceMs2);

    /// <summary>The interval at <paramref name="index"/>, 0 being the oldest in the window.</summary>
    public long this[int index]
    {
        get
        {
            if ((uint)index >= (uint)_count)
                throw new ArgumentOutOfRangeException(nameof(index), index, $"The history holds {_count} intervals.");
            return _intervalsMs[Wrap(_oldest + index)];
        }
    }

    /// <summary>Appends an interval, evicting the oldest one when the window is full. O(1), allocation-free.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When the interval is negative or above <see cref="MaxIntervalMs"/>.</exception>
    public void Add(long intervalMs)
    {
        if ((ulong)intervalMs > MaxIntervalMs)
            throw new ArgumentOutOfRangeException(nameof(intervalMs), intervalMs,
                $"A heartbeat interval must be between 0 and {MaxIntervalMs} ms.");
        if (_count == _intervalsMs.Length)
        {
            var evicted = _intervalsMs[_oldest];
            _sumMs -= evicted;
            _sumOfSquaresMs2 -= (Int128)evicted * evicted;
            _intervalsMs[_oldest] = intervalMs;
            _oldest = Wrap(_oldest + 1);
        }
        else
        {
            _intervalsMs[Wrap(_oldest + _count)] = intervalMs;
            _count++;
        }
        _sumMs += intervalMs;
        _sumOfSquaresMs2 += (Int128)intervalMs * intervalMs;
    }

    /// <summary>Empties the window.</summary>
    public void Clear()
    {
        _oldest = 0;
        _count = 0;
        _sumMs = 0;
        _sumOfSquaresMs2 = 0;
    }

    /// <summary>Copies the intervals, oldest first, into <paramref name="destination"/>; returns how many were copied.</summary>
    public int CopyTo(Span<long> destination)
    {
        var n = Math.Min(_count, destination.Length);
        for (var i = 0; i < n; i++) destination[i] = _intervalsMs[Wrap(_oldest + i)];
        return n;
    }

    /// <summary>
    /// Recomputes the sums from the stored intervals and checks them against the running sums (O(n): for tests and
    /// simulations, not hot paths).
    /// </summary>
    public void AssertInvariants()
    {
        Invariant.Check(_count >= 0 && _count <= _intervalsMs.Length, "history count within capacity");
        Invariant.Check(_oldest >= 0 && _oldest < _intervalsMs.Length, "oldest index within the ring");
        long sum = 0;
        Int128 sumOfSquares = 0;
        for (var i = 0; i < _count; i++)
        {
            var interval = _intervalsMs[Wrap(_oldest + i)];
            Invariant.Check(interval >= 0 && interval <= MaxIntervalMs, "stored interval within range");
            sum += interval;
            sumOfSquares += (Int128)interval * interval;
        }
        Invariant.Check(sum == _sumMs, "running sum equals the sum over the window");
        Invariant.Check(sumOfSquares == _sumOfSquaresMs2, "running sum of squares equals the sum over the window");
        Invariant.Check(VarianceMs2 >= 0, "variance is never negative");
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Wrap(int index) => index >= _intervalsMs.Length ? index - _intervalsMs.Length : index;
}
