using Keel.Core;

namespace Keel.Mvcc;

public sealed partial class MvccStore
{
    /// <summary>The most operations (and compares) a transaction level may hold (etcd's --max-txn-ops default).</summary>
    public const int MaxTxnOperations = 128;

    /// <summary>
    /// Runs a transaction atomically, as etcd does (etcdserver/apply.go applyTxn): validate everything (operation
    /// counts, keys, duplicate writes, ignore flags and range revisions on the branch taken), decide the branch of
    /// every level against the state before the transaction, then execute; reads inside see earlier writes of the same
    /// transaction. All its writes share one new revision; a transaction that changes nothing creates none.
    /// </summary>
    /// <param name="request">The transaction.</param>
    /// <param name="hybridTimestamp">The opaque hybrid-clock time of the log entry; not below the previous write's.</param>
    /// <exception cref="MvccException">Too many operations, duplicate key, empty key, ignore flags misused or on a
    /// missing key, or a range revision compacted or in the future.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The timestamp is below the previous write's.</exception>
    public TxnResponse Txn(TxnRequest request, long hybridTimestamp)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckTxn(request);
        CheckIntervals(request.Success);
        CheckIntervals(request.Failure);
        var path = new List<bool>();
        DecidePath(request, path);
        var pathIndex = 0;
        CheckPathAgainstState(request, path, ref pathIndex);
        CheckTimestamp(hybridTimestamp);

