using BenchmarkDotNet.Attributes;
using Keel.Leases;

namespace Keel.Benchmarks;

/// <summary>
/// Hot paths of Keel.Leases: a keep-alive per client every TTL/3 (allocation-free), key attach on every put with a
/// lease, grant/revoke churn, the leader's expiry sweep, and a snapshot.
/// </summary>
[MemoryDiagnoser]
public class LeaseBenchmarks
{
    private LeaseTable _table = new();
    private LeaseTable _snapshotTable = new();
    private long[] _ids = [];
    private byte[][] _keys = [];
    private long _nowMs;
    private int _next;

    /// <summary>Live leases in the table.</summary>
    [Params(10_000)]
    public int Leases { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _table = new LeaseTable();
        _table.Promote(0);
        for (var i = 0; i < Leases; i++) _table.Grant(0, 1_000_000_000, 0);
        _ids = _table.Leases();
        _keys = _ids.Select(id => System.Text.Encoding.UTF8.GetBytes($"/registry/services/{id:D8}")).ToArray();
        for (var i = 0; i < _ids.Length; i++) _table.Attach(_ids[i], _keys[i]);

        _snapshotTable = new LeaseTable();
        for (var i = 0; i < Leases; i++)
        {
            var id = _snapshotTable.Grant(0, 60, 0).LeaseId;
            _snapshotTable.Attach(id, _keys[i]);
        }
    }

    /// <summary>The anchor: the same round-robin lookup in a plain dictionary of the lease ids.</summary>
    [Benchmark(Baseline = true)]
    public long Anchor_DictionaryLookup()
    {
        _plainDictionary ??= _ids.ToDictionary(id => id, id => id);
        return _plainDictionary.TryGetValue(_ids[_next++ % _ids.Length], out var value) ? value : -1;
    }

    private Dictionary<long, long>? _plainDictionary;

    /// <summary>Renew one lease (round robin over all): dictionary lookup plus a heap sift.</summary>
    [Benchmark]
    public long KeepAlive()
    {
        var id = _ids[_next++ % _ids.Length];
        return _table.KeepAlive(id, ++_nowMs).TtlMs;
    }

    /// <summary>Attach a key that is already attached to the lease (every put with the same lease).</summary>
    [Benchmark]
    public LeaseStatus AttachExistingKey()
    {
        var i = _next++ % _ids.Length;
        return _table.Attach(_ids[i], _keys[i]);
    }

    /// <summary>Grant a lease and revoke it, in a table of <see cref="Leases"/> leases.</summary>
    [Benchmark]
    public int GrantRevoke()
    {
        var id = _table.Grant(0, 60, ++_nowMs).LeaseId;
        return _table.Revoke(id).Keys.Count;
    }

    /// <summary>1,000 leases granted and expired in two sweeps of 500 (etcd's 1,000 revocations per second).</summary>
    [Benchmark(OperationsPerInvoke = 1_000)]
    public int GrantThenExpire1000()
    {
        var table = new LeaseTable();
        table.Promote(0);
        for (var i = 0; i < 1_000; i++) table.GrantMs(0, 2_000 + i, 0);
        return table.ExpireDue(5_000, 500).Count + table.ExpireDue(5_000, 500).Count;
    }

    /// <summary>Encode the whole table (<see cref="Leases"/> leases, one 27-byte key each).</summary>
    [Benchmark]
    public int Snapshot() => _snapshotTable.Snapshot().Length;

    /// <summary>Decode and validate it.</summary>
    [Benchmark]
    public int Restore() => LeaseTable.Restore(_snapshotBytes ??= _snapshotTable.Snapshot()).Count;

    private byte[]? _snapshotBytes;
}
