using Grpc.Core;
using Keel.Node;
using Keel.Protocol;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Server.Hosting;

namespace Keel.Server.Api;

/// <summary>
/// etcd's Cluster service (<c>etcdserver/api/v3rpc/member.go</c>): membership changes go through Raft joint
/// configuration changes; the member table (names, peer and client URLs) is replicated state.
/// </summary>
internal sealed class ClusterApi(NodeHost host, Auth.AuthGate gate) : Cluster.ClusterBase
{
    public override async Task<MemberListResponse> MemberList(MemberListRequest request, ServerCallContext context)
    {
        if (request.Linearizable) await host.BarrierAsync();
        var members = await host.MembersAsync();
        // etcd's member list header has no revision (cluster data, not the key space).
        var response = new MemberListResponse { Header = host.Header(0) };
        response.Members.AddRange(members);
        return response;
    }

    public override async Task<MemberAddResponse> MemberAdd(MemberAddRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        var urls = ValidUrls(request.PeerURLs);
        var result = await Change(MemberChange.Add(urls, request.IsLearner));
        var response = new MemberAddResponse { Header = host.Header(host.Status.Revision) };
        if (result.AddedMember is { } added) response.Member = NodeHost.ToProto(added);
        response.Members.AddRange(result.Members!.Select(NodeHost.ToProto));
        return response;
    }

    public override async Task<MemberRemoveResponse> MemberRemove(MemberRemoveRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        var result = await Change(MemberChange.Remove(request.ID));
        var response = new MemberRemoveResponse { Header = host.Header(host.Status.Revision) };
        response.Members.AddRange(result.Members!.Select(NodeHost.ToProto));
        return response;
    }

    public override async Task<MemberUpdateResponse> MemberUpdate(MemberUpdateRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        var result = await Change(MemberChange.Update(request.ID, ValidUrls(request.PeerURLs)));
        var response = new MemberUpdateResponse { Header = host.Header(host.Status.Revision) };
        response.Members.AddRange(result.Members!.Select(NodeHost.ToProto));
        return response;
    }

    public override async Task<MemberPromoteResponse> MemberPromote(MemberPromoteRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        var result = await Change(MemberChange.Promote(request.ID));
        var response = new MemberPromoteResponse { Header = host.Header(host.Status.Revision) };
        response.Members.AddRange(result.Members!.Select(NodeHost.ToProto));
        return response;
    }

    private async Task<KvResult> Change(MemberChange change)
    {
        var result = await host.RequestAsync((node, requestId) => node.SubmitMemberChange(requestId, change));
        Errors.ThrowIfFailed(result);
        return result;
    }

    private static string[] ValidUrls(IEnumerable<string> urls)
    {
        var list = urls.Select(u => u.Trim().TrimEnd('/')).ToArray();
        // A member has a handful of peer URLs: a bound keeps a hostile request from growing the replicated member table.
        if (list.Length == 0 || list.Length > 16 || list.Any(u => u.Length > 1024) || list.Any(u => !Uri.TryCreate(u, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https") || url.Port <= 0))
            throw EtcdErrors.MemberBadUrls.ToRpcException();
        return list;
    }
}
