using Grpc.Core;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Server.Hosting;

namespace Keel.Server.Api;

/// <summary>etcd's Cluster service (<c>etcdserver/api/v3rpc/member.go</c>).</summary>
internal sealed class ClusterApi(NodeHost host) : Cluster.ClusterBase
{
    public override async Task<MemberListResponse> MemberList(MemberListRequest request, ServerCallContext context)
    {
        var members = await host.MembersAsync();
        var response = new MemberListResponse { Header = host.Header(host.Status.Revision) };
        response.Members.AddRange(members);
        return response;
    }
}
