namespace Keel.Leases;

/// <summary>
/// Configuration of a <see cref="LeaseTable"/>: the TTL bounds and the timing of leader changes.
/// </summary>
/// <remarks>
/// The defaults are etcd's (etcd 3.4 <c>lease/lessor.go</c>, <c>etcdserver/server.go</c>): the minimum TTL is
/// ceil(1.5 x election timeout) in whole seconds (2 s with the default 1 s election timeout, so <c>grant 1</c> yields
/// TTL 2), the maximum is 9,000,000,000 s, and a new leader extends every lease by one election timeout because no
/// keep-alive could reach any leader while the election ran. Every replica of a replicated table must use the same
/// options, because the TTL clamp decides what an applied Grant stores.
/// </remarks>
public sealed record LeaseTableOptions
{
    /// <summary>etcd's maximum lease TTL in seconds (<c>MaxLeaseTTL</c> in etcd's <c>lease/lessor.go</c>).</summary>
    public const long EtcdMaxTtlSeconds = 9_000_000_000;

    /// <summary>etcd's election timeout (1 s) from which the default minimum TTL and promotion extension derive.</summary>
    public const long EtcdElectionTimeoutMs = 1_000;

    /// <summary>etcd's bound on lease revocations per second (<c>leaseRevokeRate</c>).</summary>
    public const int EtcdMaxRevocationsPerSecond = 1_000;

    /// <summary>etcd's expiry loop period: the leader looks for expired leases every 500 ms.</summary>
    public const long EtcdExpiryCheckIntervalMs = 500;

    /// <summary>
    /// The smallest TTL a lease is granted with; smaller requests (zero and negative included) are raised to it, as
    /// etcd does. Default 2,000 ms.
    /// </summary>
    public long MinTtlMs { get; init; } = MinTtlMsForElectionTimeout(EtcdElectionTimeoutMs);

    /// <summary>The largest TTL in seconds; larger requests fail with "etcdserver: too large lease TTL".</summary>
    public long MaxTtlSeconds { get; init; } = EtcdMaxTtlSeconds;

    /// <summary>
    /// How much longer than its replicated remaining TTL every lease lives after a promotion (the election time in which
    /// clients could not reach a leader to keep alive). Default 1,000 ms, etcd's election timeout.
    /// </summary>
    public long PromotionExtensionMs { get; init; } = EtcdElectionTimeoutMs;

    /// <summary>
    /// When positive, a primary that observes a gap longer than this between two expiry checks
    /// (<see cref="LeaseTable.ExpireDue"/> or <see cref="LeaseTable.PeekExpired"/>) concludes that it was itself paused
    /// (a GC pause, a stalled disk, a suspended VM: etcd #12528) and moves every deadline forward by the gap before
    /// expiring anything, since no keep-alive could be processed during the pause. Zero (the default) disables it; set
    /// it to a few expiry-check intervals (for example 2,000 ms with checks every 500 ms), never below the interval,
    /// or leases stop expiring.
    /// </summary>
    public long LeaderStallThresholdMs { get; init; }

    /// <summary>The maximum TTL in milliseconds (<see cref="MaxTtlSeconds"/> x 1000, saturated).</summary>
    public long MaxTtlMs => MaxTtlSeconds > long.MaxValue / 1000 ? long.MaxValue : MaxTtlSeconds * 1000;

    /// <summary>The minimum TTL in whole seconds, rounded up, as etcd reports it.</summary>
    public long MinTtlSeconds => (MinTtlMs + 999) / 1000;

    /// <summary>etcd's defaults.</summary>
    public static LeaseTableOptions Default { get; } = new();

    /// <summary>
    /// etcd's rule for a given election timeout: minimum TTL ceil(1.5 x election timeout) rounded up to whole seconds,
    /// promotion extension one election timeout.
    /// </summary>
    public static LeaseTableOptions FromElectionTimeout(long electionTimeoutMs)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(electionTimeoutMs);
        return new LeaseTableOptions
        {
            MinTtlMs = MinTtlMsForElectionTimeout(electionTimeoutMs),
            PromotionExtensionMs = electionTimeoutMs,
        };
    }

    /// <summary>ceil(1.5 x <paramref name="electionTimeoutMs"/>) rounded up to whole seconds, in milliseconds.</summary>
    public static long MinTtlMsForElectionTimeout(long electionTimeoutMs)
    {
        var minMs = (3 * electionTimeoutMs + 1) / 2;
        return (minMs + 999) / 1000 * 1000;
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when the options are inconsistent.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MinTtlMs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxTtlSeconds);
        ArgumentOutOfRangeException.ThrowIfNegative(PromotionExtensionMs);
        ArgumentOutOfRangeException.ThrowIfNegative(LeaderStallThresholdMs);
        if (MinTtlMs > MaxTtlMs)
            throw new ArgumentOutOfRangeException(nameof(MinTtlMs), MinTtlMs, "the minimum TTL exceeds the maximum TTL");
    }
}
