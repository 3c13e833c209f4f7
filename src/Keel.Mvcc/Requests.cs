namespace Keel.Mvcc;

/// <summary>Order of a range's results, as etcd's <c>RangeRequest.SortOrder</c>.</summary>
public enum SortOrder
{
    /// <summary>Key order (the index order); becomes ascending when the target is not the key, as in etcd.</summary>
    None = 0,

    /// <summary>Ascending by the target.</summary>
    Ascend = 1,

    /// <summary>Descending by the target.</summary>
    Descend = 2,
}

/// <summary>The field a range is sorted by, as etcd's <c>RangeRequest.SortTarget</c>.</summary>
public enum SortTarget
{
    /// <summary>The key.</summary>
    Key = 0,

    /// <summary>The version.</summary>
    Version = 1,

    /// <summary>The create revision.</summary>
    Create = 2,

    /// <summary>The mod revision.</summary>
    Mod = 3,

    /// <summary>The value (unsigned bytes).</summary>
    Value = 4,
}

/// <summary>
/// A read of a key or key range, with every option of etcd's <c>RangeRequest</c> that the store evaluates
/// (serializable vs linearizable is the server's concern). <see cref="RangeEnd"/>: empty = just <see cref="Key"/>;
/// <c>{0}</c> = every key &gt;= <see cref="Key"/>; otherwise the half-open range [Key, RangeEnd).
/// </summary>
public sealed record RangeRequest
{
    /// <summary>The key, or the start of the range. Must not be empty.</summary>
    public required byte[] Key { get; init; }

    /// <summary>End of the range (exclusive); empty for a single key, <c>{0}</c> for all keys from <see cref="Key"/>.</summary>
    public byte[] RangeEnd { get; init; } = [];

    /// <summary>Maximum number of keys returned, 0 for no limit.</summary>
    public long Limit { get; init; }

    /// <summary>Revision to read at; 0 or less reads the current revision.</summary>
    public long Revision { get; init; }

    /// <summary>Result order.</summary>
    public SortOrder SortOrder { get; init; }

    /// <summary>Field sorted by.</summary>
    public SortTarget SortTarget { get; init; }

    /// <summary>Return keys without values.</summary>
    public bool KeysOnly { get; init; }

    /// <summary>Return only the count.</summary>
    public bool CountOnly { get; init; }

    /// <summary>Drop keys whose mod revision is below this (0 = no bound).</summary>
    public long MinModRevision { get; init; }

    /// <summary>Drop keys whose mod revision is above this (0 = no bound).</summary>
    public long MaxModRevision { get; init; }

    /// <summary>Drop keys whose create revision is below this (0 = no bound).</summary>
    public long MinCreateRevision { get; init; }

    /// <summary>Drop keys whose create revision is above this (0 = no bound).</summary>
    public long MaxCreateRevision { get; init; }
}

/// <summary>The answer to a <see cref="RangeRequest"/>, as etcd's <c>RangeResponse</c>.</summary>
/// <param name="Revision">The store's current revision (the response header's revision), also for historical reads.</param>
/// <param name="Kvs">The keys found, after filters, sort and limit (empty for count_only).</param>
/// <param name="More">Whether the limit cut off keys that passed the filters.</param>
/// <param name="Count">Number of keys in the range at the read revision, before the min/max filters (as etcd computes it).</param>
public sealed record RangeResponse(long Revision, IReadOnlyList<KeyValue> Kvs, bool More, long Count);

/// <summary>A write of one key, as etcd's <c>PutRequest</c>.</summary>
public sealed record PutRequest
{
    /// <summary>The key. Must not be empty.</summary>
    public required byte[] Key { get; init; }

    /// <summary>The value (must be empty with <see cref="IgnoreValue"/>).</summary>
    public byte[] Value { get; init; } = [];

    /// <summary>Lease to attach, 0 for none (must be 0 with <see cref="IgnoreLease"/>). The lease table checks it exists.</summary>
    public long Lease { get; init; }

    /// <summary>Return the version replaced.</summary>
    public bool PrevKv { get; init; }

    /// <summary>Keep the current value; the key must exist.</summary>
    public bool IgnoreValue { get; init; }

    /// <summary>Keep the current lease; the key must exist.</summary>
    public bool IgnoreLease { get; init; }

    /// <summary>
    /// When true the store keeps <see cref="Value"/>'s array itself instead of a copy: the caller hands the array over
    /// and never changes it again (the node does, for values it has just decoded from a log entry: one copy of every
    /// value fewer on every member).
    /// </summary>
    public bool HandsOverValue { get; init; }
}

/// <summary>The answer to a <see cref="PutRequest"/>.</summary>
/// <param name="Revision">The store revision after the put (the put's own revision).</param>
/// <param name="PrevKv">The version replaced, when asked for and the key existed.</param>
public sealed record PutResponse(long Revision, KeyValue? PrevKv);

/// <summary>A delete of a key or key range, as etcd's <c>DeleteRangeRequest</c> (range_end as in <see cref="RangeRequest"/>).</summary>
public sealed record DeleteRangeRequest
{
    /// <summary>The key, or the start of the range. Must not be empty.</summary>
    public required byte[] Key { get; init; }

    /// <summary>End of the range (exclusive); empty for a single key, <c>{0}</c> for all keys from <see cref="Key"/>.</summary>
    public byte[] RangeEnd { get; init; } = [];

    /// <summary>Return the deleted versions.</summary>
    public bool PrevKv { get; init; }
}

