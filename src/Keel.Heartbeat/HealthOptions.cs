namespace Keel.Heartbeat;

/// <summary>
/// Settings of <see cref="PeerHealth"/>'s suspicion counter: the "gradual health degradation" of the heartbeat
/// pattern — a counter that rises on suspicious checks and falls on timely ones, so a single blip only warns.
/// </summary>
public sealed record HealthOptions
{
    /// <summary>
    /// A check is suspicious when the detector's suspicion is at least this fraction of its threshold (phi 4 with the
    /// phi detector's default threshold 8; half the timeout with the fixed-timeout detector).
    /// </summary>
    public double SuspectFractionOfThreshold { get; init; } = 0.5;

    /// <summary>
    /// How many suspicious checks (net of timely ones) are needed before a peer whose suspicion is at or above the
    /// threshold is declared Failed; also the cap of the counter, so recovery takes at most this many timely checks.
    /// </summary>
    public int SuspicionsToFail { get; init; } = 3;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first setting that is out of range.</summary>
    public void Validate()
    {
        if (!(SuspectFractionOfThreshold > 0 && SuspectFractionOfThreshold <= 1))
            throw new ArgumentOutOfRangeException(nameof(SuspectFractionOfThreshold), SuspectFractionOfThreshold, "The suspect fraction of the threshold must be in (0, 1].");
        if (SuspicionsToFail < 1 || SuspicionsToFail > 1000)
            throw new ArgumentOutOfRangeException(nameof(SuspicionsToFail), SuspicionsToFail, "The number of suspicious checks before failing must be between 1 and 1000.");
    }
}
