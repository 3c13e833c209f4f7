using Keel.Core;

namespace Keel.Heartbeat;

/// <summary>
/// The health of one peer: a failure detector plus a suspicion counter and a Healthy/Suspect/Failed state machine.
/// Each <see cref="Evaluate"/> (one check round) raises the counter when the detector's suspicion is at or above the
/// suspect level and lowers it otherwise; the peer is Failed only when the suspicion reaches the detector's threshold
/// <em>and</em> the counter reached <see cref="HealthOptions.SuspicionsToFail"/>, Suspect while the counter is above
/// zero, Healthy when it is back to zero. A single blip therefore only warns, and a recovered peer passes through
/// Suspect before it is trusted again, which damps flapping (consul #1212, scylladb #2861).
/// </summary>
/// <remarks>
/// When evaluated with a <see cref="LocalHealth"/>, its score stretches the detector's timeouts, the part of the
/// peer's silence during which this process itself was paused is excused, and during a post-pause grace period no
/// verdict may get worse. Not thread-safe; allocation-free.
/// </remarks>
public sealed class PeerHealth
{
    private readonly double _suspectLevel;

    /// <summary>Tracks <paramref name="peer"/> with <paramref name="detector"/>; <paramref name="options"/> defaults to <see cref="HealthOptions"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When a setting is out of range.</exception>
    public PeerHealth(ulong peer, IFailureDetector detector, HealthOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(detector);
        Options = options ?? new HealthOptions();
        Options.Validate();
        Peer = peer;
        Detector = detector;
        _suspectLevel = Options.SuspectFractionOfThreshold * detector.Threshold;
    }

    /// <summary>The peer's id.</summary>
    public ulong Peer { get; }

    /// <summary>The detector judging the peer's heartbeats.</summary>
    public IFailureDetector Detector { get; }

    /// <summary>The counter settings.</summary>
    public HealthOptions Options { get; }

    /// <summary>The current state.</summary>
    public HealthState State { get; private set; }

    /// <summary>The suspicion counter, 0..<see cref="HealthOptions.SuspicionsToFail"/>.</summary>
    public int SuspicionCount { get; private set; }

    /// <summary>The suspicion level seen by the last <see cref="Evaluate"/>.</summary>
    public double LastSuspicion { get; private set; }

    /// <summary>The suspicion level at or above which a check counts as suspicious.</summary>
    public double SuspectLevel => _suspectLevel;

    /// <summary>How many evaluations held back a worsening verdict because this node had just been paused.</summary>
    public long HeldVerdicts { get; private set; }

    /// <summary>Passes a heartbeat to the detector.</summary>
    public HeartbeatOutcome OnHeartbeat(long nowMs) => Detector.Heartbeat(nowMs);

    /// <summary>Passes a heartbeat with the sender's sequence number to the detector.</summary>
    public HeartbeatOutcome OnHeartbeat(long nowMs, long sequence) => Detector.Heartbeat(nowMs, sequence);

    /// <summary>
    /// One check round at <paramref name="nowMs"/>: updates the counter and the state and returns the transition, if
    /// any. <paramref name="localHealth"/>, when given, stretches timeouts by its score, excuses silence during this
    /// node's own pauses and holds back worsening verdicts during its post-pause grace.
    /// </summary>
    public HealthTransition? Evaluate(long nowMs, LocalHealth? localHealth = null)
    {
        var effectiveNowMs = nowMs;
        double multiplier = 1;
        var held = false;
        if (localHealth is not null)
        {
            multiplier = localHealth.TimeoutMultiplier;
            if (Detector.LastHeartbeatMs is { } lastMs)
                effectiveNowMs = nowMs - localHealth.PausedMsWithin(lastMs, nowMs);
            held = localHealth.ConvictionsHeld(nowMs);
        }

        var suspicion = Detector.Suspicion(effectiveNowMs, multiplier);
        LastSuspicion = suspicion;
        var suspicious = suspicion >= _suspectLevel;

        var count = SuspicionCount;
        if (!suspicious) count = Math.Max(count - 1, 0);
        else if (!held) count = Math.Min(count + 1, Options.SuspicionsToFail);

        var next = suspicion >= Detector.Threshold && count >= Options.SuspicionsToFail ? HealthState.Failed
            : count > 0 ? HealthState.Suspect
            : HealthState.Healthy;
        if (held && (suspicious || next > State))
        {
            // Within the post-pause grace nothing may get worse: neither the counter nor the state.
            if (next > State) next = State;
            HeldVerdicts++;
        }

        SuspicionCount = count;
        if (next == State) return null;
        var transition = new HealthTransition(Peer, State, next, nowMs, suspicion, count);
        State = next;
        return transition;
    }

    /// <summary>Checks the state machine's and the detector's invariants; throws <see cref="InvariantViolationException"/> when broken.</summary>
    public void AssertInvariants()
    {
        Detector.AssertInvariants();
        Invariant.Check(SuspicionCount >= 0 && SuspicionCount <= Options.SuspicionsToFail, "suspicion counter within 0..SuspicionsToFail");
        Invariant.Check((State == HealthState.Healthy) == (SuspicionCount == 0), "healthy exactly when no suspicion is outstanding");
        Invariant.Check(State != HealthState.Failed || (SuspicionCount == Options.SuspicionsToFail && LastSuspicion >= Detector.Threshold),
            "failed only when the threshold was crossed and the counter agreed");
        Invariant.Check(LastSuspicion >= 0 && !double.IsNaN(LastSuspicion), "suspicion is a non-negative number");
    }
}