/// <summary>The answer to a <see cref="DeleteRangeRequest"/>.</summary>
/// <param name="Revision">The store revision after the delete (unchanged if nothing was deleted).</param>
/// <param name="Deleted">Number of keys deleted.</param>
/// <param name="PrevKvs">The deleted versions, in key order, when asked for.</param>
public sealed record DeleteRangeResponse(long Revision, long Deleted, IReadOnlyList<KeyValue> PrevKvs);

/// <summary>What a <see cref="Compare"/> looks at, as etcd's <c>Compare.CompareTarget</c>.</summary>
public enum CompareTarget
{
    /// <summary>The version (0 for a missing key).</summary>
    Version = 0,

    /// <summary>The create revision (0 for a missing key).</summary>
    Create = 1,

    /// <summary>The mod revision (0 for a missing key).</summary>
    Mod = 2,

    /// <summary>The value; a compare on a missing key's value always fails.</summary>
    Value = 3,

    /// <summary>The lease id (0 for none or a missing key).</summary>
    Lease = 4,
}

/// <summary>The relation a <see cref="Compare"/> requires, as etcd's <c>Compare.CompareResult</c> (stored value OP operand).</summary>
public enum CompareResult
{
    /// <summary>Equal.</summary>
    Equal = 0,

    /// <summary>Stored greater than the operand.</summary>
    Greater = 1,

    /// <summary>Stored less than the operand.</summary>
    Less = 2,

    /// <summary>Not equal.</summary>
    NotEqual = 3,
}

/// <summary>
/// One guard of a <see cref="TxnRequest"/>, as etcd's <c>Compare</c>. Over a range (non-empty <see cref="RangeEnd"/>)
/// it holds only if it holds for every key in the range; an empty range compares as a missing key (fields 0), except
/// that a value compare on missing keys fails (etcdserver/apply.go applyCompare).
/// </summary>
public sealed record Compare
{
    /// <summary>The key, or the start of the range.</summary>
    public required byte[] Key { get; init; }

    /// <summary>End of the range; empty for a single key.</summary>
    public byte[] RangeEnd { get; init; } = [];

    /// <summary>The field compared.</summary>
    public required CompareTarget Target { get; init; }

    /// <summary>The relation required.</summary>
    public required CompareResult Result { get; init; }

    /// <summary>Operand of a <see cref="CompareTarget.Value"/> compare.</summary>
    public byte[] ValueOperand { get; init; } = [];

    /// <summary>Operand of a version, create, mod or lease compare.</summary>
    public long NumberOperand { get; init; }
}

/// <summary>One operation of a transaction branch, as etcd's <c>RequestOp</c>: exactly one of the four is set.</summary>
public sealed record RequestOp
{
    private RequestOp() { }

    /// <summary>The range, if this is a range.</summary>
    public RangeRequest? Range { get; private init; }

    /// <summary>The put, if this is a put.</summary>
    public PutRequest? Put { get; private init; }

    /// <summary>The delete, if this is a delete.</summary>
    public DeleteRangeRequest? DeleteRange { get; private init; }

    /// <summary>The nested transaction, if this is one.</summary>
    public TxnRequest? Txn { get; private init; }

    /// <summary>A range operation.</summary>
    public static RequestOp Of(RangeRequest request) => new() { Range = request };

    /// <summary>A put operation.</summary>
    public static RequestOp Of(PutRequest request) => new() { Put = request };

    /// <summary>A delete operation.</summary>
    public static RequestOp Of(DeleteRangeRequest request) => new() { DeleteRange = request };

    /// <summary>A nested transaction.</summary>
    public static RequestOp Of(TxnRequest request) => new() { Txn = request };
}

/// <summary>The answer to one <see cref="RequestOp"/>: the member matching the request's kind is set.</summary>
/// <param name="Range">The range answer.</param>
/// <param name="Put">The put answer.</param>
/// <param name="DeleteRange">The delete answer.</param>
/// <param name="Txn">The nested transaction answer.</param>
public sealed record ResponseOp(RangeResponse? Range, PutResponse? Put, DeleteRangeResponse? DeleteRange, TxnResponse? Txn);

/// <summary>
/// An atomic if/then/else, as etcd's <c>TxnRequest</c>: if every compare holds, run <see cref="Success"/>, else
/// <see cref="Failure"/>. All writes of the transaction (nested ones too) share one new revision.
/// </summary>
public sealed record TxnRequest
{
    /// <summary>The guards (at most 128).</summary>
    public IReadOnlyList<Compare> Compares { get; init; } = [];

    /// <summary>Operations when every compare holds (at most 128).</summary>
    public IReadOnlyList<RequestOp> Success { get; init; } = [];

    /// <summary>Operations otherwise (at most 128).</summary>
    public IReadOnlyList<RequestOp> Failure { get; init; } = [];
}

/// <summary>The answer to a <see cref="TxnRequest"/>.</summary>
/// <param name="Revision">The store revision after the transaction (its own revision if it wrote).</param>
/// <param name="Succeeded">Whether the compares held.</param>
/// <param name="Responses">One answer per operation of the branch taken.</param>
public sealed record TxnResponse(long Revision, bool Succeeded, IReadOnlyList<ResponseOp> Responses);

/// <summary>The answer to <see cref="MvccStore.HashKv"/>.</summary>
/// <param name="Hash">CRC-32 of every stored version with revision at most <see cref="HashRevision"/>.</param>
/// <param name="HashRevision">The revision hashed.</param>
/// <param name="CompactRevision">The compaction revision when hashed (replicas agree only at equal compaction).</param>
/// <param name="Revision">The current store revision.</param>
public sealed record HashKvResult(uint Hash, long HashRevision, long CompactRevision, long Revision);
