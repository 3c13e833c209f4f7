using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using KvCommand = Keel.Node.KvCommand;
using KeelNode = Keel.Node.KeelNode;
using Keel.Protocol;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Server.Hosting;

namespace Keel.Server.Api;

/// <summary>
/// etcd's Lease service (<c>etcdserver/api/v3rpc/lease.go</c>). Grants, revocations and keep-alives go through the
/// replicated log, so every member knows each lease's remaining TTL and a leader change neither resets nor shortens
/// it; only the leader expires leases (see <see cref="KeelNode"/>). A grant's fencing token (it only increases) is
/// returned in the <c>keel-fencing-token</c> trailer; an <c>idempotency-key</c> header makes a retried grant return
/// the first lease instead of a second one.
/// </summary>
internal sealed class LeaseApi(NodeHost host, Auth.AuthGate gate) : Lease.LeaseBase
{
    public override async Task<LeaseGrantResponse> LeaseGrant(LeaseGrantRequest request, ServerCallContext context)
    {
        var result = await host.WriteAsync(KvCommand.LeaseGrant(request.ID, request.TTL), KvApi.IdempotencyKey(context, gate), context.Deadline);
        Errors.ThrowIfFailed(result);
        var grant = result.LeaseGrant!;
        context.ResponseTrailers.Add(KeelMetadata.FencingToken, grant.FencingToken.ToString(CultureInfo.InvariantCulture));
        return new LeaseGrantResponse { Header = host.Header(grant.Revision), ID = grant.LeaseId, TTL = grant.TtlSeconds };
    }

    public override async Task<LeaseRevokeResponse> LeaseRevoke(LeaseRevokeRequest request, ServerCallContext context)
    {
        // Revoking deletes the attached keys: the caller must be able to write each (etcd checkLeasePuts).
        await gate.CheckLeaseKeysAsync(context, request.ID);
        var result = await host.WriteAsync(KvCommand.LeaseRevoke(request.ID));
        Errors.ThrowIfFailed(result);
        return new LeaseRevokeResponse { Header = host.Header(result.LeaseRevoke!.Revision) };
    }

    public override async Task LeaseKeepAlive(IAsyncStreamReader<LeaseKeepAliveRequest> requestStream, IServerStreamWriter<LeaseKeepAliveResponse> responseStream, ServerCallContext context)
    {
        try
        {
            await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
            {
                var result = await host.WriteAsync(KvCommand.LeaseKeepAlive(request.ID));
                // etcd ends the stream on errors other than "lease not found" (which answers TTL 0, as here).
                Errors.ThrowIfFailed(result);
                var renewed = result.LeaseKeepAlive!;
                await responseStream.WriteAsync(new LeaseKeepAliveResponse
                {
                    Header = host.Header(host.Status.Revision),
                    ID = renewed.LeaseId,
                    TTL = renewed.TtlSeconds,
                }, context.CancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public override async Task<LeaseTimeToLiveResponse> LeaseTimeToLive(LeaseTimeToLiveRequest request, ServerCallContext context)
    {
        await host.BarrierAsync();
        var ttl = await host.InvokeAsync(node => node.LeaseTimeToLive(request.ID, request.Keys));
        // The attached keys are listed only to a caller who may read each of them (etcd 3.5's checkLeaseTimeToLive).
        if (request.Keys) foreach (var key in ttl.Keys) gate.CheckRead(context, key, []);
        var response = new LeaseTimeToLiveResponse
        {
            Header = host.Header(host.Status.Revision),
            ID = request.ID,
            TTL = ttl.TtlSeconds,
            GrantedTTL = ttl.GrantedTtlSeconds,
        };
        foreach (var key in ttl.Keys) response.Keys.Add(ByteString.CopyFrom(key));
        return response;
    }

    public override async Task<LeaseLeasesResponse> LeaseLeases(LeaseLeasesRequest request, ServerCallContext context)
    {
        await host.BarrierAsync();
        var leases = await host.InvokeAsync(node => node.Leases());
        var response = new LeaseLeasesResponse { Header = host.Header(host.Status.Revision) };
        foreach (var id in leases.Order()) response.Leases.Add(new LeaseStatus { ID = id });
        return response;
    }
}
