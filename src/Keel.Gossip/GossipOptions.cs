using Keel.Heartbeat;

namespace Keel.Gossip;

/// <summary>How anti-entropy exchanges state.</summary>
public enum AntiEntropyMode
{
    /// <summary>Scuttlebutt (Cassandra, chitchat): root hash, then (member, version) digests, then only the deltas.</summary>
    Digest,

    /// <summary>memberlist's push-pull: both sides send every member's full state.</summary>
    FullState,
}

/// <summary>
/// Settings of a <see cref="SwimMember"/>. Defaults follow hashicorp/memberlist's <c>DefaultLANConfig</c> (gossip to 3
/// every 200 ms, lambda 4, suspicion multipliers 4 and 6, 3 indirect probes, 1,400-byte packets) except two, tuned so a
/// crash is known dead by every one of 1,000 members within 5 s while 3 s pauses cause no false death (measured in
/// <c>GossipScenario</c>, docs/gossip.md): probes every 300 ms with a 150 ms timeout (memberlist: 1 s and 500 ms, which
/// makes its minimum suspicion timeout 4 x log10(1000) x 1 s = 12 s), and a floor of 3.5 s under the suspicion
/// timeout, so that no cluster size shrinks it below the longest pause a member must survive plus the time its
/// refutation needs to spread (memberlist has no floor: at 100 members and 300 ms probes its minimum would be 2.4 s).
/// </summary>
public sealed record GossipOptions
{
    /// <summary>Probe period (memberlist <c>ProbeInterval</c> is 1 s; 300 ms here, see the type's remarks). Stretched by the local health multiplier.</summary>
    public long ProbeIntervalMs { get; init; } = 300;

    /// <summary>Wait for a direct ack before asking others (memberlist <c>ProbeTimeout</c> is 500 ms; 150 ms here).</summary>
    public long ProbeTimeoutMs { get; init; } = 150;

    /// <summary>Members asked to probe indirectly (SWIM's k; memberlist <c>IndirectChecks</c>, 3).</summary>
    public int IndirectProbes { get; init; } = 3;

    /// <summary>Interval between gossip rounds (memberlist <c>GossipInterval</c>, 200 ms; the seed's "about 1 s" is measured as a variant).</summary>
    public long GossipIntervalMs { get; init; } = 200;

    /// <summary>Members gossiped to per round (memberlist <c>GossipNodes</c>, 3).</summary>
    public int GossipFanout { get; init; } = 3;

    /// <summary>Each round's interval is drawn uniformly from interval x (1 +/- this), spreading load over time.</summary>
    public double GossipJitterFraction { get; init; } = 0.25;

    /// <summary>lambda: each update is sent at most lambda x ceil(log10(N+1)) times (memberlist <c>RetransmitMult</c>, 4).</summary>
    public int RetransmitMultiplier { get; init; } = 4;

    /// <summary>Suspicion min timeout = this x max(1, log10 N) x probe interval (memberlist <c>SuspicionMult</c>, 4).</summary>
    public int SuspicionMultiplier { get; init; } = 4;

    /// <summary>
    /// Floor of the minimum suspicion timeout (not in memberlist): above the longest stop-the-world pause a member must
    /// survive (3 s in the fault model) plus time for its refutation to spread.
    /// </summary>
    public long MinSuspicionTimeoutMs { get; init; } = 3_500;

    /// <summary>Suspicion max timeout = this x min (memberlist <c>SuspicionMaxTimeoutMult</c>, 6).</summary>
    public int SuspicionMaxTimeoutMultiplier { get; init; } = 6;

    /// <summary>Independent confirmations that shrink a suspicion to its minimum (Lifeguard's k = SuspicionMult - 2).</summary>
    public int SuspicionConfirmations { get; init; } = 2;

    /// <summary>
    /// Lifeguard (local health awareness, nacks, dynamic suspicion, pause excuse). Off gives plain SWIM with a fixed
    /// suspicion timeout of the minimum, the baseline of the comparison.
    /// </summary>
    public bool LifeguardEnabled { get; init; } = true;

    /// <summary>Largest packet, envelope included (memberlist <c>UDPBufferSize</c>, 1400).</summary>
    public int MaxMessageBytes { get; init; } = 1400;

