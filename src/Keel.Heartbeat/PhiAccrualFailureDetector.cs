using System.Runtime.CompilerServices;
using Keel.Core;

namespace Keel.Heartbeat;

/// <summary>
/// The phi accrual failure detector (Hayashibara, Défago, Yared, Katayama, "The φ Accrual Failure Detector", SRDS 2004)
/// with exactly the math of Akka's <c>PhiAccrualFailureDetector</c> (akka-remote/src/main/scala/akka/remote/
/// PhiAccrualFailureDetector.scala): instead of a yes/no verdict it reports phi = -log10 of the probability that a
/// heartbeat still arrives this late, given the recent inter-arrival distribution, so the same threshold adapts to
/// fast LANs and jittery WANs alike.
/// </summary>
/// <remarks>
/// <para>Math: <c>mean' = mean(intervals) + acceptablePause</c>, <c>sd = max(stddev(intervals), minStdDev)</c>,
/// <c>y = (dt - mean') / sd</c>, <c>e = exp(-y (1.5976 + 0.070566 y^2))</c> (a logistic approximation of the normal
/// CDF), <c>phi = -log10(e / (1 + e))</c>. The implementation evaluates the algebraically identical
/// <c>log10(1 + exp(z))</c> with <c>z = y (1.5976 + 0.070566 y^2)</c> in a form whose exponential never overflows,
/// so very early heartbeats give 0 and very long silences give a large finite phi, never NaN or infinity.</para>
/// <para>Akka's rules kept: the history is bootstrapped with two intervals mean -/+ mean/4 from the first-heartbeat
/// estimate; an interval is recorded only while the peer is available (a long silence must not skew the
/// statistics); a peer never heard from has phi 0.</para>
/// <para>Keel's additions: intervals shorter than <see cref="PhiAccrualOptions.MinIntervalMs"/> or a fraction of the
/// mean are not recorded (duplicates shrink the mean: scylladb/scylladb#2861), heartbeats may carry a sender sequence
/// number so replays are ignored, and arrival times going backwards are ignored rather than corrupting the history.</para>
/// <para>Cost: O(1) and allocation-free per heartbeat and per phi; the mean and deviation are cached when the history
/// changes, so <see cref="Phi"/> is a handful of flops, one exp and one log. Not thread-safe (sans-I/O core).</para>
/// </remarks>
public sealed class PhiAccrualFailureDetector : IFailureDetector
{
    private const double InverseLn10 = 0.43429448190325182765; // 1 / ln(10)

    private readonly HeartbeatHistory _history;
    private readonly double _acceptablePauseMs;
    private readonly double _minStdDeviationMs;
    private readonly long _bootstrapLowMs;
    private readonly long _bootstrapHighMs;

    private bool _monitoring;
    private long _lastHeartbeatMs;
    private long _intervalStartMs;
    private bool _hasSequence;
    private long _lastSequence;
    private double _meanMs;
    private double _stdDeviationMs;
    private long _minPlausibleIntervalMs;

    /// <summary>Creates a detector for one peer; <paramref name="options"/> defaults to Akka's settings.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When a setting is out of range.</exception>
    public PhiAccrualFailureDetector(PhiAccrualOptions? options = null)
    {
        Options = options ?? new PhiAccrualOptions();
        Options.Validate();
        _history = new HeartbeatHistory(Options.MaxSampleSize);
        _acceptablePauseMs = Options.AcceptableHeartbeatPauseMs;
        _minStdDeviationMs = Options.MinStdDeviationMs;
        var quarter = Options.FirstHeartbeatEstimateMs / 4;
        _bootstrapLowMs = Options.FirstHeartbeatEstimateMs - quarter;
        _bootstrapHighMs = Options.FirstHeartbeatEstimateMs + quarter;
        RefreshStatistics();
    }

    /// <summary>The settings in use.</summary>
    public PhiAccrualOptions Options { get; }

    /// <inheritdoc />
    public double Threshold => Options.Threshold;

    /// <inheritdoc />
    public bool IsMonitoring => _monitoring;

    /// <inheritdoc />
    public long? LastHeartbeatMs => _monitoring ? _lastHeartbeatMs : null;

    /// <summary>How many intervals the statistics are computed over now (2 right after the bootstrap).</summary>
    public int IntervalCount => _history.Count;

    /// <summary>The mean of the recorded intervals (without the acceptable pause).</summary>
    public double IntervalMeanMs => _history.MeanMs;

    /// <summary>The population standard deviation of the recorded intervals, before the <see cref="PhiAccrualOptions.MinStdDeviationMs"/> floor.</summary>
    public double IntervalStdDeviationMs => _history.StdDeviationMs;

    /// <summary>The exact sum of the recorded intervals.</summary>
    public long IntervalSumMs => _history.SumMs;

    /// <summary>The exact sum of the squared recorded intervals.</summary>
    public Int128 IntervalSumOfSquaresMs2 => _history.SumOfSquaresMs2;

    /// <summary>The shortest interval that would be recorded now; shorter ones count only as proof of life.</summary>
    public long MinPlausibleIntervalMs => _minPlausibleIntervalMs;

    /// <summary>Copies the recorded intervals, oldest first; returns how many were copied.</summary>
    public int CopyIntervals(Span<long> destination) => _history.CopyTo(destination);

