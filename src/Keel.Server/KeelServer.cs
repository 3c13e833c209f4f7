using Keel.Protocol;
using Keel.Server.Api;
using Keel.Server.Observability;
using Keel.Server.Hosting;
using Keel.Server.Http2;
using Keel.Server.Peers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Keel.Server;

/// <summary>
/// A running Keel member: the <see cref="NodeHost"/> (node loop, WAL, peer transport) behind a Kestrel server that
/// speaks plaintext HTTP/2 gRPC on the client URLs with etcd's services (KV, Watch, Lease, Cluster, Maintenance,
/// Lock, Election, gRPC health) and Keel's own <c>keel.v1.KeelService</c>.
/// </summary>
public sealed class KeelServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private KeelServer(WebApplication app, NodeHost host, GossipHost gossip, ServerTelemetry telemetry)
    {
        _app = app;
        Host = host;
        Gossip = gossip;
        Telemetry = telemetry;
    }

    /// <summary>This server's metrics (served at <c>/metrics</c>) and the dashboard's samples.</summary>
    public ServerTelemetry Telemetry { get; }

    /// <summary>The gossip member running beside Raft.</summary>
    public GossipHost Gossip { get; }

    /// <summary>The node host.</summary>
    public NodeHost Host { get; }

    /// <summary>Stops when the application is asked to stop (Ctrl-C, SIGTERM, or <see cref="StopAsync"/>).</summary>
    public IHostApplicationLifetime Lifetime => _app.Lifetime;

    /// <summary>
    /// Starts a member: opens the data directory (refusing to start on a corrupt WAL, with a message naming the file and
    /// offset), starts the node and peer transport, then binds the client URLs.
    /// </summary>
    /// <param name="options">The member's settings.</param>
    /// <param name="configureLogging">Optional logging setup (console format, levels).</param>
    public static async Task<KeelServer> StartAsync(ServerOptions options, Action<ILoggingBuilder>? configureLogging = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (configureLogging is not null) configureLogging(builder.Logging);
        else builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (var url in options.ListenClientUrls)
            {
                kestrel.Listen(PeerTransport.ResolveListenAddress(url), url.Port, listen =>
                {
                    listen.Protocols = HttpProtocols.Http2;
                    // etcdctl 3.4 sends http://host:port as :authority on its per-endpoint commands; Kestrel refuses it.
                    listen.UseAuthorityNormalizing(kestrel.Limits.Http2.HeaderTableSize);
                });
            }
            foreach (var url in options.ListenMetricsUrls)
            {
                // HTTP/1.1 for Prometheus scrapers, load balancers and Kubernetes probes (h2c cannot share a plaintext
                // port with HTTP/1.1 in Kestrel, so these paths are served over HTTP/2 only on the client URLs).
                kestrel.Listen(PeerTransport.ResolveListenAddress(url), url.Port, listen => listen.Protocols = HttpProtocols.Http1AndHttp2);
            }
            kestrel.Limits.MaxRequestBodySize = EtcdErrors.MaxReceiveMessageBytes;
            kestrel.Limits.Http2.MaxStreamsPerConnection = 1000;
            kestrel.AddServerHeader = false;
        });
        builder.Services.AddGrpc(grpc =>
        {
            grpc.MaxReceiveMessageSize = EtcdErrors.MaxReceiveMessageBytes;
            grpc.MaxSendMessageSize = null;
            grpc.EnableDetailedErrors = false;
            grpc.Interceptors.Add<GrpcMetricsInterceptor>();
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        var loggerFactory = LoggerFactory.Create(logging =>
        {
            if (configureLogging is not null) configureLogging(logging);
            else logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        });
        var host = NodeHost.Start(options, TimeProvider.System, loggerFactory.CreateLogger("keel"), new NodeHostStatistics());
        var gossip = GossipHost.Start(options, host.InitialMembers, loggerFactory.CreateLogger("keel.gossip"));
        var telemetry = new ServerTelemetry(host, gossip, loggerFactory.CreateLogger("keel.metrics"));
        TelemetrySetup.AddTo(builder.Services, telemetry, options.Name);
        builder.Services.AddSingleton(host);
        builder.Services.AddSingleton(gossip);
        var app = builder.Build();
        app.MapGrpcService<KvApi>();
        app.MapGrpcService<WatchApi>();
        app.MapGrpcService<LeaseApi>();
        app.MapGrpcService<ClusterApi>();
        app.MapGrpcService<MaintenanceApi>();
        app.MapGrpcService<LockApi>();
        app.MapGrpcService<ElectionApi>();
        app.MapGrpcService<HealthApi>();
        app.MapGrpcService<KeelApi>();
        HttpHealth.Map(app, host);
        // On SIGTERM or Ctrl-C a leader hands off before Kestrel stops taking requests: clients keep writing through
        // the new leader while this member drains.
        app.Lifetime.ApplicationStopping.Register(() => host.HandOffLeadershipAsync().Wait(TimeSpan.FromMilliseconds(3L * options.ElectionTimeoutMs)));
        TelemetrySetup.MapMetrics(app);
        Dashboard.DashboardEndpoints.Map(app, host, gossip, telemetry);
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await telemetry.DisposeAsync();
            await gossip.DisposeAsync();
            await host.DisposeAsync();
            throw;
        }
        return new KeelServer(app, host, gossip, telemetry);
    }

    /// <summary>Waits until the server is asked to stop, then stops it gracefully.</summary>
    public async Task WaitForShutdownAsync()
    {
        await _app.WaitForShutdownAsync();
        await Telemetry.DisposeAsync();
        await Gossip.DisposeAsync();
        await Host.DisposeAsync();
    }

    /// <summary>Stops serving clients, then the node.</summary>
    public async Task StopAsync()
    {
        await _app.StopAsync();
        await Telemetry.DisposeAsync();
        await Gossip.DisposeAsync();
        await Host.DisposeAsync();
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await _app.DisposeAsync();
    }
}
