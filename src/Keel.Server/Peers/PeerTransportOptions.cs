namespace Keel.Server.Peers;

/// <summary>
/// Timeouts of the <see cref="PeerTransport"/>. The defaults suit the default 100 ms heartbeat; <see cref="ForRaft"/>
/// derives them from the Raft timing so a dead connection is replaced well within one election timeout.
/// </summary>
public sealed record PeerTransportOptions
{
    /// <summary>How often a sender pings its peer (the receiver answers with a pong on the same connection).</summary>
    public int PingIntervalMs { get; init; } = 100;

    /// <summary>
    /// A sender that has heard no pong for this long closes the connection and reconnects: a connection stuck in TCP
    /// retransmission backoff after a partition would otherwise only recover at the next retransmission, seconds later.
    /// </summary>
    public int LivenessTimeoutMs { get; init; } = 2000;

    /// <summary>A write (frame batch or pong) that does not complete within this closes the connection.</summary>
    public int WriteTimeoutMs { get; init; } = 1000;

    /// <summary>
    /// A connect that does not complete within this is abandoned and retried, so a fresh SYN goes out soon after a
    /// partition heals; a new connection must also answer its first ping within this (a connect alone proves little:
    /// a proxy or a half-open path accepts it).
    /// </summary>
    public int ConnectTimeoutMs { get; init; } = 250;

    /// <summary>An accepted connection must send its hello within this.</summary>
    public int HandshakeTimeoutMs { get; init; } = 2000;

    /// <summary>A receiver that gets no frame (pings included) for this long closes the connection.</summary>
    public int IdleTimeoutMs { get; init; } = 1000;

    /// <summary>First reconnect delay; doubled per failed attempt up to <see cref="ReconnectBackoffMaxMs"/>.</summary>
    public int ReconnectBackoffMinMs { get; init; } = 20;

    /// <summary>Longest reconnect delay.</summary>
    public int ReconnectBackoffMaxMs { get; init; } = 100;

    /// <summary>
    /// Options for a Raft heartbeat of <paramref name="heartbeatMs"/> and an election timeout of
    /// <paramref name="electionTimeoutMs"/>: a ping per heartbeat, a connection declared dead after two election timeouts
    /// (at least three pings) without a pong. Not less: on a CPU-starved machine (load 10+ on 2 cores, measured) pongs
    /// arrive up to 2 s late, and a connection replaced on every late pong drops its queue and cuts the member off.
    /// Recovery after a partition does not wait on this: once a connection is declared dead, fresh connects go out every
    /// few hundred ms, and the first one after the heal gets through.
    /// </summary>
    public static PeerTransportOptions ForRaft(int heartbeatMs, int electionTimeoutMs)
    {
        var ping = Math.Clamp(heartbeatMs, 10, 1000);
        var liveness = Math.Max(3 * ping, 2 * electionTimeoutMs);
        return new PeerTransportOptions
        {
            PingIntervalMs = ping,
            LivenessTimeoutMs = liveness,
            WriteTimeoutMs = Math.Max(liveness, 1000),
            IdleTimeoutMs = Math.Max(2 * liveness, 1000),
        };
    }
}