    /// <inheritdoc />
    public HeartbeatOutcome Heartbeat(long nowMs)
    {
        if (!_monitoring)
        {
            Bootstrap(nowMs);
            return HeartbeatOutcome.Started;
        }
        if (nowMs < _lastHeartbeatMs) return HeartbeatOutcome.IgnoredTimeWentBackwards;

        // Measured from the last recorded arrival, not the last duplicate, so a burst of duplicates neither
        // enters the statistics nor shortens the next genuine interval.
        var intervalMs = nowMs - _intervalStartMs;
        if (intervalMs < _minPlausibleIntervalMs)
        {
            _lastHeartbeatMs = nowMs;
            return HeartbeatOutcome.AcceptedTooSoon;
        }

        HeartbeatOutcome outcome;
        if (Options.MaxRecordedIntervalMs > 0 && intervalMs > Options.MaxRecordedIntervalMs)
        {
            outcome = HeartbeatOutcome.AcceptedAfterSilence;
        }
        else if (IsAvailable(nowMs))
        {
            _history.Add(Math.Min(intervalMs, HeartbeatHistory.MaxIntervalMs));
            RefreshStatistics();
            outcome = HeartbeatOutcome.Accepted;
        }
        else
        {
            outcome = HeartbeatOutcome.AcceptedAfterSilence;
        }
        _lastHeartbeatMs = nowMs;
        _intervalStartMs = nowMs;
        return outcome;
    }

    /// <inheritdoc />
    public HeartbeatOutcome Heartbeat(long nowMs, long sequence)
    {
        if (_hasSequence && sequence <= _lastSequence) return HeartbeatOutcome.IgnoredStaleSequence;
        if (_monitoring && nowMs < _lastHeartbeatMs) return HeartbeatOutcome.IgnoredTimeWentBackwards;
        _hasSequence = true;
        _lastSequence = sequence;
        return Heartbeat(nowMs);
    }

    /// <summary>
    /// Phi at <paramref name="nowMs"/>: how strongly the silence since the last heartbeat suggests the peer is down
    /// (0 while not monitoring). Allocation-free, O(1).
    /// </summary>
    public double Phi(long nowMs) => Suspicion(nowMs, 1);

    /// <summary>Phi with the acceptable pause multiplied by <paramref name="timeoutMultiplier"/> (Lifeguard's local health).</summary>
    /// <exception cref="ArgumentOutOfRangeException">When the multiplier is below 1 or not finite.</exception>
    public double Suspicion(long nowMs, double timeoutMultiplier = 1)
    {
        if (!(timeoutMultiplier >= 1) || double.IsInfinity(timeoutMultiplier)) ThrowBadMultiplier(timeoutMultiplier);
        if (!_monitoring) return 0; // Akka: a peer never heard from is treated as healthy
        var timeDiffMs = (double)(nowMs - _lastHeartbeatMs);
        return ComputePhi(timeDiffMs, _meanMs + _acceptablePauseMs * timeoutMultiplier, _stdDeviationMs);
    }

    /// <inheritdoc />
    public bool IsAvailable(long nowMs) => Phi(nowMs) < Options.Threshold;

    /// <inheritdoc />
    public void Reset()
    {
        _monitoring = false;
        _hasSequence = false;
        _lastSequence = 0;
        _lastHeartbeatMs = 0;
        _intervalStartMs = 0;
        _history.Clear();
        RefreshStatistics();
    }

    /// <summary>
    /// Phi for a silence of <paramref name="timeDiffMs"/> given the expected interval <paramref name="meanMs"/> (already
    /// including any acceptable pause) and <paramref name="stdDeviationMs"/> (must be positive): Akka's formula
    /// <c>-log10(e / (1 + e))</c>, <c>e = exp(-y (1.5976 + 0.070566 y^2))</c>, evaluated without overflow. Always
    /// finite and non-negative.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static double ComputePhi(double timeDiffMs, double meanMs, double stdDeviationMs)
    {
        var y = (timeDiffMs - meanMs) / stdDeviationMs;
        var z = y * (1.5976 + 0.070566 * y * y);
        // -log10(e/(1+e)) with e = exp(-z) equals log10(1 + exp(z)); split at 0 so exp only sees non-positive arguments.
        return z > 0
            ? (z + Math.Log(1 + Math.Exp(-z))) * InverseLn10
            : Math.Log(1 + Math.Exp(z)) * InverseLn10;
    }

    /// <inheritdoc />
    public void AssertInvariants()
    {
        _history.AssertInvariants();
        Invariant.Check(!_monitoring || _history.Count >= 1, "a monitored peer has a bootstrapped history");
        Invariant.Check(!_monitoring || _intervalStartMs <= _lastHeartbeatMs, "the interval start is not after the last heartbeat");
        Invariant.Check(_stdDeviationMs >= _minStdDeviationMs, "the cached deviation respects the floor");
        Invariant.Check(_meanMs == _history.MeanMs, "the cached mean equals the history mean");
        Invariant.Check(_stdDeviationMs == Math.Max(_history.StdDeviationMs, _minStdDeviationMs), "the cached deviation equals the history deviation");
        Invariant.Check(_minPlausibleIntervalMs >= Options.MinIntervalMs, "the plausibility floor is at least the configured minimum");
    }

    private void Bootstrap(long nowMs)
    {
        _history.Clear();
        _history.Add(_bootstrapLowMs);
        _history.Add(_bootstrapHighMs);
        RefreshStatistics();
        _monitoring = true;
        _lastHeartbeatMs = nowMs;
        _intervalStartMs = nowMs;
    }

    private void RefreshStatistics()
    {
        _meanMs = _history.MeanMs;
        _stdDeviationMs = Math.Max(_history.StdDeviationMs, _minStdDeviationMs);
        _minPlausibleIntervalMs = Math.Max(Options.MinIntervalMs, (long)(Options.MinIntervalFractionOfMean * _meanMs));
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowBadMultiplier(double timeoutMultiplier) =>
        throw new ArgumentOutOfRangeException(nameof(timeoutMultiplier), timeoutMultiplier, "The timeout multiplier must be a finite number of at least 1.");
}
