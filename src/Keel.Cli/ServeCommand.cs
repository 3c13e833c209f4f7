using System.CommandLine;
using Keel.Server;
using Keel.Storage;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace Keel.Cli;

/// <summary>
/// <c>./keel serve</c>: runs one Keel member with etcd's flags and their meanings (etcd <c>server/etcdmain/config.go</c>),
/// so a command line written for etcd starts Keel unchanged. Every flag can also come from <c>appsettings.json</c>
/// (section <c>Keel</c>, e.g. <c>"Keel": { "name": "n1" }</c>) or the environment (<c>KEEL_NAME</c>,
/// <c>KEEL_DATA_DIR</c>, ...); a flag on the command line wins. With no arguments at all, <c>./keel</c> runs this with
/// the defaults: a single member serving 127.0.0.1:2379 with its data in <c>./keel-data</c>.
/// </summary>
internal static class ServeCommand
{
    private static readonly Option<string?> Name = new("--name") { Description = "Human-readable name for this member (default: default)." };
    private static readonly Option<string?> DataDir = new("--data-dir") { Description = "Path to the data directory (default: ./keel-data)." };
    private static readonly Option<string?> ListenClientUrls = new("--listen-client-urls") { Description = "URLs to listen on for client traffic (default: http://127.0.0.1:2379)." };
    private static readonly Option<string?> AdvertiseClientUrls = new("--advertise-client-urls") { Description = "This member's client URLs to advertise to the rest of the cluster." };
    private static readonly Option<string?> ListenPeerUrls = new("--listen-peer-urls") { Description = "URLs to listen on for peer traffic (default: http://127.0.0.1:2380)." };
    private static readonly Option<string?> InitialAdvertisePeerUrls = new("--initial-advertise-peer-urls") { Description = "This member's peer URLs to advertise to the rest of the cluster." };
    private static readonly Option<string?> InitialCluster = new("--initial-cluster") { Description = "Initial cluster configuration for bootstrapping: name=url,name=url." };
    private static readonly Option<string?> InitialClusterState = new("--initial-cluster-state") { Description = "new (bootstrap) or existing (join a running cluster)." };
    private static readonly Option<string?> InitialClusterToken = new("--initial-cluster-token") { Description = "Initial cluster token, mixed into member and cluster ids." };
    private static readonly Option<int?> HeartbeatInterval = new("--heartbeat-interval") { Description = "Time (ms) of a heartbeat interval (default 100)." };
    private static readonly Option<int?> ElectionTimeout = new("--election-timeout") { Description = "Time (ms) for an election to time out (default 1000)." };
    private static readonly Option<int?> SnapshotCount = new("--snapshot-count") { Description = "Committed entries between snapshots (default 100000, as etcd)." };
    private static readonly Option<string?> ListenMetricsUrls = new("--listen-metrics-urls") { Description = "HTTP/1.1 URLs for /metrics, /health, /livez, /readyz and the dashboard /ui (default: none; ./keel with no arguments uses http://127.0.0.1:2381)." };
    private static readonly Option<long?> QuotaBackendBytes = new("--quota-backend-bytes") { Description = "Raise the NOSPACE alarm when the store exceeds this many bytes (default 2147483648, as etcd)." };
    private static readonly Option<string?> AutoCompactionMode = new("--auto-compaction-mode") { Description = "periodic (keep --auto-compaction-retention of wall time) or revision (keep that many revisions); default periodic." };
    private static readonly Option<string?> AutoCompactionRetention = new("--auto-compaction-retention") { Description = "History to keep: a duration (1h, 30m, 90s; a plain number is hours, as etcd) or revisions; 0 = never compact (etcd's default). Default 1h." };
    private static readonly Option<long?> MaxResponseBytes = new("--max-response-bytes") { Description = "Largest Range or Txn response sent (default 1073741824); larger ones fail asking the client to page." };
    private static readonly Option<string?> GossipKeyFile = new("--gossip-key-file") { Description = "File of base64 AES-256 gossip keys, one per line, the first the primary; seeds the replicated keyring (default: the first leader generates one; see `keel keyring`)." };
    private static readonly Option<string?> Zone = new("--zone") { Description = "This member's zone, gossiped in its tags (default: default)." };
    private static readonly Option<string?> AuthToken = new("--auth-token") { Description = "simple (default) or jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256|ES256[,ttl=5m]: the tokens Authenticate issues." };
    private static readonly Option<int?> AuthTokenTtl = new("--auth-token-ttl") { Description = "Seconds a simple token lives after its last use (default 300)." };
    private static readonly Option<int?> BcryptCost = new("--bcrypt-cost") { Description = "bcrypt cost of password hashes, 4 to 31 (default 10)." };
    private static readonly Option<string?> CertFile = new("--cert-file") { Description = "Path to the client server TLS cert file (PEM; leaf first, then intermediates). Reloaded when it changes." };
    private static readonly Option<string?> KeyFile = new("--key-file") { Description = "Path to the client server TLS key file (PEM)." };
    private static readonly Option<string?> TrustedCaFile = new("--trusted-ca-file") { Description = "Path to the client server TLS trusted CA cert file (PEM)." };
    private static readonly Option<bool?> ClientCertAuth = new("--client-cert-auth") { Description = "Require clients to present a certificate signed by --trusted-ca-file.", Arity = ArgumentArity.ZeroOrOne };
    private static readonly Option<bool?> AutoTls = new("--auto-tls") { Description = "Client TLS with a generated self-signed certificate (development only).", Arity = ArgumentArity.ZeroOrOne };
    private static readonly Option<string?> CipherSuites = new("--cipher-suites") { Description = "Comma-separated TLS 1.2 cipher suites for client and peer TLS, etcd's names (e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256; default: the platform's)." };
    private static readonly Option<string?> PeerCertFile = new("--peer-cert-file") { Description = "Path to the peer TLS cert file (PEM). Reloaded when it changes." };
    private static readonly Option<string?> PeerKeyFile = new("--peer-key-file") { Description = "Path to the peer TLS key file (PEM)." };
    private static readonly Option<string?> PeerTrustedCaFile = new("--peer-trusted-ca-file") { Description = "Path to the peer TLS trusted CA file (PEM)." };
    private static readonly Option<bool?> PeerClientCertAuth = new("--peer-client-cert-auth") { Description = "Require peers to present a certificate signed by --peer-trusted-ca-file.", Arity = ArgumentArity.ZeroOrOne };
    private static readonly Option<string?> PeerCertAllowedCn = new("--peer-cert-allowed-cn") { Description = "Only accept peer certificates with this common name." };
    private static readonly Option<bool?> PeerAutoTls = new("--peer-auto-tls") { Description = "Peer TLS with a generated self-signed certificate (development only: encrypts, authenticates no one).", Arity = ArgumentArity.ZeroOrOne };
    private static readonly Option<string?> PeerSecretFile = new("--peer-secret-file") { Description = "File holding the cluster secret (16+ bytes, the same on every member) that peers prove in their hello (Keel only; see docs/security.md)." };
    private static readonly Option<bool?> WalSyncPipelined = new("--wal-sync-pipelined") { Description = "Sync the WAL on its own thread while the node loop goes on (pipelined persistence; on by default, =false syncs on the loop; see docs/server.md).", Arity = ArgumentArity.ZeroOrOne };
    private static readonly Option<int?> WalSyncsInFlight = new("--wal-syncs-in-flight") { Description = "WAL syncs in flight on the sync thread before the loop waits for one (default 1)." };
    private static readonly Option<string?> LogFormat = new("--log-format") { Description = "text (default) or json: structured logs on stdout." };
    private static readonly Option<string?> LogLevel = new("--log-level") { Description = "debug, info (default), warn or error: the least severe log written to the console (etcd's flag)." };

