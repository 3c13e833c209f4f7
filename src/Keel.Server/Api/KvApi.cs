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
internal sealed class KvApi(NodeHost host) : KV.KVBase
{
    public override async Task<RangeResponse> Range(RangeRequest request, ServerCallContext context)
    {
        if (request.Key.IsEmpty) throw EtcdErrors.KeyNotProvided.ToRpcException();
        var range = Validated(ProtoMapping.ToStore(request), Keel.Mvcc.MvccStore.Validate);
        var result = await host.ReadAsync(range, linearizable: !request.Serializable);
        Errors.ThrowIfFailed(result);
        return Bounded(ProtoMapping.ToProto(result.Range!, host.Header(result.Range!.Revision)));
    }

    public override async Task<PutResponse> Put(PutRequest request, ServerCallContext context)
    {
        if (request.Key.IsEmpty) throw EtcdErrors.KeyNotProvided.ToRpcException();
        var put = Validated(ProtoMapping.ToStore(request), Keel.Mvcc.MvccStore.Validate);
        var result = await host.WriteAsync(KvCommand.Of(put), IdempotencyKey(context));
        Errors.ThrowIfFailed(result);
        return ProtoMapping.ToProto(result.Put!, host.Header(result.Put!.Revision));
    }

    public override async Task<DeleteRangeResponse> DeleteRange(DeleteRangeRequest request, ServerCallContext context)
    {
        if (request.Key.IsEmpty) throw EtcdErrors.KeyNotProvided.ToRpcException();
        var delete = Validated(ProtoMapping.ToStore(request), Keel.Mvcc.MvccStore.Validate);
        var result = await host.WriteAsync(KvCommand.Of(delete), IdempotencyKey(context));
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
        var result = await host.WriteAsync(KvCommand.Of(txn), IdempotencyKey(context));
        Errors.ThrowIfFailed(result);
        return Bounded(ProtoMapping.ToProto(result.Txn!, host.Header(result.Txn!.Revision)));
    }

    public override async Task<CompactionResponse> Compact(CompactionRequest request, ServerCallContext context)
    {
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

    /// <summary>The client's idempotency key, if it sent one; refused when longer than the limit.</summary>
    internal static string? IdempotencyKey(ServerCallContext context)
    {
        var key = context.RequestHeaders.GetValue(KeelMetadata.IdempotencyKey);
        if (key is null) return null;
        if (key.Length == 0 || System.Text.Encoding.UTF8.GetByteCount(key) > KeelMetadata.MaxIdempotencyKeyBytes)
            throw Errors.InvalidArgument($"keel: idempotency-key must be 1 to {KeelMetadata.MaxIdempotencyKeyBytes} bytes");
        return key;
    }
}
