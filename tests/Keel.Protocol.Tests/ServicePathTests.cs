using Grpc.Core;
using KeelElection = Keel.Protocol.Etcd.V3Electionpb;
using KeelEtcd = Keel.Protocol.Etcd.Etcdserverpb;
using KeelHealth = Keel.Protocol.Health;
using KeelLock = Keel.Protocol.Etcd.V3Lockpb;
using KeelV1 = Keel.Protocol.V1;

namespace Keel.Protocol.Tests;

/// <summary>
/// The gRPC paths the generated server bases register and the generated clients call are exactly etcd's, e.g.
/// "/etcdserverpb.KV/Range": gRPC routes by this string, so one wrong letter makes every etcd client fail with UNIMPLEMENTED.
/// </summary>
public sealed class ServicePathTests
{
    private static readonly string[] EtcdPaths =
    [
        "/etcdserverpb.KV/Range", "/etcdserverpb.KV/Put", "/etcdserverpb.KV/DeleteRange", "/etcdserverpb.KV/Txn",
        "/etcdserverpb.KV/Compact",
        "/etcdserverpb.Watch/Watch",
        "/etcdserverpb.Lease/LeaseGrant", "/etcdserverpb.Lease/LeaseRevoke", "/etcdserverpb.Lease/LeaseKeepAlive",
        "/etcdserverpb.Lease/LeaseTimeToLive", "/etcdserverpb.Lease/LeaseLeases",
        "/etcdserverpb.Cluster/MemberAdd", "/etcdserverpb.Cluster/MemberRemove", "/etcdserverpb.Cluster/MemberUpdate",
        "/etcdserverpb.Cluster/MemberList", "/etcdserverpb.Cluster/MemberPromote",
        "/etcdserverpb.Maintenance/Alarm", "/etcdserverpb.Maintenance/Status", "/etcdserverpb.Maintenance/Defragment",
        "/etcdserverpb.Maintenance/Hash", "/etcdserverpb.Maintenance/HashKV", "/etcdserverpb.Maintenance/Snapshot",
        "/etcdserverpb.Maintenance/MoveLeader", "/etcdserverpb.Maintenance/Downgrade",
        "/v3lockpb.Lock/Lock", "/v3lockpb.Lock/Unlock",
        "/v3electionpb.Election/Campaign", "/v3electionpb.Election/Proclaim", "/v3electionpb.Election/Leader",
        "/v3electionpb.Election/Observe", "/v3electionpb.Election/Resign",
        "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
    ];

    [Fact]
    public void Server_bases_bind_exactly_etcds_paths()
    {
        var binder = new RecordingBinder();
        KeelEtcd.KV.BindService(binder, new KvServer());
        KeelEtcd.Watch.BindService(binder, new WatchServer());
        KeelEtcd.Lease.BindService(binder, new LeaseServer());
        KeelEtcd.Cluster.BindService(binder, new ClusterServer());
        KeelEtcd.Maintenance.BindService(binder, new MaintenanceServer());
        KeelLock.Lock.BindService(binder, new LockServer());
        KeelElection.Election.BindService(binder, new ElectionServer());
        KeelHealth.Health.BindService(binder, new HealthServer());

        Assert.Equal(EtcdPaths.Order(StringComparer.Ordinal), binder.Paths.Order(StringComparer.Ordinal));
        Assert.Equal(MethodType.DuplexStreaming, binder.Types["/etcdserverpb.Watch/Watch"]);
        Assert.Equal(MethodType.DuplexStreaming, binder.Types["/etcdserverpb.Lease/LeaseKeepAlive"]);
        Assert.Equal(MethodType.ServerStreaming, binder.Types["/etcdserverpb.Maintenance/Snapshot"]);
        Assert.Equal(MethodType.ServerStreaming, binder.Types["/v3electionpb.Election/Observe"]);
        Assert.Equal(MethodType.Unary, binder.Types["/etcdserverpb.KV/Range"]);
    }