    public static Command Create()
    {
        var command = new Command("serve", "Run a Keel member (etcd-compatible flags).")
        {
            Name, DataDir, ListenClientUrls, AdvertiseClientUrls, ListenPeerUrls, InitialAdvertisePeerUrls, InitialCluster,
            InitialClusterState, InitialClusterToken, HeartbeatInterval, ElectionTimeout, SnapshotCount, ListenMetricsUrls, QuotaBackendBytes, AutoCompactionMode, AutoCompactionRetention, MaxResponseBytes, GossipKeyFile, Zone, LogFormat, LogLevel,
            AuthToken, AuthTokenTtl, BcryptCost,
            CertFile, KeyFile, TrustedCaFile, ClientCertAuth, AutoTls, CipherSuites, PeerCertFile, PeerKeyFile, PeerTrustedCaFile,
            PeerClientCertAuth, PeerCertAllowedCn, PeerAutoTls, PeerSecretFile, WalSyncPipelined, WalSyncsInFlight,
        };
        command.SetAction((parse, cancellation) => RunAsync(parse, cancellation));
        return command;
    }

    /// <summary>Runs with the defaults (the no-argument <c>./keel</c>).</summary>
    public static Task<int> RunDefaultAsync(CancellationToken cancellation) => RunAsync(null, cancellation);

