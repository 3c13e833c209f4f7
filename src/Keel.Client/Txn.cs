using Google.Protobuf;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Client;

/// <summary>How a <see cref="TxnCompare"/> compares.</summary>
public enum CompareOp
{
    /// <summary>Equal.</summary>
    Equal,

    /// <summary>Greater than.</summary>
    Greater,

    /// <summary>Less than.</summary>
    Less,

    /// <summary>Not equal.</summary>
    NotEqual,
}

/// <summary>One guard of a transaction, checked atomically against the current state of one key.</summary>
public sealed class TxnCompare
{
    private TxnCompare(Compare compare) => Proto = compare;

    internal Compare Proto { get; }

    /// <summary>The key's value compares to <paramref name="value"/> (bytewise).</summary>
    public static TxnCompare Value(string key, CompareOp op, string value) =>
        new(new Compare { Key = Keys.Of(key), Target = Compare.Types.CompareTarget.Value, Result = Result(op), Value = ByteString.CopyFromUtf8(value) });

    /// <summary>The key's version (puts since it was created; 0 when absent) compares to <paramref name="version"/>.</summary>
    public static TxnCompare Version(string key, CompareOp op, long version) =>
        new(new Compare { Key = Keys.Of(key), Target = Compare.Types.CompareTarget.Version, Result = Result(op), Version = version });

    /// <summary>The key's creation revision (0 when absent) compares to <paramref name="revision"/>; a lock's fencing check.</summary>
    public static TxnCompare CreateRevision(string key, CompareOp op, long revision) =>
        new(new Compare { Key = Keys.Of(key), Target = Compare.Types.CompareTarget.Create, Result = Result(op), CreateRevision = revision });

    /// <summary>The key's last modification revision compares to <paramref name="revision"/>; optimistic concurrency.</summary>
    public static TxnCompare ModRevision(string key, CompareOp op, long revision) =>
        new(new Compare { Key = Keys.Of(key), Target = Compare.Types.CompareTarget.Mod, Result = Result(op), ModRevision = revision });

    /// <summary>The key does not exist.</summary>
    public static TxnCompare Missing(string key) => CreateRevision(key, CompareOp.Equal, 0);

    /// <summary>The key exists.</summary>
    public static TxnCompare Exists(string key) => CreateRevision(key, CompareOp.Greater, 0);

    private static Compare.Types.CompareResult Result(CompareOp op) => op switch
    {
        CompareOp.Equal => Compare.Types.CompareResult.Equal,
        CompareOp.Greater => Compare.Types.CompareResult.Greater,
        CompareOp.Less => Compare.Types.CompareResult.Less,
        CompareOp.NotEqual => Compare.Types.CompareResult.NotEqual,
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown comparison"),
    };
}

/// <summary>One operation of a transaction branch.</summary>
public sealed class TxnOp
{
    private TxnOp(RequestOp op) => Proto = op;

    internal RequestOp Proto { get; }

    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/> (UTF-8), optionally on a lease.</summary>
    public static TxnOp Put(string key, string value, long leaseId = 0) =>
        new(new RequestOp { RequestPut = new PutRequest { Key = Keys.Of(key), Value = ByteString.CopyFromUtf8(value), Lease = leaseId } });

    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/>, optionally on a lease.</summary>
    public static TxnOp Put(string key, ReadOnlyMemory<byte> value, long leaseId = 0) =>
        new(new RequestOp { RequestPut = new PutRequest { Key = Keys.Of(key), Value = ByteString.CopyFrom(value.Span), Lease = leaseId } });

    /// <summary>Deletes <paramref name="key"/>.</summary>
    public static TxnOp Delete(string key) => new(new RequestOp { RequestDeleteRange = new DeleteRangeRequest { Key = Keys.Of(key) } });

    /// <summary>Reads <paramref name="key"/>; its value is in <see cref="TxnResult.Responses"/>.</summary>
    public static TxnOp Get(string key) => new(new RequestOp { RequestRange = new RangeRequest { Key = Keys.Of(key) } });

    /// <summary>Reads every key with <paramref name="prefix"/>.</summary>
    public static TxnOp GetPrefix(string prefix) =>
        new(new RequestOp { RequestRange = new RangeRequest { Key = Keys.Of(prefix), RangeEnd = Keys.PrefixEnd(prefix) } });
}

/// <summary>
/// Builds an etcd transaction: if every compare holds, the Then operations run, else the Else operations, atomically
/// at one revision. Commit sends it once with one idempotency key (retries reuse it).
/// </summary>
public sealed class TxnBuilder
{
    private readonly KeelClient _client;
    private readonly TxnRequest _request = new();

    internal TxnBuilder(KeelClient client) => _client = client;

    /// <summary>Adds guards (all must hold).</summary>
    public TxnBuilder If(params TxnCompare[] compares)
    {
        foreach (var compare in compares) _request.Compare.Add(compare.Proto);
        return this;
    }

    /// <summary>Adds operations run when every guard holds.</summary>
    public TxnBuilder Then(params TxnOp[] ops)
    {
        foreach (var op in ops) _request.Success.Add(op.Proto);
        return this;
    }

    /// <summary>Adds operations run when a guard fails.</summary>
    public TxnBuilder Else(params TxnOp[] ops)
    {
        foreach (var op in ops) _request.Failure.Add(op.Proto);
        return this;
    }

    /// <summary>Sends the transaction (exactly once, however often it is retried).</summary>
    public Task<TxnResult> CommitAsync(CancellationToken cancellationToken = default) => _client.CommitAsync(_request.Clone(), cancellationToken);
}

/// <summary>The answer to a transaction.</summary>
/// <param name="Succeeded">Every guard held and the Then branch ran.</param>
/// <param name="Revision">The store revision after the transaction.</param>
/// <param name="Responses">One entry per operation of the branch that ran: the keys a Get read (empty for Put and Delete).</param>
public sealed record TxnResult(bool Succeeded, long Revision, IReadOnlyList<IReadOnlyList<KeyValue>> Responses)
{
    internal static TxnResult From(TxnResponse response) =>
        new(response.Succeeded, response.Header.Revision,
            response.Responses.Select(r => (IReadOnlyList<KeyValue>)(r.ResponseRange?.Kvs.Select(KeyValue.From).ToArray() ?? [])).ToArray());
}