    [Fact]
    public void Auth_and_keel_services_bind_their_paths()
    {
        var binder = new RecordingBinder();
        KeelEtcd.Auth.BindService(binder, new AuthServer());
        KeelV1.KeelService.BindService(binder, new KeelServer());

        Assert.Equal(17, binder.Paths.Count(p => p.StartsWith("/etcdserverpb.Auth/", StringComparison.Ordinal)));
        Assert.Contains("/etcdserverpb.Auth/Authenticate", binder.Paths);
        Assert.Equal(
            ["/keel.v1.KeelService/ChangesBetween", "/keel.v1.KeelService/Health", "/keel.v1.KeelService/Keyring", "/keel.v1.KeelService/Members", "/keel.v1.KeelService/ReadAt", "/keel.v1.KeelService/RevisionAt"],
            binder.Paths.Where(p => p.StartsWith("/keel.v1.", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Keel_and_dotnet_etcd_clients_call_the_same_paths()
    {
        var keelCalls = new RecordingInvoker();
        var etcdCalls = new RecordingInvoker();

        new KeelEtcd.KV.KVClient(keelCalls).Range(new KeelEtcd.RangeRequest());
        new Etcdserverpb.KV.KVClient(etcdCalls).Range(new Etcdserverpb.RangeRequest());
        new KeelEtcd.KV.KVClient(keelCalls).Txn(new KeelEtcd.TxnRequest());
        new Etcdserverpb.KV.KVClient(etcdCalls).Txn(new Etcdserverpb.TxnRequest());
        new KeelEtcd.Lease.LeaseClient(keelCalls).LeaseGrant(new KeelEtcd.LeaseGrantRequest());
        new Etcdserverpb.Lease.LeaseClient(etcdCalls).LeaseGrant(new Etcdserverpb.LeaseGrantRequest());
        new KeelEtcd.Cluster.ClusterClient(keelCalls).MemberList(new KeelEtcd.MemberListRequest());
        new Etcdserverpb.Cluster.ClusterClient(etcdCalls).MemberList(new Etcdserverpb.MemberListRequest());
        new KeelEtcd.Maintenance.MaintenanceClient(keelCalls).Status(new KeelEtcd.StatusRequest());
        new Etcdserverpb.Maintenance.MaintenanceClient(etcdCalls).Status(new Etcdserverpb.StatusRequest());
        new KeelLock.Lock.LockClient(keelCalls).Lock(new KeelLock.LockRequest());
        new V3Lockpb.Lock.LockClient(etcdCalls).Lock(new V3Lockpb.LockRequest());
        new KeelElection.Election.ElectionClient(keelCalls).Campaign(new KeelElection.CampaignRequest());
        new V3Electionpb.Election.ElectionClient(etcdCalls).Campaign(new V3Electionpb.CampaignRequest());
        new KeelElection.Election.ElectionClient(keelCalls).Leader(new KeelElection.LeaderRequest());
        new V3Electionpb.Election.ElectionClient(etcdCalls).Leader(new V3Electionpb.LeaderRequest());

        Assert.Equal(
            ["/etcdserverpb.KV/Range", "/etcdserverpb.KV/Txn", "/etcdserverpb.Lease/LeaseGrant", "/etcdserverpb.Cluster/MemberList",
             "/etcdserverpb.Maintenance/Status", "/v3lockpb.Lock/Lock", "/v3electionpb.Election/Campaign", "/v3electionpb.Election/Leader"],
            keelCalls.Paths);
        Assert.Equal(keelCalls.Paths, etcdCalls.Paths);
    }

    private sealed class RecordingBinder : ServiceBinderBase
    {
        public List<string> Paths { get; } = [];

        public Dictionary<string, MethodType> Types { get; } = new(StringComparer.Ordinal);

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) => Record(method);

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) => Record(method);

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) => Record(method);

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) => Record(method);

        private void Record(IMethod method)
        {
            Paths.Add(method.FullName);
            Types[method.FullName] = method.Type;
        }
    }

    /// <summary>Records the method path of each unary call and answers with an empty response, never touching a network.</summary>
    private sealed class RecordingInvoker : CallInvoker
    {
        public List<string> Paths { get; } = [];

        public override TResponse BlockingUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request)
        {
            Paths.Add(method.FullName);
            return default!;
        }

        public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            throw new NotSupportedException();

        public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options, TRequest request) =>
            throw new NotSupportedException();

        public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            throw new NotSupportedException();

        public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(Method<TRequest, TResponse> method, string? host, CallOptions options) =>
            throw new NotSupportedException();
    }

    private sealed class KvServer : KeelEtcd.KV.KVBase;

    private sealed class WatchServer : KeelEtcd.Watch.WatchBase;

    private sealed class LeaseServer : KeelEtcd.Lease.LeaseBase;

    private sealed class ClusterServer : KeelEtcd.Cluster.ClusterBase;

    private sealed class MaintenanceServer : KeelEtcd.Maintenance.MaintenanceBase;

    private sealed class AuthServer : KeelEtcd.Auth.AuthBase;

    private sealed class LockServer : KeelLock.Lock.LockBase;

    private sealed class ElectionServer : KeelElection.Election.ElectionBase;

    private sealed class HealthServer : KeelHealth.Health.HealthBase;

    private sealed class KeelServer : KeelV1.KeelService.KeelServiceBase;
}
