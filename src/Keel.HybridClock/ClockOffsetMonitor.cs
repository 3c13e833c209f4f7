using Keel.Core;

namespace Keel.HybridClock;

/// <summary>
/// Watches this node's clock offset against its peers and tells the driver when this node's own clock is the broken
/// one, so that it can stop serving instead of issuing timestamps that the max offset check no longer protects.
/// </summary>
/// <remarks>
/// <para>
/// After CockroachDB's <c>pkg/rpc/clock_offset.go</c> (<c>RemoteClockMonitor</c>): each heartbeat round trip yields
/// an offset estimate <c>remoteWall - (send + rtt / 2)</c> with uncertainty <c>rtt / 2</c>
/// (<see cref="Measure"/>). A peer is "healthy" unless its offset is certainly beyond the tolerated offset, 80% of the
/// max offset. If a strict majority of the recently measured peers are unhealthy, this node is the one out of sync and
/// <see cref="Verify"/> reports it; CockroachDB shuts the node down at that point ("clock synchronization error: this
/// node is more than ... away from at least half of the known nodes"). CockroachDB's documentation says "at least
/// half"; Keel asks for a strict majority, so that in a three-node cluster with one drifting node the two healthy
/// nodes (each out of sync with one peer of two) stay up while the drifting one (out of sync with both) stops. The rejection in
/// <see cref="HybridLogicalClock.Update"/> only protects a node from others; this check protects the others from it, which is
/// how NTP drift on one node is caught before it produces future timestamps.
/// </para>
/// <para>Sans-I/O: measurements and the current time come in as arguments. Not thread-safe.</para>
/// </remarks>
public sealed class ClockOffsetMonitor
{
    private readonly Dictionary<long, OffsetMeasurement> _latestByPeer = [];

    /// <summary>Creates a monitor.</summary>
    /// <param name="maxOffsetMs">The cluster's max offset (see <see cref="HybridClockOptions.MaxOffsetMs"/>).</param>
    /// <param name="measurementTtlMs">How long a measurement counts; older ones are ignored (a silent peer proves nothing).</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is not positive.</exception>
    public ClockOffsetMonitor(long maxOffsetMs = 500, long measurementTtlMs = 10_000)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxOffsetMs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(measurementTtlMs);
        MaxOffsetMs = maxOffsetMs;
        ToleratedOffsetMs = maxOffsetMs * 4 / 5;
        MeasurementTtlMs = measurementTtlMs;
    }

    /// <summary>The cluster's max offset.</summary>
    public long MaxOffsetMs { get; }

    /// <summary>80% of <see cref="MaxOffsetMs"/>, as CockroachDB's <c>ToleratedOffset</c>: the margin before the hard limit.</summary>
    public long ToleratedOffsetMs { get; }

    /// <summary>How long a measurement counts towards <see cref="Verify"/>.</summary>
    public long MeasurementTtlMs { get; }

    /// <summary>How many peers have a measurement (fresh or not).</summary>
    public int PeerCount => _latestByPeer.Count;

    /// <summary>
    /// Estimates a peer's offset from one ping: sent at local wall <paramref name="sendWallMs"/>, the peer answered with
    /// its wall <paramref name="remoteWallMs"/>, the answer arrived at local wall <paramref name="receiveWallMs"/>.
    /// Assumes the reply was stamped half-way through the round trip (Cristian's algorithm), hence uncertainty rtt/2.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The reply arrived before the request was sent.</exception>
    public static OffsetMeasurement Measure(long sendWallMs, long remoteWallMs, long receiveWallMs)
    {
        if (receiveWallMs < sendWallMs)
            throw new ArgumentOutOfRangeException(nameof(receiveWallMs), receiveWallMs,
                "The reply cannot arrive before the request was sent; measure round trips with a monotonic clock.");
        var roundTripMs = receiveWallMs - sendWallMs;
        return new OffsetMeasurement(remoteWallMs - (sendWallMs + roundTripMs / 2), (roundTripMs + 1) / 2, receiveWallMs);
    }

    /// <summary>Records the latest measurement for <paramref name="peerId"/>, replacing any older one.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The measurement's uncertainty is negative.</exception>
    public void Record(long peerId, OffsetMeasurement measurement)
    {
        if (measurement.UncertaintyMs < 0)
            throw new ArgumentOutOfRangeException(nameof(measurement), measurement.UncertaintyMs, "Uncertainty cannot be negative.");
        _latestByPeer[peerId] = measurement;
    }

    /// <summary>Forgets a peer that left the cluster.</summary>
    public bool Remove(long peerId) => _latestByPeer.Remove(peerId);

    /// <summary>
    /// Counts the fresh measurements and the healthy ones among them; unhealthy when the unhealthy ones are a strict
    /// majority of the fresh ones, i.e. this node disagrees with most of the peers it can hear. No fresh measurement
    /// means nothing is known, which is reported healthy.
    /// </summary>
    public ClockHealth Verify(long nowMs)
    {
        var fresh = 0;
        var healthy = 0;
        foreach (var measurement in _latestByPeer.Values)
        {
            if (nowMs - measurement.MeasuredAtMs > MeasurementTtlMs) continue;
            fresh++;
            if (IsHealthy(measurement)) healthy++;
        }
        Invariant.Check(healthy <= fresh, "healthy peers are a subset of the freshly measured ones");
        return new ClockHealth((fresh - healthy) * 2 <= fresh, healthy, fresh, ToleratedOffsetMs);
    }

    /// <summary>As <see cref="Verify"/>, but throws when this node is out of sync with a majority.</summary>
    /// <exception cref="ClockSynchronizationException">A strict majority of the freshly measured peers are beyond the tolerated offset.</exception>
    public void VerifyOrThrow(long nowMs)
    {
        var health = Verify(nowMs);
        if (!health.IsHealthy) throw new ClockSynchronizationException(health);
    }

    /// <summary>
    /// A peer is unhealthy only when its offset is certainly beyond the tolerated offset: |offset| - uncertainty
    /// exceeds it. An uncertain measurement (a slow round trip) counts as healthy, as in CockroachDB, so that network
    /// latency alone never takes a node down.
    /// </summary>
    public bool IsHealthy(OffsetMeasurement measurement) =>
        Math.Abs(measurement.OffsetMs) - measurement.UncertaintyMs <= ToleratedOffsetMs;

    /// <summary>Checks the monitor's invariants; throws <see cref="InvariantViolationException"/> when one fails.</summary>
    public void AssertInvariants()
    {
        Invariant.Check(0 <= ToleratedOffsetMs && ToleratedOffsetMs < MaxOffsetMs, "the tolerated offset is a margin below the max offset");
        foreach (var measurement in _latestByPeer.Values)
            Invariant.Check(measurement.UncertaintyMs >= 0, "uncertainty is never negative");
    }
}

