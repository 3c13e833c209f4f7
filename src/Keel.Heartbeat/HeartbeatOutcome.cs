namespace Keel.Heartbeat;

/// <summary>
/// What a failure detector did with one heartbeat arrival. Returned so that the caller can count and log dropped
/// heartbeats instead of having them vanish silently.
/// </summary>
public enum HeartbeatOutcome
{
    /// <summary>The first heartbeat from the peer: monitoring started (the phi detector bootstrapped its history).</summary>
    Started,

    /// <summary>Accepted; the inter-arrival interval was added to the statistics (detectors without statistics: just accepted).</summary>
    Accepted,

    /// <summary>
    /// Accepted as proof of life, but the interval was not recorded because the peer was already considered
    /// unavailable: a long silence would skew the statistics (Akka's rule, akka-remote PhiAccrualFailureDetector.scala).
    /// </summary>
    AcceptedAfterSilence,

    /// <summary>
    /// Accepted as proof of life, but the interval was implausibly short (a duplicate delivered at the same time, or a
    /// burst) and was not recorded, because such intervals shrink the mean and make the detector trigger-happy
    /// (scylladb/scylladb#2861: nodes flapping DOWN/UP in large clusters).
    /// </summary>
    AcceptedTooSoon,

    /// <summary>Ignored entirely: the heartbeat's sender sequence number was not newer than one already seen (a duplicate or reordered message).</summary>
    IgnoredStaleSequence,

    /// <summary>Ignored entirely: the arrival time was earlier than the last accepted heartbeat (caller's clock is not monotonic).</summary>
    IgnoredTimeWentBackwards,
}

/// <summary>Helpers for <see cref="HeartbeatOutcome"/>.</summary>
public static class HeartbeatOutcomeExtensions
{
    /// <summary>True when the heartbeat reset the peer's silence (every outcome except the two <c>Ignored*</c> ones).</summary>
    public static bool IsAccepted(this HeartbeatOutcome outcome) =>
        outcome is not (HeartbeatOutcome.IgnoredStaleSequence or HeartbeatOutcome.IgnoredTimeWentBackwards);
}
