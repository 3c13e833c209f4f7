using Keel.Protocol;
using Keel.Server.Api;
using Keel.Server.Observability;
using Keel.Server.Hosting;
using Keel.Server.Http2;
using Keel.Server.Peers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using System.Net.Security;
using Keel.Gossip.Hosting;
using Keel.Server.Security;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Keel.Server;

/// <summary>
/// A running Keel member: the <see cref="NodeHost"/> (node loop, WAL, peer transport) behind a Kestrel server that
/// speaks HTTP/2 gRPC (plaintext, or TLS on https URLs) on the client URLs with etcd's services (KV, Watch, Lease, Cluster, Maintenance,
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

    // The pool starts with one worker per core and adds threads about twice a second when they are all blocked. A few
    // things block a pool thread for a while (snapshot files written and fsynced in the background, a slow console),
    // and on 2 cores two of them at once used to hold up peer sends and pings for half a second at a time: enough,
    // with a 1 s election timeout, for a follower to call an election. A small floor removes that cliff.
    private static void EnsureThreadPoolHeadroom()
    {
        ThreadPool.GetMinThreads(out var workers, out var completionPorts);
        var floor = Math.Max(8, 2 * Environment.ProcessorCount);
        if (workers < floor) ThreadPool.SetMinThreads(floor, completionPorts);
    }

    /// <summary>
    /// Starts a member: opens the data directory (refusing to start on a corrupt WAL, with a message naming the file and
    /// offset), starts the node and peer transport, then binds the client URLs.
    /// </summary>
    /// <param name="options">The member's settings.</param>
    /// <param name="configureLogging">Optional logging setup (console format, levels).</param>
    public static async Task<KeelServer> StartAsync(ServerOptions options, Action<ILoggingBuilder>? configureLogging = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        EnsureThreadPoolHeadroom();
        if (options.BcryptCost is < Auth.PasswordHasher.MinCost or > Auth.PasswordHasher.MaxCost)
            throw new ArgumentException($"--bcrypt-cost must be {Auth.PasswordHasher.MinCost} to {Auth.PasswordHasher.MaxCost}, not {options.BcryptCost}");
        // Parsed (and its key files read) before anything starts: a bad --auth-token stops the member at once.
        var tokens = Auth.IAuthTokens.Create(options, TimeProvider.System);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        if (configureLogging is not null) configureLogging(builder.Logging);
        else builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Grpc", LogLevel.Warning);
        var loggerFactory = LoggerFactory.Create(logging =>
        {
            if (configureLogging is not null) configureLogging(logging);
            else logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        });
        var clientTls = CreateClientTls(options, loggerFactory.CreateLogger("keel.tls"));
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            foreach (var url in options.ListenClientUrls)
            {
                kestrel.Listen(PeerTransport.ResolveListenAddress(url), url.Port, listen =>
                {
                    listen.Protocols = HttpProtocols.Http2;
                    // gRPC over TLS is HTTP/2 chosen by ALPN "h2" (etcdctl and grpc-dotnet offer nothing else).
                    if (url.Scheme == Uri.UriSchemeHttps) UseTls(listen, clientTls!, [SslApplicationProtocol.Http2]);
                    // etcdctl 3.4 sends http://host:port as :authority on its per-endpoint commands; Kestrel refuses it.
                    // Added after TLS, so it reads the decrypted HTTP/2 frames.
                    listen.UseAuthorityNormalizing(kestrel.Limits.Http2.HeaderTableSize);
                });
            }
            foreach (var url in options.ListenMetricsUrls)
            {
                // HTTP/1.1 for Prometheus scrapers, load balancers and Kubernetes probes (h2c cannot share a plaintext
                // port with HTTP/1.1 in Kestrel, so these paths are served over HTTP/2 only on the client URLs). An
                // https metrics URL uses the client TLS settings, as etcd's does.
                kestrel.Listen(PeerTransport.ResolveListenAddress(url), url.Port, listen =>
                {
                    listen.Protocols = HttpProtocols.Http1AndHttp2;
                    if (url.Scheme == Uri.UriSchemeHttps) UseTls(listen, clientTls!, [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11]);
                });
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
        // Read before anything starts: an unreadable --gossip-key-file stops the member at once.
        if (options.GossipKeyFile is { } gossipKeyFile) GossipKeyFile.Read(gossipKeyFile);
        var host = NodeHost.Start(options, TimeProvider.System, loggerFactory.CreateLogger("keel"), new NodeHostStatistics());
        GossipHost gossip;
        try
        {
            gossip = GossipHost.Start(options, host, loggerFactory.CreateLogger("keel.gossip"));
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
        var telemetry = new ServerTelemetry(host, gossip, loggerFactory.CreateLogger("keel.metrics"));
        TelemetrySetup.AddTo(builder.Services, telemetry, options.Name);
        builder.Services.AddSingleton(host);
        builder.Services.AddSingleton(new Auth.AuthGate(host, tokens));
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
        app.MapGrpcService<AuthApi>();
        HttpHealth.Map(app, host);
        // On SIGTERM or Ctrl-C a leader hands off before Kestrel stops taking requests: clients keep writing through
        // the new leader while this member drains.
        app.Lifetime.ApplicationStopping.Register(() => host.HandOffLeadershipAsync().Wait(TimeSpan.FromMilliseconds(3L * options.ElectionTimeoutMs)));
        // A member removed from the cluster stops by itself, as etcd's does.
        _ = host.RemovedFromCluster.ContinueWith(_ => app.Lifetime.StopApplication(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
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

    /// <summary>
    /// The client surface's TLS, or null when no client URL is https. Checked before anything starts: an https URL
    /// without a certificate fails the start with a message naming the flags.
    /// </summary>
    private static TlsContext? CreateClientTls(ServerOptions options, ILogger logger)
    {
        var https = options.ListenClientUrls.Concat(options.ListenMetricsUrls).Any(u => u.Scheme == Uri.UriSchemeHttps);
        if (!https) return null;
        var hosts = options.ListenClientUrls.Concat(options.AdvertiseClientUrls).Select(u => u.Host);
        return TlsContext.Create("client", options.ClientTls, Path.Combine(options.DataDir, "fixtures", "client"), hosts, logger)
               ?? throw new ArgumentException("https client URLs need --cert-file and --key-file (or --auto-tls)");
    }

    // Options are built per connection, so a certificate rotated on disk is served to the next connection without a
    // restart, and the client certificate is verified by TlsContext (TLS 1.2 at least, etcd's cipher suites).
    private static void UseTls(ListenOptions listen, TlsContext tls, List<SslApplicationProtocol> protocols) =>
        listen.UseHttps(new TlsHandshakeCallbackOptions
        {
            OnConnection = _ => ValueTask.FromResult(tls.ServerOptions(protocols)),
            HandshakeTimeout = TimeSpan.FromSeconds(10),
        });

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
