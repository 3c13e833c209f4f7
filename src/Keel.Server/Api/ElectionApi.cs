using Google.Protobuf;
using Grpc.Core;
using Keel.Mvcc;
using Keel.Node;
using Keel.Protocol.Etcd.V3Electionpb;
using Keel.Server.Hosting;

namespace Keel.Server.Api;

/// <summary>
/// etcd's server-side Election service (<c>etcdserver/api/v3election/election.go</c> over
/// <c>client/v3/concurrency/election.go</c>): the leader is the candidate whose key under the election's prefix was
/// created first; <see cref="Proclaim"/> and <see cref="Resign"/> act only while the caller's key still has the
/// creation revision it won with, so a deposed leader cannot overwrite its successor.
/// </summary>
internal sealed class ElectionApi(NodeHost host, Auth.AuthGate gate) : Election.ElectionBase
{
    private static readonly Status NotLeader = new(StatusCode.Unknown, "election: not leader");
    private static readonly Status NoLeader = new(StatusCode.Unknown, "election: no leader");
    private readonly Recipes _recipes = new(host);

    public override async Task<CampaignResponse> Campaign(CampaignRequest request, ServerCallContext context)
    {
        // A campaign writes its own key and reads every contender under the name (etcd runs it as the caller's KV calls).
        gate.CheckWrite(context, Recipes.PrefixOf(request.Name.ToByteArray()), Recipes.PrefixEnd(Recipes.PrefixOf(request.Name.ToByteArray())));
        gate.CheckRead(context, Recipes.PrefixOf(request.Name.ToByteArray()), Recipes.PrefixEnd(Recipes.PrefixOf(request.Name.ToByteArray())));
        var name = request.Name.ToByteArray();
        var prefix = Recipes.PrefixOf(name);
        var key = Recipes.ContenderKey(name, request.Lease);
        var value = request.Value.ToByteArray();
        var (myRevision, revision, existing) = await _recipes.CreateOrGetAsync(key, value, request.Lease);
        if (existing is not null && !existing.Value.AsSpan().SequenceEqual(value))
            await _recipes.WriteAsync(KvCommand.Of(new PutRequest { Key = key, Value = value, Lease = request.Lease }));
        try
        {
            await _recipes.WaitDeletesAsync(prefix, myRevision - 1, context.CancellationToken);
        }
        catch (OperationCanceledException)
        {
            await host.WriteAsync(KvCommand.Of(new DeleteRangeRequest { Key = key }));
            throw;
        }
        return new CampaignResponse
        {
            Header = host.Header(Math.Max(revision, host.Status.Revision)),
            Leader = new LeaderKey { Name = request.Name, Key = ByteString.CopyFrom(key), Rev = myRevision, Lease = request.Lease },
        };
    }

    public override async Task<ProclaimResponse> Proclaim(ProclaimRequest request, ServerCallContext context)
    {
        if (request.Leader is { } proclaimed) gate.CheckWrite(context, proclaimed.Key.ToByteArray(), []);
        var leader = request.Leader ?? throw new RpcException(NotLeader);
        var key = leader.Key.ToByteArray();
        var txn = new TxnRequest
        {
            Compares = [new Compare { Key = key, Target = CompareTarget.Create, Result = CompareResult.Equal, NumberOperand = leader.Rev }],
            Success = [RequestOp.Of(new PutRequest { Key = key, Value = request.Value.ToByteArray(), Lease = leader.Lease })],
        };
        var response = (await _recipes.WriteAsync(KvCommand.Of(txn))).Txn!;
        if (!response.Succeeded) throw new RpcException(NotLeader);
        return new ProclaimResponse { Header = host.Header(response.Revision) };
    }

    public override async Task<LeaderResponse> Leader(LeaderRequest request, ServerCallContext context)
    {
        gate.CheckRead(context, Recipes.PrefixOf(request.Name.ToByteArray()), Recipes.PrefixEnd(Recipes.PrefixOf(request.Name.ToByteArray())));
        var (range, leader) = await CurrentLeader(request.Name.ToByteArray());
        if (leader is null) throw new RpcException(NoLeader);
        return new LeaderResponse { Header = host.Header(range.Revision), Kv = ProtoMapping.ToProto(leader) };
    }

    public override async Task Observe(LeaderRequest request, IServerStreamWriter<LeaderResponse> responseStream, ServerCallContext context)
    {
        gate.CheckRead(context, Recipes.PrefixOf(request.Name.ToByteArray()), Recipes.PrefixEnd(Recipes.PrefixOf(request.Name.ToByteArray())));
        var name = request.Name.ToByteArray();
        var prefix = Recipes.PrefixOf(name);
        (byte[] Key, long ModRevision)? last = null;
        try
        {
            while (!context.CancellationToken.IsCancellationRequested)
            {
                var (range, leader) = await CurrentLeader(name);
                if (leader is not null && (last is null || !last.Value.Key.AsSpan().SequenceEqual(leader.Key) || last.Value.ModRevision != leader.ModRevision))
                {
                    await responseStream.WriteAsync(new LeaderResponse { Header = host.Header(range.Revision), Kv = ProtoMapping.ToProto(leader) }, context.CancellationToken);
                    last = (leader.Key, leader.ModRevision);
                }
                await _recipes.WaitChangeAsync(prefix, Recipes.PrefixEnd(prefix), range.Revision + 1, deletesOnly: false, context.CancellationToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public override async Task<ResignResponse> Resign(ResignRequest request, ServerCallContext context)
    {
        if (request.Leader is { } resigning) gate.CheckWrite(context, resigning.Key.ToByteArray(), []);
        var leader = request.Leader ?? throw new RpcException(NotLeader);
        var key = leader.Key.ToByteArray();
        var txn = new TxnRequest
        {
            Compares = [new Compare { Key = key, Target = CompareTarget.Create, Result = CompareResult.Equal, NumberOperand = leader.Rev }],
            Success = [RequestOp.Of(new DeleteRangeRequest { Key = key })],
        };
        var response = (await _recipes.WriteAsync(KvCommand.Of(txn))).Txn!;
        return new ResignResponse { Header = host.Header(response.Revision) };
    }

    private async Task<(RangeResponse Range, KeyValue? Leader)> CurrentLeader(byte[] name)
    {
        var prefix = Recipes.PrefixOf(name);
        var range = await _recipes.ReadAsync(new RangeRequest
        {
            Key = prefix,
            RangeEnd = Recipes.PrefixEnd(prefix),
            SortOrder = SortOrder.Ascend,
            SortTarget = SortTarget.Create,
            Limit = 1,
        });
        return (range, range.Kvs.Count > 0 ? range.Kvs[0] : null);
    }
}
