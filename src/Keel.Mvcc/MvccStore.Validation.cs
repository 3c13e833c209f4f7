namespace Keel.Mvcc;

// Validation of requests before anything is proposed or applied: everything that can be judged from the request alone.
public sealed partial class MvccStore
{
    /// <summary>The deepest a transaction may nest other transactions (etcd bounds it only by protobuf's recursion limit).</summary>
    public const int MaxTxnNestingDepth = 64;

    /// <summary>
    /// Checks a range request on its own (key given, sort order and target known): the same checks <see cref="Range"/>
    /// makes, so a shell can refuse a bad request at the boundary with the store's words.
    /// </summary>
    /// <exception cref="MvccException">The request is invalid (InvalidArgument).</exception>
    public static void Validate(RangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckRange(request);
    }

    /// <summary>Checks a put on its own (key given, ignore flags used correctly).</summary>
    /// <exception cref="MvccException">The request is invalid (InvalidArgument).</exception>
    public static void Validate(PutRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckPut(request);
    }

    /// <summary>Checks a delete on its own (key given).</summary>
    /// <exception cref="MvccException">The request is invalid (InvalidArgument).</exception>
    public static void Validate(DeleteRangeRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckDelete(request);
    }

    /// <summary>
    /// Checks a transaction on its own, across every nesting level, as etcd's <c>checkTxnRequest</c> and
    /// <c>checkIntervals</c> do before proposing: at most <see cref="MaxTxnOperations"/> compares and operations per
    /// branch, no key put twice or put inside a deleted range within a branch, known compare targets and results, known
    /// sort orders and targets, keys given, and at most <see cref="MaxTxnNestingDepth"/> levels.
    /// </summary>
    /// <exception cref="MvccException">The request is invalid (InvalidArgument).</exception>
    public static void Validate(TxnRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        CheckTxn(request);
        CheckIntervals(request.Success);
        CheckIntervals(request.Failure);
    }

    private static void CheckCompare(Compare compare)
    {
        if (!Enum.IsDefined(compare.Target))
            throw new MvccException(MvccError.InvalidRequest, $"keel: invalid compare target {(int)compare.Target} (VERSION, CREATE, MOD, VALUE or LEASE: 0 to 4)");
        if (!Enum.IsDefined(compare.Result))
            throw new MvccException(MvccError.InvalidRequest, $"keel: invalid compare result {(int)compare.Result} (EQUAL, GREATER, LESS or NOT_EQUAL: 0 to 3)");
    }

    private static void CheckSort(RangeRequest request)
    {
        if (!Enum.IsDefined(request.SortOrder))
            throw new MvccException(MvccError.InvalidRequest, $"keel: invalid sort order {(int)request.SortOrder} (NONE, ASCEND or DESCEND: 0 to 2)");
        if (!Enum.IsDefined(request.SortTarget))
            throw new MvccException(MvccError.InvalidRequest, $"keel: invalid sort target {(int)request.SortTarget} (KEY, VERSION, CREATE, MOD or VALUE: 0 to 4)");
    }
}
