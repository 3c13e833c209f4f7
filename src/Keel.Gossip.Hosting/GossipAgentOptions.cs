using System.Net;

namespace Keel.Gossip.Hosting;

/// <summary>Settings of a <see cref="GossipAgent"/>.</summary>
public sealed record GossipAgentOptions
{
    /// <summary>Where the agent's UDP socket listens (default 127.0.0.1 on a free port). Must be IPv4.</summary>
    public IPEndPoint BindEndpoint { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>Addresses of members to join through (memberlist <c>Join</c>); empty starts a new cluster.</summary>
    public IReadOnlyList<IPEndPoint> Seeds { get; init; } = [];

    /// <summary>The cluster key every packet is authenticated with (HMAC-SHA256, at least 16 bytes).</summary>
    public required byte[] Key { get; init; }

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
        if (Key is null || Key.Length < GossipKeyring.MinKeyBytes) throw new ArgumentException($"the cluster key must be at least {GossipKeyring.MinKeyBytes} bytes", nameof(Key));
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
/// <param name="DroppedForged">Datagrams whose HMAC did not verify under any installed key.</param>
/// <param name="DroppedReplayed">Authentic datagrams seen before (replay window).</param>
/// <param name="DroppedMalformed">Datagrams with a bad envelope or body.</param>
/// <param name="PacketsSent">Datagrams sent.</param>
/// <param name="BytesSent">Bytes sent.</param>
/// <param name="DroppedOversize">Messages larger than one UDP datagram (anti-entropy of very large clusters; see docs).</param>
/// <param name="SendErrors">Sends the operating system refused.</param>
/// <param name="DroppedOverload">Datagrams dropped because the loop's input queue (4,096) was full: a flood.</param>
public sealed record GossipAgentCounters(long PacketsReceived, long Accepted, long DroppedForged, long DroppedReplayed, long DroppedMalformed, long PacketsSent, long BytesSent, long DroppedOversize, long SendErrors, long DroppedOverload = 0);

/// <summary>No seed answered within <see cref="GossipAgentOptions.JoinTimeoutMs"/>.</summary>
public sealed class GossipJoinException : Exception
{
    /// <summary>Creates the exception.</summary>
    public GossipJoinException(string message) : base(message) { }
}
