using Keel.Mvcc;
using Keel.Node;

namespace Keel.Server.Hosting;

/// <summary>
/// Decides which answers the node loop may finish itself: completing a request's task on the loop runs the waiting
/// RPC's continuation there (map the result to protobuf, write the response to HTTP/2), which saves a thread-pool
/// hand-off per request but holds the loop for as long as that continuation runs.
/// </summary>
/// <remarks>
/// Only answers whose mapping is bounded and small qualify: at most <see cref="MaxKeyValues"/> key-values and
/// <see cref="MaxBytes"/> bytes of keys and values in all. A range of thousands of keys (or a delete returning them)
/// would otherwise copy megabytes on the thread that sends heartbeats.
/// </remarks>
internal static class InlineAnswers
{
    /// <summary>Most key-values an answer finished on the loop may carry.</summary>
    public const int MaxKeyValues = 16;

    /// <summary>Most bytes of keys and values an answer finished on the loop may carry.</summary>
    public const int MaxBytes = 64 * 1024;

    /// <summary>True when <paramref name="result"/> is small enough that its RPC may be finished on the loop.</summary>
    public static bool CheapToFinishOnLoop(KvResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        if (result.Members is { Count: > MaxKeyValues }) return false;
        // A struct, so the common answer (a put without prev_kv) costs no allocation on the loop.
        var budget = new Budget();
        return budget.Take(result.Range, result.Put, result.DeleteRange, result.Txn, depth: 0);
    }

    private struct Budget
    {
        private int _keyValues;
        private long _bytes;

        // A result and a transaction's operation carry the same four answers; a nested transaction is walked the same way.
        public bool Take(RangeResponse? range, PutResponse? put, DeleteRangeResponse? delete, TxnResponse? txn, int depth) =>
            (range is null || Take(range.Kvs))
            && (put?.PrevKv is not { } previous || Take(previous))
            && (delete is null || Take(delete.PrevKvs))
            && (txn is null || Take(txn, depth));

        private bool Take(KeyValue kv)
        {
            _keyValues++;
            _bytes += kv.Key.Length + (long)kv.ValueLength;
            return _keyValues <= MaxKeyValues && _bytes <= MaxBytes;
        }

        private bool Take(IReadOnlyList<KeyValue> kvs)
        {
            // Checked before walking: a list longer than the budget is refused without touching its items.
            if (_keyValues + kvs.Count > MaxKeyValues) return false;
            foreach (var kv in kvs)
                if (!Take(kv)) return false;
            return true;
        }

        private bool Take(TxnResponse txn, int depth)
        {
            // Nested transactions are bounded by the request's own limits; the depth guard keeps this walk bounded anyway.
            if (depth > 8 || txn.Responses.Count > 4 * MaxKeyValues) return false;
            foreach (var op in txn.Responses)
                if (!Take(op.Range, op.Put, op.DeleteRange, op.Txn, depth + 1)) return false;
            return true;
        }
    }
}