    private static async Task<int> RunAsync(ParseResult? parse, CancellationToken cancellation)
    {
        var config = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json"), optional: true)
            .AddEnvironmentVariables("KEEL_")
            .Build();
        string? Get(Option<string?> option) => (parse?.GetValue(option)) ?? Setting(config, option.Name);
        int? GetInt(Option<int?> option) => parse?.GetValue(option) ?? (int.TryParse(Setting(config, option.Name), out var value) ? value : null);
        bool GetBool(Option<bool?> option) => parse?.GetValue(option) ?? (bool.TryParse(Setting(config, option.Name), out var value) && value);
        long? GetLong(Option<long?> option) => parse?.GetValue(option) ?? (long.TryParse(Setting(config, option.Name), out var value) ? value : null);

        ServerOptions options;
        try
        {
            var name = Get(Name) ?? "default";
            var cipherSuites = Keel.Server.Security.CipherSuiteNames.Parse(Get(CipherSuites));
            var peerUrls = Urls(Get(InitialAdvertisePeerUrls) ?? Get(ListenPeerUrls) ?? ServerOptions.DefaultPeerUrl, "--initial-advertise-peer-urls");
            var clientUrls = Urls(Get(ListenClientUrls) ?? ServerOptions.DefaultClientUrl, "--listen-client-urls");
            options = new ServerOptions
            {
                Name = name,
                DataDir = Get(DataDir) ?? (parse is null || Get(Name) is null ? "keel-data" : $"{name}.keel"),
                ListenClientUrls = clientUrls,
                AdvertiseClientUrls = Urls(Get(AdvertiseClientUrls) ?? string.Join(',', clientUrls.Select(u => u.OriginalString)), "--advertise-client-urls"),
                ListenPeerUrls = Urls(Get(ListenPeerUrls) ?? ServerOptions.DefaultPeerUrl, "--listen-peer-urls"),
                // The no-argument ./keel also serves metrics, health and the dashboard on etcd's usual metrics port.
                ListenMetricsUrls = Get(ListenMetricsUrls) is { } metricsUrls ? Urls(metricsUrls, "--listen-metrics-urls")
                    : parse is null ? [new Uri("http://127.0.0.1:2381")] : [],
                InitialAdvertisePeerUrls = peerUrls,
                InitialCluster = Get(InitialCluster) ?? $"{name}={string.Join($",{name}=", peerUrls.Select(u => u.OriginalString))}",
                InitialClusterState = (Get(InitialClusterState) ?? "new") switch
                {
                    "new" => Keel.Server.InitialClusterState.New,
                    "existing" => Keel.Server.InitialClusterState.Existing,
                    var other => throw new ArgumentException($"--initial-cluster-state must be new or existing, not '{other}'"),
                },
                InitialClusterToken = Get(InitialClusterToken) ?? "etcd-cluster",
                HeartbeatIntervalMs = GetInt(HeartbeatInterval) ?? 100,
                ElectionTimeoutMs = GetInt(ElectionTimeout) ?? 1000,
                SnapshotCount = GetInt(SnapshotCount) ?? 100_000,
                QuotaBackendBytes = GetLong(QuotaBackendBytes) is > 0 and var quota ? quota : Keel.Node.KeelNodeOptions.DefaultQuotaBackendBytes,
                AutoCompaction = Get(AutoCompactionMode) is null && Get(AutoCompactionRetention) is null ? ServerOptions.DefaultAutoCompaction
                    : ParseAutoCompaction(Get(AutoCompactionMode) ?? "periodic", Get(AutoCompactionRetention) ?? "1h"),
                MaxResponseBytes = GetLong(MaxResponseBytes) is > 0 and var maxResponse ? maxResponse : 1L << 30,
                WalSyncPipelined = parse?.GetValue(WalSyncPipelined) ?? (!bool.TryParse(Setting(config, WalSyncPipelined.Name), out var pipelined) || pipelined),
                WalSyncsInFlight = GetInt(WalSyncsInFlight) is > 0 and var inFlight ? inFlight : 1,
                GossipKeyFile = Get(GossipKeyFile),
                Zone = Get(Zone) ?? "default",
                AuthToken = Get(AuthToken) ?? "simple",
                AuthTokenTtlSeconds = GetInt(AuthTokenTtl) is > 0 and var ttl ? ttl : 300,
                BcryptCost = GetInt(BcryptCost) ?? 10,
                ClientTls = new Keel.Server.Security.TlsSettings
                {
                    CertFile = Get(CertFile),
                    KeyFile = Get(KeyFile),
                    TrustedCaFile = Get(TrustedCaFile),
                    ClientCertAuth = GetBool(ClientCertAuth),
                    AutoTls = GetBool(AutoTls),
                    CipherSuites = cipherSuites,
                },
                PeerTls = new Keel.Server.Security.TlsSettings
                {
                    CertFile = Get(PeerCertFile),
                    KeyFile = Get(PeerKeyFile),
                    TrustedCaFile = Get(PeerTrustedCaFile),
                    ClientCertAuth = GetBool(PeerClientCertAuth),
                    AllowedCn = Get(PeerCertAllowedCn),
                    AutoTls = GetBool(PeerAutoTls),
                    CipherSuites = cipherSuites,
                },
                PeerSecretFile = Get(PeerSecretFile),
            };
            if (options.BcryptCost is < Keel.Server.Auth.PasswordHasher.MinCost or > Keel.Server.Auth.PasswordHasher.MaxCost)
                throw new ArgumentException($"--bcrypt-cost must be {Keel.Server.Auth.PasswordHasher.MinCost} to {Keel.Server.Auth.PasswordHasher.MaxCost}");
            Keel.Server.Auth.IAuthTokens.Create(options, TimeProvider.System);
            if (options.ElectionTimeoutMs < 5 * options.HeartbeatIntervalMs)
                throw new ArgumentException("--election-timeout must be at least 5 times --heartbeat-interval (etcd's rule)");
            options.ParseInitialCluster();
        }
        catch (ArgumentException invalid)
        {
            Console.Error.WriteLine($"keel: {invalid.Message}");
            return 2;
        }

        var json = string.Equals(Get(LogFormat), "json", StringComparison.OrdinalIgnoreCase);
        Microsoft.Extensions.Logging.LogLevel level;
        switch ((Get(LogLevel) ?? "info").ToLowerInvariant())
        {
            case "debug": level = Microsoft.Extensions.Logging.LogLevel.Debug; break;
            case "info": level = Microsoft.Extensions.Logging.LogLevel.Information; break;
            case "warn": level = Microsoft.Extensions.Logging.LogLevel.Warning; break;
            case "error": level = Microsoft.Extensions.Logging.LogLevel.Error; break;
            default:
                Console.Error.WriteLine($"keel: --log-level must be debug, info, warn or error, not '{Get(LogLevel)}'");
                return 2;
        }
        Action<ILoggingBuilder> logging = builder =>
        {
            builder.SetMinimumLevel(level);
            if (json) builder.AddJsonConsole(o => o.TimestampFormat = "O");
            else builder.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
        };
        KeelServer server;
        try
        {
            server = await KeelServer.StartAsync(options, logging);
        }
        catch (ArgumentException invalid)
        {
            // TLS files and the peer secret are read at start: a wrong path or a key that does not match is a flag error.
            Console.Error.WriteLine($"keel: {invalid.Message}");
            return 2;
        }
                catch (WalCorruptionException corrupt)
        {
            Console.Error.WriteLine($"keel: refusing to start: {corrupt.Message}");
            return 1;
        }
        catch (Keel.Node.InvalidCommandException damaged)
        {
            Console.Error.WriteLine($"keel: refusing to start: {Path.Combine(options.DataDir, Keel.Server.Hosting.NodeHost.RestoreFile)} or a snapshot in it is damaged: {damaged.Message}");
            return 1;
        }
        catch (IOException busy)
        {
            Console.Error.WriteLine($"keel: cannot start: {busy.Message}");
            return 1;
        }
        Console.WriteLine($"keel: member {options.Name} serving clients on {string.Join(", ", options.ListenClientUrls)} " +
            $"(peers on {string.Join(", ", options.ListenPeerUrls)}), data in {Path.GetFullPath(options.DataDir)}");
        using var registration = cancellation.Register(() => server.Lifetime.StopApplication());
        await server.WaitForShutdownAsync();
        if (server.Host.RemovedFromCluster.IsCompleted)
        {
            // etcd exits with an error here too: the member cannot go on, and a supervisor must not restart it as is.
            Console.Error.WriteLine($"keel: member {options.Name} stopped: the member has been permanently removed from the cluster; " +
                $"do not restart it on {Path.GetFullPath(options.DataDir)}: add it again and start it with an empty data directory");
            return 1;
        }
        return 0;
    }

    private static string? Setting(IConfiguration config, string flag)
    {
        var key = flag.TrimStart('-');
        return config[key] ?? config[key.Replace('-', '_').ToUpperInvariant()] ?? config[$"Keel:{key}"];
    }

    private static Uri[] Urls(string text, string flag)
    {
        var urls = new List<Uri>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(part, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https") || url.Port <= 0)
                throw new ArgumentException($"{flag}: '{part}' is not an http://host:port or https://host:port URL");
            urls.Add(url);
        }
        if (urls.Count == 0) throw new ArgumentException($"{flag} is empty");
        return [.. urls];
    }

    private static Keel.Node.AutoCompactionPolicy ParseAutoCompaction(string mode, string retention)
    {
        try
        {
            return Keel.Node.AutoCompactionPolicy.Parse(mode, retention);
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new ArgumentException(e.Message, e);
        }
    }
}