/// <summary>One estimate of a peer's clock offset.</summary>
/// <param name="OffsetMs">Peer wall minus local wall, estimated; positive when the peer is ahead.</param>
/// <param name="UncertaintyMs">Half the round trip: the true offset is within OffsetMs ± UncertaintyMs.</param>
/// <param name="MeasuredAtMs">Local wall time when the measurement was taken (for expiry).</param>
public readonly record struct OffsetMeasurement(long OffsetMs, long UncertaintyMs, long MeasuredAtMs);

/// <summary>The outcome of <see cref="ClockOffsetMonitor.Verify"/>.</summary>
/// <param name="IsHealthy">False when a strict majority of the fresh measurements are beyond the tolerated offset.</param>
/// <param name="HealthyPeers">Fresh measurements within the tolerated offset.</param>
/// <param name="MeasuredPeers">Fresh measurements.</param>
/// <param name="ToleratedOffsetMs">The tolerated offset used.</param>
public readonly record struct ClockHealth(bool IsHealthy, int HealthyPeers, int MeasuredPeers, long ToleratedOffsetMs);

/// <summary>
/// This node's clock is more than the tolerated offset away from a majority of its peers: the node should stop
/// serving (CockroachDB fatals) rather than issue timestamps the rest of the cluster will reject or, worse, accept.
/// </summary>
public sealed class ClockSynchronizationException : Exception
{
    /// <summary>Creates the exception from the failed health check.</summary>
    public ClockSynchronizationException(ClockHealth health)
        : base($"clock synchronization error: this node is more than {health.ToleratedOffsetMs} ms away from " +
               $"a majority of the known nodes ({health.HealthyPeers} of {health.MeasuredPeers} are within the offset)")
    {
        Health = health;
    }

    /// <summary>The health check that failed.</summary>
    public ClockHealth Health { get; }
}
