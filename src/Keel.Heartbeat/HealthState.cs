namespace Keel.Heartbeat;

/// <summary>
/// Multi-level health of a peer: a brief blip only warns (Suspect), sustained silence fails (Failed). Binary
/// alive/dead verdicts are what evict healthy Kubernetes pods during GC pauses; a middle state lets callers stop
/// routing new work to a peer without failing it over.
/// </summary>
public enum HealthState
{
    /// <summary>Heartbeats arrive as expected.</summary>
    Healthy,

    /// <summary>Recent checks saw suspicious silence, but not enough of it, for long enough, to declare failure.</summary>
    Suspect,

    /// <summary>The detector's threshold was crossed and the suspicion counter confirmed it: act on the failure.</summary>
    Failed,
}

/// <summary>
/// A peer's health changed; returned by <see cref="PeerHealth.Evaluate"/> and <see cref="HeartbeatMonitor.Check(long)"/>
/// so the caller can log and act on it.
/// </summary>
/// <param name="Peer">The peer's id.</param>
/// <param name="From">The state before.</param>
/// <param name="To">The state after.</param>
/// <param name="AtMs">When the change was decided.</param>
/// <param name="Suspicion">The detector's suspicion level that decided it (phi for the phi detector).</param>
/// <param name="SuspicionCount">The suspicion counter after the check.</param>
public readonly record struct HealthTransition(ulong Peer, HealthState From, HealthState To, long AtMs, double Suspicion, int SuspicionCount)
{
    /// <summary>A readable one-line description for logs.</summary>
    public override string ToString() =>
        $"peer {Peer}: {From} -> {To} at {AtMs} ms (suspicion {Suspicion:0.00}, counter {SuspicionCount})";
}
