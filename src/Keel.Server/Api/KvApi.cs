using Grpc.Core;
using Keel.Node;
using Keel.Protocol;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Server.Hosting;

namespace Keel.Server.Api;

/// <summary>
/// etcd's KV service (<c>etcdserver/api/v3rpc/key.go</c>): validates as etcd does, then hands the request to the node
/// (reads: ReadIndex unless <c>serializable</c>; writes: through the log) and maps the answer back. An
/// <c>idempotency-key</c> request header on Put, DeleteRange and Txn makes a retry return the first answer.
/// </summary>
internal sealed class KvApi(NodeHost host, Auth.AuthGate gate) : KV.KVBase
{
    public override async Task<RangeResponse> Range(RangeRequest request, ServerCallContext context)
    {
        if (request.Key.IsEmpty) throw EtcdErrors.KeyNotProvided.ToRpcException();
        var range = Validated(ProtoMapping.ToStore(request), Keel.Mvcc.MvccStore.Validate);
        gate.CheckRead(context, range.Key, range.RangeEnd);
        var result = await host.ReadAsync(range, linearizable: !request.Serializable, context.Deadline);
        Errors.ThrowIfFailed(result);
        return Bounded(ProtoMapping.ToProto(result.Range!, host.Header(result.Range!.Revision)));
    }

    public override async Task<PutResponse> Put(PutRequest request, ServerCallContext context)
    {
        if (request.Key.IsEmpty) throw EtcdErrors.KeyNotProvided.ToRpcException();
        var put = Validated(ProtoMapping.ToStore(request), Keel.Mvcc.MvccStore.Validate);
        gate.CheckWrite(context, put.Key, []);
        if (put.PrevKv) gate.CheckRead(context, put.Key, []);
        await gate.CheckLeaseKeysAsync(context, put.Lease);
        var result = await host.WriteAsync(KvCommand.Of(put), IdempotencyKey(context, gate), context.Deadline);
        Errors.ThrowIfFailed(result);
        return ProtoMapping.ToProto(result.Put!, host.Header(result.Put!.Revision));
    }

    public override async Task<DeleteRangeResponse> DeleteRange(DeleteRangeRequest request, ServerCallContext context)
    {
        if (request.Key.IsEmpty) throw EtcdErrors.KeyNotProvided.ToRpcException();
        var delete = Validated(ProtoMapping.ToStore(request), Keel.Mvcc.MvccStore.Validate);
        if (delete.PrevKv) gate.CheckRead(context, delete.Key, delete.RangeEnd);
        gate.CheckWrite(context, delete.Key, delete.RangeEnd);
        var result = await host.WriteAsync(KvCommand.Of(delete), IdempotencyKey(context, gate), context.Deadline);
        Errors.ThrowIfFailed(result);
        return ProtoMapping.ToProto(result.DeleteRange!, host.Header(result.DeleteRange!.Revision));
    }

    public override async Task<TxnResponse> Txn(TxnRequest request, ServerCallContext context)
    {
        Keel.Mvcc.TxnRequest txn;
        try
        {
            txn = ProtoMapping.ToStore(request);
        }
        catch (ArgumentException invalid)
        {
            throw Errors.InvalidArgument(invalid.Message);
        }
        Validated(txn, Keel.Mvcc.MvccStore.Validate);
        gate.CheckTxn(context, txn);
        var result = await host.WriteAsync(KvCommand.Of(txn), IdempotencyKey(context, gate), context.Deadline);
        Errors.ThrowIfFailed(result);
        return Bounded(ProtoMapping.ToProto(result.Txn!, host.Header(result.Txn!.Revision)));
    }

    public override async Task<CompactionResponse> Compact(CompactionRequest request, ServerCallContext context)
    {
        // Compaction discards every user's history: root only while auth is enabled.
        gate.CheckAdmin(context);
        var result = await host.WriteAsync(KvCommand.Compact(request.Revision));
        Errors.ThrowIfFailed(result);
        return new CompactionResponse { Header = host.Header(result.Compact!.Revision) };
    }

    /// <summary>
    /// Checks a request at the boundary with the store's own rules (known enums, limits across nested transactions,
    /// duplicate keys): an invalid request is answered InvalidArgument here and never proposed.
    /// </summary>
    internal static T Validated<T>(T request, Action<T> validate)
    {
        try
        {
            validate(request);
            return request;
        }
        catch (Keel.Mvcc.MvccException refused)
        {
            throw Errors.ToRpc(KeelError.FromMvcc(refused));
        }
    }

    /// <summary>A response no larger than <see cref="ServerOptions.MaxResponseBytes"/>, or ResourceExhausted saying how to page.</summary>
    private T Bounded<T>(T response) where T : Google.Protobuf.IMessage
    {
        var size = response.CalculateSize();
        if (size > host.Options.MaxResponseBytes || size < 0)
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"keel: the response would be {size} bytes, over --max-response-bytes {host.Options.MaxResponseBytes}; read it in pages with limit"));
        return response;
    }

    /// <summary>
    /// The client's idempotency key, if it sent one; refused when longer than the limit. While auth is enabled the key
    /// belongs to the caller: it is replaced by <see cref="ScopedIdempotencyKey"/> of the user and the key, so the same key
    /// sent by another user is another key (it neither replays nor collides with the first user's answer).
    /// </summary>
    internal static string? IdempotencyKey(ServerCallContext context, Auth.AuthGate gate)
    {
        var key = context.RequestHeaders.GetValue(KeelMetadata.IdempotencyKey);
        if (key is null) return null;
        if (key.Length == 0 || System.Text.Encoding.UTF8.GetByteCount(key) > KeelMetadata.MaxIdempotencyKeyBytes)
            throw Errors.InvalidArgument($"keel: idempotency-key must be 1 to {KeelMetadata.MaxIdempotencyKeyBytes} bytes");
        return gate.UserOf(context) is { Length: > 0 } user ? ScopedIdempotencyKey(user, key) : key;
    }

    /// <summary>
    /// The key a user's idempotency key is stored under: "u/" and the hex SHA-256 of the user name and the key (66
    /// printable characters, within the 255 the replicated table takes). A key that is not valid as given stays invalid.
    /// </summary>
    internal static string ScopedIdempotencyKey(string user, string key)
    {
        if (!Keel.Idempotency.IdempotencyKey.IsValid(key)) return key;
        var bytes = System.Text.Encoding.UTF8.GetBytes(user + "\n" + key);
        return "u/" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
    }
}
