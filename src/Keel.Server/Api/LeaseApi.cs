using Grpc.Core;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Server.Hosting;

namespace Keel.Server.Api;

/// <summary>etcd's Lease service (<c>etcdserver/api/v3rpc/lease.go</c>).</summary>
internal sealed class LeaseApi(NodeHost host) : Lease.LeaseBase
{
    private readonly NodeHost _host = host;
}
