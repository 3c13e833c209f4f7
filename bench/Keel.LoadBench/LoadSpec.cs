namespace Keel.LoadBench;

/// <summary>The operation a load row drives.</summary>
public enum LoadOperation
{
    /// <summary>KV.Put of distinct keys (sequential indices modulo the key space), one fixed value.</summary>
    Put,

    /// <summary>KV.Range of one key, linearizable (ReadIndex on the leader) or serializable (local read).</summary>
    Range,
}

/// <summary>
/// One load row: what to send, how many concurrent clients over how many connections, and the two bounds (a request
/// count and a wall-time limit) that make every run end by itself. The knobs are etcd's tools/benchmark flags
/// (etcd/tools/benchmark/cmd/root.go, put.go, range.go) so that figures can be read against etcd's published ones.
/// </summary>
public sealed record LoadSpec
{
    /// <summary>Row name printed and used to pair rows across runs ("put-1000", "range-l-64").</summary>
    public required string Name { get; init; }

    /// <summary>Put or Range.</summary>
    public required LoadOperation Operation { get; init; }

    /// <summary>Concurrent clients; each has one request in flight at a time (a closed loop, as etcd's benchmark).</summary>
    public required int Clients { get; init; }

    /// <summary>gRPC channels (HTTP/2 connections) shared by the clients; client i uses connection i mod conns.</summary>
    public required int Connections { get; init; }

    /// <summary>Requests to issue at most.</summary>
    public required long Total { get; init; }

    /// <summary>Wall-time bound of the measured phase; requests still in flight then are cut and not counted.</summary>
    public required TimeSpan TimeLimit { get; init; }

    /// <summary>Key length in bytes (etcd's --key-size; 8 in etcd's published figures).</summary>
    public int KeySizeBytes { get; init; } = 8;

    /// <summary>Value length in bytes (etcd's --val-size; 256 in etcd's published figures).</summary>
    public int ValueSizeBytes { get; init; } = 256;

    /// <summary>Distinct keys a put row cycles through; 0 means as many as requests, so every put writes a new key.</summary>
    public long KeySpace { get; init; }

    /// <summary>Range only: true for linearizable reads (etcd's --consistency l), false for serializable (s).</summary>
    public bool Linearizable { get; init; } = true;

    /// <summary>Range only: the key read by every request.</summary>
    public string RangeKey { get; init; } = "bench-rd";

    /// <summary>True to send every request to the current leader (etcd's --target-leader), false to spread the
    /// connections over all endpoints round-robin, as etcd's benchmark dials them.</summary>
    public bool TargetLeader { get; init; }

    /// <summary>Deadline of one call; a call past it counts as an error (DEADLINE_EXCEEDED).</summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Untimed requests issued before the clock starts (connection set-up, JIT of both sides).</summary>
    public int WarmupRequests { get; init; } = 200;

    /// <summary>
    /// Untimed load after <see cref="WarmupRequests"/>, for at least this long, with the row's own clients: a JIT-compiled
    /// server (Keel) reaches its optimized code and GC budgets only after seconds of load, a Go server (etcd) needs none;
    /// both get the same warm-up. Zero: none.
    /// </summary>
    public TimeSpan WarmupDuration { get; init; }

    /// <summary>The server processes whose CPU time is sampled around the measured phase (empty: not measured).</summary>
    public IReadOnlyList<int> ServerPids { get; init; } = [];

    /// <summary>Client URLs of every member whose <c>/metrics</c> allocation counter is read around the measured phase
    /// (empty: not measured); see <see cref="ServerAllocations"/>.</summary>
    public IReadOnlyList<string> ServerMetricsEndpoints { get; init; } = [];
}
