using Keel.Core;

namespace Keel.Heartbeat;

/// <summary>
/// The classic failure detector: a peer is unavailable once it has been silent for <see cref="TimeoutMs"/>. Kept as the
/// baseline the phi detector is compared against: a 5 s timeout (typical hand-tuned RPC health check) and Kubernetes'
/// node-monitor grace period of 40 s (kube-controller-manager <c>--node-monitor-grace-period</c>; 50 s since v1.32).
/// </summary>
/// <remarks>
/// Suspicion is the silence as a fraction of the timeout (threshold 1), so <see cref="PeerHealth"/> can put a Suspect
/// stage in front of it. It does not adapt: too short and GC pauses evict healthy nodes, too long and real crashes
/// go unnoticed for the whole grace period.
/// </remarks>
public sealed class FixedTimeoutFailureDetector : IFailureDetector
{
    /// <summary>A common hand-tuned health-check timeout: 5 s.</summary>
    public const long FiveSecondTimeoutMs = 5_000;

    /// <summary>Kubernetes' default node-monitor grace period before a node is marked unreachable: 40 s.</summary>
    public const long KubernetesNodeGracePeriodMs = 40_000;

    private bool _monitoring;
    private long _lastHeartbeatMs;
    private bool _hasSequence;
    private long _lastSequence;

    /// <summary>Creates a detector that declares failure after <paramref name="timeoutMs"/> of silence.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When the timeout is not positive.</exception>
    public FixedTimeoutFailureDetector(long timeoutMs)
    {
        if (timeoutMs < 1 || timeoutMs > HeartbeatHistory.MaxIntervalMs)
            throw new ArgumentOutOfRangeException(nameof(timeoutMs), timeoutMs, $"The timeout must be between 1 and {HeartbeatHistory.MaxIntervalMs} ms.");
        TimeoutMs = timeoutMs;
    }

    /// <summary>A detector with the 5 s baseline timeout.</summary>
    public static FixedTimeoutFailureDetector FiveSeconds() => new(FiveSecondTimeoutMs);

    /// <summary>A detector with Kubernetes' 40 s node grace period.</summary>
    public static FixedTimeoutFailureDetector KubernetesGracePeriod() => new(KubernetesNodeGracePeriodMs);

    /// <summary>The silence after which the peer is declared unavailable.</summary>
    public long TimeoutMs { get; }

    /// <summary>1: suspicion is silence divided by the timeout.</summary>
    public double Threshold => 1.0;

    /// <inheritdoc />
    public bool IsMonitoring => _monitoring;

    /// <inheritdoc />
    public long? LastHeartbeatMs => _monitoring ? _lastHeartbeatMs : null;

    /// <inheritdoc />
    public HeartbeatOutcome Heartbeat(long nowMs)
    {
        if (!_monitoring)
        {
            _monitoring = true;
            _lastHeartbeatMs = nowMs;
            return HeartbeatOutcome.Started;
        }
        if (nowMs < _lastHeartbeatMs) return HeartbeatOutcome.IgnoredTimeWentBackwards;
        _lastHeartbeatMs = nowMs;
        return HeartbeatOutcome.Accepted;
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

    /// <summary>Silence divided by the (multiplied) timeout; 0 while not monitoring.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When the multiplier is below 1 or not finite.</exception>
    public double Suspicion(long nowMs, double timeoutMultiplier = 1)
    {
        if (!(timeoutMultiplier >= 1) || double.IsInfinity(timeoutMultiplier))
            throw new ArgumentOutOfRangeException(nameof(timeoutMultiplier), timeoutMultiplier, "The timeout multiplier must be a finite number of at least 1.");
        if (!_monitoring) return 0;
        var silenceMs = Math.Max(0, nowMs - _lastHeartbeatMs);
        return silenceMs / (TimeoutMs * timeoutMultiplier);
    }

    /// <summary>True while the silence is shorter than <see cref="TimeoutMs"/>.</summary>
    public bool IsAvailable(long nowMs) => Suspicion(nowMs) < Threshold;

    /// <inheritdoc />
    public void Reset()
    {
        _monitoring = false;
        _hasSequence = false;
        _lastSequence = 0;
        _lastHeartbeatMs = 0;
    }

    /// <inheritdoc />
    public void AssertInvariants()
    {
        Invariant.Check(TimeoutMs > 0, "the timeout is positive");
        Invariant.Check(_monitoring || _lastHeartbeatMs == 0, "no heartbeat time before monitoring starts");
    }
}
