using System.Text;
using BenchmarkDotNet.Attributes;
using Keel.Mvcc;

namespace Keel.Benchmarks;

/// <summary>MVCC store costs on a store of 10,000 keys ("key/00000".."key/09999", 64-byte values).</summary>
[MemoryDiagnoser]
public class MvccBenchmarks
{
    private const int KeyCount = 10_000;
    private MvccStore _store = null!;
    private byte[][] _keys = null!;
    private readonly byte[] _value = new byte[64];
    private int _next;
    private long _timestamp;
    private TxnRequest _txn = null!;

    [GlobalSetup]
    public void Setup()
    {
        _keys = [.. Enumerable.Range(0, KeyCount).Select(i => Encoding.ASCII.GetBytes($"key/{i:D5}"))];
        _store = new MvccStore();
        foreach (var key in _keys) _store.Put(new PutRequest { Key = key, Value = _value }, ++_timestamp);
        _txn = new TxnRequest
        {
            Compares = [new Compare { Key = _keys[1], Target = CompareTarget.Version, Result = CompareResult.Greater, NumberOperand = 0 }],
            Success = [RequestOp.Of(new PutRequest { Key = _keys[2], Value = _value })],
        };
    }

    /// <summary>Overwrite of an existing key, with a compaction every 10,000 puts (as auto-compaction would).</summary>
    [Benchmark]
    public long Put()
    {
        var response = _store.Put(new PutRequest { Key = _keys[_next++ % KeyCount], Value = _value }, ++_timestamp);
        if (_next % KeyCount == 0) _store.Compact(_store.CurrentRevision - 1);
        return response.Revision;
    }

    /// <summary>Point read at the current revision.</summary>
    [Benchmark]
    public int GetOne() => _store.Range(new RangeRequest { Key = _keys[_next++ % KeyCount] }).Kvs.Count;

    /// <summary>Prefix read of all 10,000 keys with limit 10 (count still covers the whole range, as in etcd).</summary>
    [Benchmark]
    public long PrefixLimit10() => _store.Range(new RangeRequest { Key = "key/"u8.ToArray(), RangeEnd = "key0"u8.ToArray(), Limit = 10 }).Count;

    /// <summary>Txn: one version compare, one put.</summary>
    [Benchmark]
    public long TxnComparePut()
    {
        var response = _store.Txn(_txn, ++_timestamp);
        if (response.Revision % KeyCount == 0) _store.Compact(_store.CurrentRevision - 1);
        return response.Revision;
    }

    /// <summary>Hybrid time to revision.</summary>
    [Benchmark]
    public long RevisionAt() => _store.RevisionAt(_timestamp / 2 + 1);
}
