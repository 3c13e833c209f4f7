using Google.Protobuf;
using Grpc.Core;
using Keel.Mvcc;
using Keel.Node;
using Keel.Protocol;
using Keel.Protocol.Etcd.V3Lockpb;
using Keel.Server.Hosting;

namespace Keel.Server.Api;

/// <summary>
/// etcd's server-side Lock service (<c>etcdserver/api/v3lock/lock.go</c>), which dotnet-etcd's Lock helper calls. The
/// answer also carries the lock's fencing token (the key's creation revision) in the <c>keel-fencing-token</c>
/// trailer: guard writes with <c>create_revision(key) == token</c> and a paused former holder is refused.
/// </summary>
internal sealed class LockApi(NodeHost host, Auth.AuthGate gate) : Keel.Protocol.Etcd.V3Lockpb.Lock.LockBase
{
    private readonly Recipes _recipes = new(host);

    public override async Task<LockResponse> Lock(LockRequest request, ServerCallContext context)
    {
        if (request.Name.IsEmpty) throw EtcdErrors.KeyNotProvided.ToRpcException();
        var prefix = Recipes.PrefixOf(request.Name.ToByteArray());
        var key = Recipes.ContenderKey(request.Name.ToByteArray(), request.Lease);
        // Locking writes the caller's key and reads every waiter under the name (etcd runs it as the caller's KV calls).
        gate.CheckWrite(context, prefix, Recipes.PrefixEnd(prefix));
        gate.CheckRead(context, prefix, Recipes.PrefixEnd(prefix));
        var (myRevision, revision, _) = await _recipes.CreateOrGetAsync(key, [], request.Lease);
        try
        {
            await _recipes.WaitDeletesAsync(prefix, myRevision - 1, context.CancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The caller gave up: withdraw, as etcd's Mutex.Lock does on error.
            await host.WriteAsync(KvCommand.Of(new DeleteRangeRequest { Key = key }));
            throw;
        }
        context.ResponseTrailers.Add(KeelMetadata.FencingToken, myRevision.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return new LockResponse { Header = host.Header(Math.Max(revision, host.Status.Revision)), Key = ByteString.CopyFrom(key) };
    }

    public override async Task<UnlockResponse> Unlock(UnlockRequest request, ServerCallContext context)
    {
        gate.CheckWrite(context, request.Key.ToByteArray(), []);
        var result = await _recipes.WriteAsync(KvCommand.Of(new DeleteRangeRequest { Key = request.Key.ToByteArray() }));
        return new UnlockResponse { Header = host.Header(result.DeleteRange!.Revision) };
    }
}
