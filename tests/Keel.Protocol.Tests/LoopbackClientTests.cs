using System.Net;
using dotnet_etcd;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using K = Keel.Protocol.Etcd.Etcdserverpb;
using KElection = Keel.Protocol.Etcd.V3Electionpb;
using KLock = Keel.Protocol.Etcd.V3Lockpb;
using KMvcc = Keel.Protocol.Etcd.Mvccpb;

namespace Keel.Protocol.Tests;

/// <summary>
/// End to end over real HTTP/2 on loopback: Keel's generated server bases, served by Kestrel as the Keel host will,
/// answer calls made by dotnet-etcd's unmodified EtcdClient. Proves paths, framing and message shapes together.
/// The services are canned stand-ins recording what they received; the real implementations come with the server.
/// </summary>
public sealed class LoopbackClientTests : IAsyncLifetime
{
    private readonly Recorder recorder = new();
    private WebApplication? app;
    private EtcdClient? client;

    public async Task InitializeAsync()
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(options => options.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = HttpProtocols.Http2));
        builder.Services.AddGrpc(options => options.MaxReceiveMessageSize = EtcdErrors.MaxReceiveMessageBytes);
        builder.Services.AddSingleton(recorder);
        app = builder.Build();
        app.MapGrpcService<CannedKv>();
        app.MapGrpcService<CannedLock>();
        app.MapGrpcService<CannedElection>();
        await app.StartAsync();

        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        client = new EtcdClient(address, configureChannelOptions: options => options.Credentials = ChannelCredentials.Insecure);
    }

    public async Task DisposeAsync()
    {
        client?.Dispose();
        if (app is not null)
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    [Fact]
    public async Task Put_and_get_reach_keel_and_answers_reach_the_client()
    {
        Etcdserverpb.PutResponse put = await client!.PutAsync("greeting", "hello");
        Assert.Equal(7, put.Header.Revision);
        Assert.Equal("greeting", recorder.LastPut!.Key.ToStringUtf8());
        Assert.Equal("hello", recorder.LastPut.Value.ToStringUtf8());

        string value = await client.GetValAsync("greeting");
        Assert.Equal("hello", value);
        Assert.Equal("greeting", recorder.LastRange!.Key.ToStringUtf8());
    }

    [Fact]
    public async Task Txn_with_compare_reaches_keel_intact()
    {
        var txn = new Etcdserverpb.TxnRequest();
        txn.Compare.Add(new Etcdserverpb.Compare { Key = ByteString.CopyFromUtf8("a"), Target = Etcdserverpb.Compare.Types.CompareTarget.Create, CreateRevision = 0 });
        txn.Success.Add(new Etcdserverpb.RequestOp { RequestPut = new Etcdserverpb.PutRequest { Key = ByteString.CopyFromUtf8("a"), Value = ByteString.CopyFromUtf8("1") } });

        Etcdserverpb.TxnResponse response = await client!.TransactionAsync(txn);

        Assert.True(response.Succeeded);
        Assert.Equal(K.Compare.TargetUnionOneofCase.CreateRevision, recorder.LastTxn!.Compare[0].TargetUnionCase);
        Assert.Equal("1", recorder.LastTxn.Success[0].RequestPut.Value.ToStringUtf8());
    }

    [Fact]
    public async Task Lock_and_leader_reach_keels_lock_and_election_services()
    {
        V3Lockpb.LockResponse locked = await client!.LockAsync("jobs", 0x694d);
        Assert.Equal("jobs/abc", locked.Key.ToStringUtf8());
        Assert.Equal("jobs", recorder.LastLock!.Name.ToStringUtf8());
        Assert.Equal(0x694d, recorder.LastLock.Lease);

        V3Electionpb.LeaderResponse leader = await client.LeaderAsync(new V3Electionpb.LeaderRequest { Name = ByteString.CopyFromUtf8("primary") });
        Assert.Equal("node-a", leader.Kv.Value.ToStringUtf8());
        Assert.Equal("primary", recorder.LastLeader!.Name.ToStringUtf8());
    }

    /// <summary>What the canned services last received; one test class instance per test, so no sharing across tests.</summary>
    public sealed class Recorder
    {
        public K.PutRequest? LastPut { get; set; }

        public K.RangeRequest? LastRange { get; set; }

        public K.TxnRequest? LastTxn { get; set; }

        public KLock.LockRequest? LastLock { get; set; }

        public KElection.LeaderRequest? LastLeader { get; set; }
    }

    private static K.ResponseHeader Header() => new() { ClusterId = 1, MemberId = 2, Revision = 7, RaftTerm = 3 };

    private sealed class CannedKv(Recorder recorder) : K.KV.KVBase
    {
        public override Task<K.PutResponse> Put(K.PutRequest request, ServerCallContext context)
        {
            recorder.LastPut = request;
            return Task.FromResult(new K.PutResponse { Header = Header() });
        }

        public override Task<K.RangeResponse> Range(K.RangeRequest request, ServerCallContext context)
        {
            recorder.LastRange = request;
            ByteString value = recorder.LastPut?.Value ?? ByteString.Empty;
            var response = new K.RangeResponse { Header = Header(), Count = 1 };
            response.Kvs.Add(new KMvcc.KeyValue { Key = request.Key, Value = value, CreateRevision = 7, ModRevision = 7, Version = 1 });
            return Task.FromResult(response);
        }

        public override Task<K.TxnResponse> Txn(K.TxnRequest request, ServerCallContext context)
        {
            recorder.LastTxn = request;
            var response = new K.TxnResponse { Header = Header(), Succeeded = true };
            response.Responses.Add(new K.ResponseOp { ResponsePut = new K.PutResponse { Header = Header() } });
            return Task.FromResult(response);
        }
    }

    private sealed class CannedLock(Recorder recorder) : KLock.Lock.LockBase
    {
        public override Task<KLock.LockResponse> Lock(KLock.LockRequest request, ServerCallContext context)
        {
            recorder.LastLock = request;
            return Task.FromResult(new KLock.LockResponse { Header = Header(), Key = ByteString.CopyFromUtf8(request.Name.ToStringUtf8() + "/abc") });
        }
    }

    private sealed class CannedElection(Recorder recorder) : KElection.Election.ElectionBase
    {
        public override Task<KElection.LeaderResponse> Leader(KElection.LeaderRequest request, ServerCallContext context)
        {
            recorder.LastLeader = request;
            return Task.FromResult(new KElection.LeaderResponse
            {
                Header = Header(),
                Kv = new KMvcc.KeyValue { Key = ByteString.CopyFromUtf8("primary/1"), Value = ByteString.CopyFromUtf8("node-a"), CreateRevision = 5, ModRevision = 5, Version = 1 },
            });
        }
    }
}
