namespace Keel.LoadBench;

/// <summary>
/// The rows issue 5 asks for: puts with 1, 64 and 1000 clients, then linearizable and serializable reads of one
/// key with 64 clients; 8-byte keys and 256-byte values as in etcd's published benchmark
/// (etcd Documentation/op-guide/performance.md). Connections follow etcd's ratio of one per ten clients
/// (100 connections for 1000 clients), at least one. Puts go to the leader only (--target-leader), as in etcd's
/// 1-client row and its headline 1000-client row (44,341 puts/s leader only); reads are spread over every member,
/// as etcd's read rows are, since a follower serves a serializable read itself and a linearizable one through
/// ReadIndex.
/// </summary>
public static class Suite
{
    /// <summary>Every put row writes a new key; reads read this one, written before the read rows.</summary>
    public const string ReadKey = "bench-rd";

    /// <summary>
    /// The rows, with totals and time limits for a full run or a quick one. The totals are ceilings well above what
    /// this 2-core machine completes in the time limit (etcd 3.4 did about 1,500 puts/s with one client and 11,000
    /// with 64 here), so in practice every row runs for the time limit and both systems are measured over the same
    /// wall time; the totals still bound the run on a faster machine.
    /// </summary>
    public static IReadOnlyList<LoadSpec> Rows(bool quick, double scale, TimeSpan? timeLimit, bool putsToLeader)
    {
        var limit = timeLimit ?? TimeSpan.FromSeconds(quick ? 3 : 10);
        long Total(long full) => Math.Max(1, (long)((quick ? full / 10 : full) * scale));
        LoadSpec Put(int clients, long total) => new()
        {
            Name = $"put-{clients}", Operation = LoadOperation.Put, Clients = clients, Connections = ConnectionsFor(clients),
            Total = Total(total), TimeLimit = limit, TargetLeader = putsToLeader,
        };
        LoadSpec Range(bool linearizable, int clients, long total) => new()
        {
            Name = $"range-{(linearizable ? 'l' : 's')}-{clients}", Operation = LoadOperation.Range, Clients = clients,
            Connections = ConnectionsFor(clients), Total = Total(total), TimeLimit = limit, Linearizable = linearizable,
            RangeKey = ReadKey, TargetLeader = false,
        };
        // Reads first, on a fresh cluster holding only the read key: run after the puts, they would read a store
        // whose size is each system's own put throughput (the faster writer would be penalised on reads).
        return
        [
            Range(linearizable: true, 64, 1_000_000),
            Range(linearizable: false, 64, 1_000_000),
            Put(1, 50_000),
            Put(64, 400_000),
            Put(1000, 400_000),
        ];
    }

    /// <summary>etcd's published runs use 100 connections for 1000 clients: one per ten clients, at least one.</summary>
    public static int ConnectionsFor(int clients) => Math.Max(1, (clients + 9) / 10);
}
