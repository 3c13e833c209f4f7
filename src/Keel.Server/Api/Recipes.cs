using Keel.Mvcc;
using Keel.Node;
using Keel.Server.Hosting;

namespace Keel.Server.Api;

/// <summary>
/// The server-side halves of etcd's lock and election recipes (etcd <c>client/v3/concurrency/mutex.go</c> and
/// <c>election.go</c>, which etcd's v3lock and v3election services run inside the server): a contender's key is
/// <c>prefix/leaseIdHex</c>, created with its lease in one Txn; it owns the lock when no key under the prefix was
/// created before it. The creation revision of the key is also its fencing token: it only increases, and a write
/// guarded by <c>create_revision(key) == token</c> is refused once the key is gone.
/// </summary>
internal sealed class Recipes(NodeHost host)
{
    /// <summary>Writes and throws the gRPC form of a failure.</summary>
    public async Task<KvResult> WriteAsync(KvCommand command)
    {
        var result = await host.WriteAsync(command);
        Errors.ThrowIfFailed(result);
        return result;
    }

    /// <summary>Reads linearizably and throws the gRPC form of a failure.</summary>
    public async Task<RangeResponse> ReadAsync(RangeRequest request)
    {
        var result = await host.ReadAsync(request, linearizable: true);
        Errors.ThrowIfFailed(result);
        return result.Range!;
    }

    /// <summary>
    /// Creates <paramref name="key"/> with <paramref name="value"/> and <paramref name="lease"/> unless it exists, and
    /// returns its creation revision, the revision of the transaction, and whether it already existed (with its value).
    /// </summary>
    public async Task<(long CreateRevision, long Revision, KeyValue? Existing)> CreateOrGetAsync(byte[] key, byte[] value, long lease)
    {
        var txn = new TxnRequest
        {
            Compares = [new Compare { Key = key, Target = CompareTarget.Create, Result = CompareResult.Equal, NumberOperand = 0 }],
            Success = [RequestOp.Of(new PutRequest { Key = key, Value = value, Lease = lease })],
            Failure = [RequestOp.Of(new RangeRequest { Key = key })],
        };
        var response = (await WriteAsync(KvCommand.Of(txn))).Txn!;
        if (response.Succeeded) return (response.Revision, response.Revision, null);
        var existing = response.Responses[0].Range!.Kvs[0];
        return (existing.CreateRevision, response.Revision, existing);
    }

    /// <summary>Waits until every key under <paramref name="prefix"/> created at or before <paramref name="maxCreateRevision"/> is deleted.</summary>
    public async Task WaitDeletesAsync(byte[] prefix, long maxCreateRevision, CancellationToken cancellation)
    {
        while (true)
        {
            cancellation.ThrowIfCancellationRequested();
            var range = await ReadAsync(new RangeRequest
            {
                Key = prefix,
                RangeEnd = PrefixEnd(prefix),
                SortOrder = SortOrder.Descend,
                SortTarget = SortTarget.Create,
                Limit = 1,
                MaxCreateRevision = maxCreateRevision,
            });
            if (range.Kvs.Count == 0) return;
            await WaitDeleteAsync(range.Kvs[0].Key, range.Revision + 1, cancellation);
        }
    }

    /// <summary>Waits for the next change at or after <paramref name="fromRevision"/> to keys under the range; returns its events.</summary>
    public async Task<IReadOnlyList<Keel.Protocol.Etcd.Mvccpb.Event>> WaitChangeAsync(byte[] key, byte[] rangeEnd, long fromRevision, bool deletesOnly, CancellationToken cancellation)
    {
        var stream = new WatchStream();
        var watcher = new Watcher { Stream = stream, WatchId = 0, Key = key, RangeEnd = rangeEnd, NextRevision = fromRevision, NoPut = deletesOnly };
        host.Post(() => host.Watches.Add(watcher));
        try
        {
            await foreach (var response in stream.Reader.ReadAllAsync(cancellation))
            {
                stream.OnSent();
                if (response.Canceled) return [];
                if (response.Events.Count > 0) return response.Events;
            }
            return [];
        }
        finally
        {
            host.Post(() => host.Watches.RemoveAll(stream));
        }
    }

    private Task WaitDeleteAsync(byte[] key, long fromRevision, CancellationToken cancellation) =>
        WaitChangeAsync(key, [], fromRevision, deletesOnly: true, cancellation);

    /// <summary>The range end that selects every key starting with <paramref name="prefix"/>.</summary>
    public static byte[] PrefixEnd(byte[] prefix) => KeyRanges.PrefixEnd(prefix);

    /// <summary>The prefix under which the contenders of lock or election <paramref name="name"/> live: <c>name/</c>.</summary>
    public static byte[] PrefixOf(byte[] name) => [.. name, (byte)'/'];

    /// <summary>The contender key of <paramref name="lease"/> under <paramref name="name"/>: <c>name/leaseHex</c>.</summary>
    public static byte[] ContenderKey(byte[] name, long lease) =>
        [.. PrefixOf(name), .. System.Text.Encoding.ASCII.GetBytes(lease.ToString("x"))];
}
