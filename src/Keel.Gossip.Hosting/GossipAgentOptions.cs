using System.Net;

namespace Keel.Gossip.Hosting;

/// <summary>Settings of a <see cref="GossipAgent"/>.</summary>
public sealed record GossipAgentOptions
{
    /// <summary>Where the agent's UDP socket listens (default 127.0.0.1 on a free port). Must be IPv4.</summary>
    public IPEndPoint BindEndpoint { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>Addresses of members to join through (memberlist <c>Join</c>); empty starts a new cluster.</summary>
    public IReadOnlyList<IPEndPoint> Seeds { get; init; } = [];

    /// <summary>
    /// The keyring every packet is encrypted with (AES-256-GCM, 32-byte keys): the first key encrypts, every key is tried
    /// to decrypt. Change it at run time with <see cref="GossipAgent.ChangeKeyringAsync"/> or <see cref="GossipAgent.SetKeysAsync"/>.
    /// </summary>
    public required IReadOnlyList<byte[]> Keys { get; init; }

    /// <summary>Called on the agent's loop for every datagram dropped (reason, sender address): log it, rate-limited (<see cref="DropLogLimiter"/>).</summary>
    public Action<OpenOutcome, IPEndPoint>? OnPacketDropped { get; init; }

    /// <summary>This member's tags (zone, role, version, load).</summary>
    public MemberTags? Tags { get; init; }

    /// <summary>Protocol settings of the core.</summary>
    public GossipOptions Gossip { get; init; } = new();

    /// <summary>The clock (tests pass a fake one; default the system's monotonic clock).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Seed of the core's randomness; 0 derives one from the member id and the wall clock.</summary>
    public ulong RandomSeed { get; init; }

    /// <summary>How long <see cref="GossipAgent.StartAsync"/> keeps trying the seeds before it fails.</summary>
    public long JoinTimeoutMs { get; init; } = 10_000;

    /// <summary>Pause between join attempts (each attempt asks one seed, round robin).</summary>
    public long JoinRetryMs { get; init; } = 500;

    /// <summary>How long <see cref="GossipAgent.LeaveAsync"/> keeps gossiping the leave before closing.</summary>
    public long LeaveTimeoutMs { get; init; } = 3_000;

    /// <summary>Longest age of the published <see cref="GossipAgent.Members"/> snapshot (phi changes continuously).</summary>
    public long SnapshotRefreshMs { get; init; } = 100;

    /// <summary>Checks the settings.</summary>
    /// <exception cref="ArgumentException">A setting is out of range.</exception>
    public void Validate()
    {
        Gossip.Validate();
        if (Keys is null || Keys.Count == 0) throw new ArgumentException("the gossip keyring needs at least one key", nameof(Keys));
        if (Keys.Count > GossipKeyring.MaxKeys) throw new ArgumentException($"the gossip keyring holds at most {GossipKeyring.MaxKeys} keys", nameof(Keys));
        foreach (var key in Keys)
            if (GossipKeyring.Problem(key) is { } problem) throw new ArgumentException(problem, nameof(Keys));
        if (JoinTimeoutMs < 1) throw new ArgumentOutOfRangeException(nameof(JoinTimeoutMs), JoinTimeoutMs, "must be positive");
        if (JoinRetryMs < 1) throw new ArgumentOutOfRangeException(nameof(JoinRetryMs), JoinRetryMs, "must be positive");
        if (LeaveTimeoutMs < 0) throw new ArgumentOutOfRangeException(nameof(LeaveTimeoutMs), LeaveTimeoutMs, "cannot be negative");
        if (SnapshotRefreshMs < 1) throw new ArgumentOutOfRangeException(nameof(SnapshotRefreshMs), SnapshotRefreshMs, "must be positive");
    }
}

/// <summary>One member as a <see cref="GossipAgent"/> sees it: what <c>keel members</c> prints.</summary>
/// <param name="Id">Member id (address-derived, see <see cref="GossipAddress"/>).</param>
/// <param name="Endpoint">The member's gossip address.</param>
/// <param name="Status">SWIM state.</param>
/// <param name="Health">Phi-accrual-fed health view.</param>
/// <param name="Incarnation">Latest incarnation known.</param>
/// <param name="Phi">Phi-accrual suspicion level of the member's messages (0 when never heard from directly).</param>
/// <param name="Tags">Latest tags known, or null.</param>
public readonly record struct AgentMember(ulong Id, IPEndPoint Endpoint, MemberStatus Status, Keel.Heartbeat.HealthState Health, long Incarnation, double Phi, MemberTags? Tags)
{
    /// <summary>The member's zone tag, or "" when unknown.</summary>
    public string Zone => Tags?.Zone ?? "";
}

/// <summary>Traffic and rejection counters of a <see cref="GossipAgent"/>.</summary>
/// <param name="PacketsReceived">Datagrams read from the socket.</param>
/// <param name="Accepted">Datagrams that authenticated, were fresh and decoded: only these reach the core.</param>
/// <param name="DroppedForged">Datagrams that did not decrypt under any installed key (wrong key, tampered).</param>
/// <param name="DroppedReplayed">Authentic datagrams seen before (replay window).</param>
/// <param name="DroppedMalformed">Datagrams with a bad envelope or body.</param>
/// <param name="PacketsSent">Datagrams sent.</param>
/// <param name="BytesSent">Bytes sent.</param>
/// <param name="DroppedOversize">Messages larger than one UDP datagram (anti-entropy of very large clusters; see docs).</param>
/// <param name="SendErrors">Sends the operating system refused.</param>
/// <param name="DroppedOverload">Datagrams dropped because the loop's input queue (4,096) was full: a flood.</param>
/// <param name="DroppedTruncated">Datagrams shorter than the smallest encrypted packet.</param>
/// <param name="DroppedPlaintext">Datagrams that were not encrypted (a bare message or the old signed-only envelope).</param>
public sealed record GossipAgentCounters(long PacketsReceived, long Accepted, long DroppedForged, long DroppedReplayed, long DroppedMalformed, long PacketsSent, long BytesSent, long DroppedOversize, long SendErrors, long DroppedOverload = 0, long DroppedTruncated = 0, long DroppedPlaintext = 0)
{
    /// <summary>Datagrams dropped, by the reason a metric labels them with (<c>keel_gossip_packets_dropped_total{reason}</c>).</summary>
    public IEnumerable<(string Reason, long Count)> DroppedByReason()
    {
        yield return ("forged", DroppedForged);
        yield return ("replayed", DroppedReplayed);
        yield return ("malformed", DroppedMalformed);
        yield return ("truncated", DroppedTruncated);
        yield return ("plaintext", DroppedPlaintext);
        yield return ("overload", DroppedOverload);
    }
}

/// <summary>
/// Decides which drops to log so a process flooding the gossip port cannot flood the log: per reason the first 20,
/// then the 32nd, 64th, 128th... (the rule of the peer transport's refusals).
/// </summary>
public sealed class DropLogLimiter
{
    private readonly Dictionary<OpenOutcome, long> _counts = [];
    private readonly Lock _lock = new();

    /// <summary>Counts one drop of <paramref name="reason"/>; returns its running count when it should be logged, else 0.</summary>
    public long ShouldLog(OpenOutcome reason)
    {
        lock (_lock)
        {
            var count = _counts.GetValueOrDefault(reason) + 1;
            _counts[reason] = count;
            return count <= 20 || (count & (count - 1)) == 0 ? count : 0;
        }
    }

    /// <summary>The name a reason has in logs and metrics.</summary>
    public static string NameOf(OpenOutcome reason) => reason switch
    {
        OpenOutcome.Forged => "forged",
        OpenOutcome.Replayed => "replayed",
        OpenOutcome.Malformed => "malformed",
        OpenOutcome.Truncated => "truncated",
        OpenOutcome.Plaintext => "plaintext",
        _ => reason.ToString().ToLowerInvariant(),
    };
}

/// <summary>No seed answered within <see cref="GossipAgentOptions.JoinTimeoutMs"/>.</summary>
public sealed class GossipJoinException : Exception
{
    /// <summary>Creates the exception.</summary>
    public GossipJoinException(string message) : base(message) { }
}
