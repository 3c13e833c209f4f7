using Keel.Core;

namespace Keel.Node;

/// <summary>Settings of a <see cref="KeelNode"/>.</summary>
public sealed record KeelNodeOptions
{
    /// <summary>This node's Raft id (1-based, never 0).</summary>
    public required ulong NodeId { get; init; }

    /// <summary>The initial voters (the bootstrap configuration, as etcd's --initial-cluster).</summary>
    public required IReadOnlyList<ulong> Voters { get; init; }

    /// <summary>Seeded randomness for election timeouts and proposal ids (a fresh split per boot).</summary>
    public required DeterministicRandom Random { get; init; }

    /// <summary>Length of one Raft tick (etcd --heartbeat-interval, 100 ms by default).</summary>
    public long TickMs { get; init; } = 100;

    /// <summary>Election timeout in ticks (etcd: 1000 ms / 100 ms = 10).</summary>
    public int ElectionTimeoutTicks { get; init; } = 10;

    /// <summary>
    /// How long a request may wait for its answer before it fails with "etcdserver: request timed out" (etcd waits
    /// 5 s plus 2 election timeouts; the node default is 5 s).
    /// </summary>
    public long RequestTimeoutMs { get; init; } = 5_000;

    /// <summary>WAL segment size; small values make the simulator exercise segment rolls.</summary>
    public long WalSegmentSizeBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// A planted bug for tests only: serve "linearizable" reads from local state whenever this node believes it is the
    /// leader, skipping ReadIndex. A deposed leader that has not yet heard of its successor then serves stale data,
    /// which the linearizability checker must catch. Never set this in production.
    /// </summary>
    public bool UnsafeLocalReadsOnLeader { get; init; }
}
