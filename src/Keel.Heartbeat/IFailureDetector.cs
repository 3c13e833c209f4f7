namespace Keel.Heartbeat;

/// <summary>
/// A failure detector for one monitored peer, sans-I/O: heartbeat arrivals and evaluations are driven by the caller,
/// which passes the current monotonic time in milliseconds. Implemented by <see cref="PhiAccrualFailureDetector"/>
/// (adaptive, Hayashibara et al. 2004 as in Akka) and <see cref="FixedTimeoutFailureDetector"/> (the classic fixed
/// timeout baseline), so that both can be compared under the same simulated traffic.
/// </summary>
/// <remarks>
/// Each detector reports a suspicion level on its own scale together with the <see cref="Threshold"/> at which it
/// declares the peer unavailable; <see cref="PeerHealth"/> builds its Healthy/Suspect/Failed states on that pair.
/// </remarks>
public interface IFailureDetector
{
    /// <summary>The suspicion level at or above which the peer is considered unavailable.</summary>
    double Threshold { get; }

    /// <summary>True once at least one heartbeat was accepted (or monitoring was started explicitly).</summary>
    bool IsMonitoring { get; }

    /// <summary>The arrival time of the last accepted heartbeat, or null before the first.</summary>
    long? LastHeartbeatMs { get; }

    /// <summary>Records a heartbeat that arrived at <paramref name="nowMs"/>.</summary>
    HeartbeatOutcome Heartbeat(long nowMs);

    /// <summary>
    /// Records a heartbeat carrying the sender's monotonically increasing <paramref name="sequence"/>; a sequence not
    /// newer than the last one seen is a duplicate or reordered delivery and is ignored.
    /// </summary>
    HeartbeatOutcome Heartbeat(long nowMs, long sequence);

    /// <summary>
    /// The suspicion level at <paramref name="nowMs"/> (non-negative, never NaN); 0 while not monitoring.
    /// <paramref name="timeoutMultiplier"/> (at least 1) stretches the detector's tolerance, as Lifeguard's local health
    /// score does when this node itself is slow.
    /// </summary>
    double Suspicion(long nowMs, double timeoutMultiplier = 1);

    /// <summary>True while <see cref="Suspicion"/> at <paramref name="nowMs"/> is below <see cref="Threshold"/>.</summary>
    bool IsAvailable(long nowMs);

    /// <summary>Forgets all history (a peer that restarted): the next heartbeat starts monitoring afresh.</summary>
    void Reset();

    /// <summary>Checks the detector's internal invariants; throws <see cref="Keel.Core.InvariantViolationException"/> when broken.</summary>
    void AssertInvariants();
}
