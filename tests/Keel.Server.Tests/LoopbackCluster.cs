using System.Net;
using System.Net.Sockets;
using Grpc.Net.Client;
using Keel.Protocol.Etcd.Etcdserverpb;
using Microsoft.Extensions.Logging;

namespace Keel.Server.Tests;

/// <summary>
/// One to three Keel members in this process on free loopback ports, each with its own temporary data directory;
/// disposing stops them and deletes the directories.
/// </summary>
public sealed class LoopbackCluster : IAsyncDisposable
{
    private readonly List<string> _directories = [];

    private LoopbackCluster(ServerOptions[] options) => Options = options;

    public ServerOptions[] Options { get; }

    public KeelServer?[] Servers { get; private set; } = [];

    public static async Task<LoopbackCluster> StartAsync(int members, int snapshotCount = 100_000, int progressNotifyMs = 10 * 60 * 1000,
        Func<ServerOptions, ServerOptions>? configure = null)
    {
        var ports = FreePorts(members * 2);
        var peers = string.Join(',', Enumerable.Range(0, members).Select(i => $"m{i}=http://127.0.0.1:{ports[members + i]}"));
        var root = Path.Combine(Path.GetTempPath(), "keel-server-tests-" + Path.GetRandomFileName());
        var options = Enumerable.Range(0, members).Select(i => new ServerOptions
        {
            Name = $"m{i}",
            DataDir = Path.Combine(root, $"m{i}"),
            ListenClientUrls = [new Uri($"http://127.0.0.1:{ports[i]}")],
            AdvertiseClientUrls = [new Uri($"http://127.0.0.1:{ports[i]}")],
            ListenPeerUrls = [new Uri($"http://127.0.0.1:{ports[members + i]}")],
            InitialAdvertisePeerUrls = [new Uri($"http://127.0.0.1:{ports[members + i]}")],
            InitialCluster = peers,
            SnapshotCount = snapshotCount,
            WatchProgressNotifyIntervalMs = progressNotifyMs,
        }).Select(o => configure is null ? o : configure(o)).ToArray();
        var cluster = new LoopbackCluster(options);
        cluster._directories.Add(root);
        cluster.Servers = new KeelServer?[members];
        for (var i = 0; i < members; i++) await cluster.StartMemberAsync(i);
        await cluster.WaitForLeaderAsync();
        return cluster;
    }

    /// <summary>Every warning or error any member logged (category, level, message), in order.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Warnings { get; } = new();

    public async Task StartMemberAsync(int member) =>
        Servers[member] = await KeelServer.StartAsync(Options[member], logging =>
        {
            logging.SetMinimumLevel(LogLevel.Warning);
            logging.AddProvider(new CollectingLoggerProvider(Warnings));
        });

    private sealed class CollectingLoggerProvider(System.Collections.Concurrent.ConcurrentQueue<string> sink) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, sink);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, System.Collections.Concurrent.ConcurrentQueue<string> sink) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (IsEnabled(logLevel)) sink.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception}");
            }
        }
    }

    public async Task StopMemberAsync(int member)
    {
        if (Servers[member] is { } server) await server.DisposeAsync();
        Servers[member] = null;
    }

    public GrpcChannel Channel(int member) => GrpcChannel.ForAddress(Options[member].ListenClientUrls[0]);

    /// <summary>Waits (bounded) until every running member knows the same leader.</summary>
    public async Task<ulong> WaitForLeaderAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (DateTime.UtcNow < deadline)
        {
            var leaders = Servers.Where(s => s is not null).Select(s => s!.Host.Status.Leader).Distinct().ToArray();
            if (leaders is [var leader] && leader != 0) return leader;
            await Task.Delay(20);
        }
        throw new TimeoutException("no leader within 15 s");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var server in Servers)
            if (server is not null) await server.DisposeAsync();
        foreach (var directory in _directories)
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToArray();
        foreach (var listener in listeners) listener.Start();
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        foreach (var listener in listeners) listener.Stop();
        return ports;
    }
}