    /// <summary>Anti-entropy period (memberlist <c>PushPullInterval</c>, 30 s, scaled up above 32 members).</summary>
    public long PushPullIntervalMs { get; init; } = 30_000;

    /// <summary>Digest or full-state anti-entropy.</summary>
    public AntiEntropyMode AntiEntropy { get; init; } = AntiEntropyMode.Digest;

    /// <summary>Outbound budget for gossip rounds (token bucket, bytes per second); rounds beyond it are skipped.</summary>
    public long MaxGossipBytesPerSecond { get; init; } = 64 * 1024;

    /// <summary>Inbound limit per sender (token bucket, messages per second); excess is dropped and counted.</summary>
    public int MaxMessagesPerSecondPerSender { get; init; } = 100;

    /// <summary>Local health (Lifeguard awareness) settings; score 0..7 by default.</summary>
    public LocalHealthOptions LocalHealth { get; init; } = new();

    /// <summary>Phi-accrual settings for the per-peer health view; null derives them from the probe interval.</summary>
    public PhiAccrualOptions? Phi { get; init; }

    /// <summary>Checks the settings.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range.</exception>
    public void Validate()
    {
        if (ProbeIntervalMs < 1) throw new ArgumentOutOfRangeException(nameof(ProbeIntervalMs), ProbeIntervalMs, "must be at least 1 ms");
        if (ProbeTimeoutMs < 1 || ProbeTimeoutMs >= ProbeIntervalMs)
            throw new ArgumentOutOfRangeException(nameof(ProbeTimeoutMs), ProbeTimeoutMs, "must be at least 1 ms and below the probe interval, leaving time for indirect probes");
        if (IndirectProbes < 0) throw new ArgumentOutOfRangeException(nameof(IndirectProbes), IndirectProbes, "cannot be negative");
        if (GossipIntervalMs < 1) throw new ArgumentOutOfRangeException(nameof(GossipIntervalMs), GossipIntervalMs, "must be at least 1 ms");
        if (GossipFanout < 1) throw new ArgumentOutOfRangeException(nameof(GossipFanout), GossipFanout, "must be at least 1");
        if (!(GossipJitterFraction >= 0 && GossipJitterFraction < 1)) throw new ArgumentOutOfRangeException(nameof(GossipJitterFraction), GossipJitterFraction, "must be in [0, 1)");
        if (RetransmitMultiplier < 1) throw new ArgumentOutOfRangeException(nameof(RetransmitMultiplier), RetransmitMultiplier, "must be at least 1");
        if (SuspicionMultiplier < 1) throw new ArgumentOutOfRangeException(nameof(SuspicionMultiplier), SuspicionMultiplier, "must be at least 1");
        if (MinSuspicionTimeoutMs < 0) throw new ArgumentOutOfRangeException(nameof(MinSuspicionTimeoutMs), MinSuspicionTimeoutMs, "cannot be negative");
        if (SuspicionMaxTimeoutMultiplier < 1) throw new ArgumentOutOfRangeException(nameof(SuspicionMaxTimeoutMultiplier), SuspicionMaxTimeoutMultiplier, "must be at least 1");
        if (SuspicionConfirmations < 1) throw new ArgumentOutOfRangeException(nameof(SuspicionConfirmations), SuspicionConfirmations, "must be at least 1");
        if (MaxMessageBytes < 256) throw new ArgumentOutOfRangeException(nameof(MaxMessageBytes), MaxMessageBytes, "must be at least 256 bytes");
        if (PushPullIntervalMs < 0) throw new ArgumentOutOfRangeException(nameof(PushPullIntervalMs), PushPullIntervalMs, "cannot be negative (0 turns anti-entropy off)");
        if (MaxGossipBytesPerSecond < MaxMessageBytes) throw new ArgumentOutOfRangeException(nameof(MaxGossipBytesPerSecond), MaxGossipBytesPerSecond, "must allow at least one full packet per second");
        if (MaxMessagesPerSecondPerSender < 1) throw new ArgumentOutOfRangeException(nameof(MaxMessagesPerSecondPerSender), MaxMessagesPerSecondPerSender, "must be at least 1");
        LocalHealth.Validate();
        Phi?.Validate();
    }
}