        pathIndex = 0;
        var response = Execute(request, path, ref pathIndex, _currentRevision + 1);
        EndWrite(hybridTimestamp);
        return response with { Revision = _currentRevision };
    }

    private static void CheckTxn(TxnRequest request, int depth = 0)
    {
        if (depth > MaxTxnNestingDepth)
            throw new MvccException(MvccError.InvalidRequest, $"keel: transactions nest deeper than {MaxTxnNestingDepth} levels");
        if (request.Compares.Count > MaxTxnOperations || request.Success.Count > MaxTxnOperations ||
            request.Failure.Count > MaxTxnOperations)
            throw new MvccException(MvccError.TooManyOperations);
        foreach (var compare in request.Compares) CheckCompare(compare);
        foreach (var op in request.Success) CheckOp(op, depth);
        foreach (var op in request.Failure) CheckOp(op, depth);
    }

    private static void CheckOp(RequestOp op, int depth)
    {
        if (op.Range is { } range) CheckRange(range);
        else if (op.Put is { } put) CheckPut(put);
        else if (op.DeleteRange is { } delete) CheckDelete(delete);
        else if (op.Txn is { } txn) CheckTxn(txn, depth + 1);
    }

    /// <summary>
    /// etcd's checkIntervals (etcdserver/api/v3rpc/key.go): within a branch, no key may be put twice nor put inside a
    /// deleted range, counting nested transactions (whose then/else branches may put the same key, as only one runs).
    /// Deletes may overlap. Unlike etcd 3.4, a range_end of "\0" counts as every key from the start, so a put under a
    /// from-key delete is refused too.
    /// </summary>
    private static (HashSet<byte[]> Puts, List<(byte[] Key, byte[] RangeEnd)> Deletes) CheckIntervals(IReadOnlyList<RequestOp> ops)
    {
        var deletes = new List<(byte[] Key, byte[] RangeEnd)>();
        foreach (var op in ops)
            if (op.DeleteRange is { } delete) deletes.Add((delete.Key, delete.RangeEnd));

        // Hash sets are iterated below, but only to look for any duplicate: the outcome does not depend on the order.
        var puts = new HashSet<byte[]>(ByteKeyComparer.Instance);
        bool Deleted(byte[] key) => deletes.Any(d => InRange(d.Key, d.RangeEnd, key));
        foreach (var op in ops)
        {
            if (op.Txn is not { } nested) continue;
            var (putsThen, deletesThen) = CheckIntervals(nested.Success);
            var (putsElse, deletesElse) = CheckIntervals(nested.Failure);
            foreach (var key in putsThen)
            {
                if (puts.Contains(key) || Deleted(key)) throw new MvccException(MvccError.DuplicateKey);
                puts.Add(key);
            }
            foreach (var key in putsElse)
            {
                if (puts.Contains(key) && !putsThen.Contains(key)) throw new MvccException(MvccError.DuplicateKey);
                if (Deleted(key)) throw new MvccException(MvccError.DuplicateKey);
                puts.Add(key);
            }
            deletes.AddRange(deletesThen);
            deletes.AddRange(deletesElse);
        }
        foreach (var op in ops)
        {
            if (op.Put is not { } put) continue;
            if (puts.Contains(put.Key) || Deleted(put.Key)) throw new MvccException(MvccError.DuplicateKey);
            puts.Add(put.Key);
        }
        return (puts, deletes);
    }

    /// <summary>The branch of every level on the path, pre-order, judged against the state before the transaction (etcd compareToPath).</summary>
    private void DecidePath(TxnRequest request, List<bool> path)
    {
        var succeeded = request.Compares.All(CompareHolds);
        path.Add(succeeded);
        foreach (var op in succeeded ? request.Success : request.Failure)
            if (op.Txn is { } nested) DecidePath(nested, path);
    }

    private void CheckPathAgainstState(TxnRequest request, List<bool> path, ref int pathIndex)
    {
        var ops = path[pathIndex++] ? request.Success : request.Failure;
        foreach (var op in ops)
        {
            if (op.Put is { } put) CheckPutAgainstState(put);
            else if (op.Range is { Revision: > 0 } range)
            {
                // etcd checkRequestRange: judged before any write, so a txn cannot read its own future revision.
                if (range.Revision > _currentRevision) throw new MvccException(MvccError.FutureRevision);
                if (range.Revision < _compactRevision) throw new MvccException(MvccError.Compacted);
            }
            else if (op.Txn is { } nested) CheckPathAgainstState(nested, path, ref pathIndex);
        }
    }

    private TxnResponse Execute(TxnRequest request, List<bool> path, ref int pathIndex, long writeRevision)
    {
        var succeeded = path[pathIndex++];
        var ops = succeeded ? request.Success : request.Failure;
        var responses = new List<ResponseOp>(ops.Count);
        foreach (var op in ops)
        {
            if (op.Range is { } range)
                responses.Add(new ResponseOp(RangeCore(range, ReadRevisionInWrite), null, null, null));
            else if (op.Put is { } put)
                responses.Add(new ResponseOp(null, PutCore(put, writeRevision), null, null));
            else if (op.DeleteRange is { } delete)
                responses.Add(new ResponseOp(null, null, DeleteCore(delete, writeRevision), null));
            else if (op.Txn is { } nested)
                responses.Add(new ResponseOp(null, null, null, Execute(nested, path, ref pathIndex, writeRevision)));
        }
        return new TxnResponse(ReadRevisionInWrite, succeeded, responses);
    }

    /// <summary>etcd applyCompare: holds if it holds for every key in the range; no key compares as zeros, but a value compare then fails.</summary>
    private bool CompareHolds(Compare compare)
    {
        var any = false;
        foreach (var history in KeysIn(compare.Key, compare.RangeEnd))
        {
            var kv = LiveAt(history, _currentRevision);
            if (kv is null) continue;
            any = true;
            if (!CompareKv(compare, kv)) return false;
        }
        if (any) return true;
        return compare.Target != CompareTarget.Value && CompareKv(compare, new KeyValue(compare.Key, 0, 0, 0, [], 0));
    }

    private static bool CompareKv(Compare compare, KeyValue kv)
    {
        var order = compare.Target switch
        {
            CompareTarget.Value => kv.ValueSpan.SequenceCompareTo(compare.ValueOperand),
            CompareTarget.Version => kv.Version.CompareTo(compare.NumberOperand),
            CompareTarget.Create => kv.CreateRevision.CompareTo(compare.NumberOperand),
            CompareTarget.Mod => kv.ModRevision.CompareTo(compare.NumberOperand),
            CompareTarget.Lease => kv.Lease.CompareTo(compare.NumberOperand),
            _ => throw new MvccException(MvccError.InvalidRequest, $"keel: invalid compare target {(int)compare.Target}"),
        };
        return compare.Result switch
        {
            CompareResult.Equal => order == 0,
            CompareResult.Greater => order > 0,
            CompareResult.Less => order < 0,
            CompareResult.NotEqual => order != 0,
            _ => throw new MvccException(MvccError.InvalidRequest, $"keel: invalid compare result {(int)compare.Result}"),
        };
    }
}
