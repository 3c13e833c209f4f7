using System.Net;
using Grpc.Net.Client;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.LoadBench;

/// <summary>
/// The gRPC connections of one row: one <see cref="GrpcChannel"/> per connection, shared by many clients whose calls
/// are multiplexed as HTTP/2 streams. Connection i dials endpoint i mod endpoints, as etcd's benchmark dials
/// (tools/benchmark/cmd/util.go, mustCreateConn with dialTotal), or every connection dials the leader under
/// --target-leader. Client j uses connection j mod connections (mustCreateClients).
/// </summary>
public sealed class ConnectionPool : IDisposable
{
    private readonly GrpcChannel[] _channels;
    private readonly KV.KVClient[] _kvClients;

    private ConnectionPool(GrpcChannel[] channels)
    {
        _channels = channels;
        _kvClients = channels.Select(channel => new KV.KVClient(channel)).ToArray();
    }

    /// <summary>The endpoint each connection dialled, in connection order.</summary>
    public IReadOnlyList<string> DialledEndpoints { get; private init; } = [];

    /// <summary>Opens <paramref name="connections"/> channels over <paramref name="endpoints"/>, round-robin.</summary>
    public static async Task<ConnectionPool> OpenAsync(IReadOnlyList<string> endpoints, int connections, CancellationToken cancellationToken)
    {
        var dialled = Enumerable.Range(0, connections).Select(i => endpoints[i % endpoints.Count]).ToArray();
        var channels = dialled.Select(CreateChannel).ToArray();
        await Task.WhenAll(channels.Select(channel => channel.ConnectAsync(cancellationToken)));
        return new ConnectionPool(channels) { DialledEndpoints = dialled };
    }

    /// <summary>The KV stub of client <paramref name="clientIndex"/>.</summary>
    public KV.KVClient KvFor(int clientIndex) => _kvClients[clientIndex % _kvClients.Length];

    /// <summary>
    /// A channel with no per-channel limits in the way: EnableMultipleHttp2Connections so that a server's
    /// max-concurrent-streams (Kestrel's default is 100) opens a second connection instead of queueing calls, and no
    /// idle timeout so a connection set up in the warm-up is the one measured.
    /// </summary>
    public static GrpcChannel CreateChannel(string endpoint)
    {
        var handler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            ConnectTimeout = TimeSpan.FromSeconds(5),
            AutomaticDecompression = DecompressionMethods.None,
            UseProxy = false,
        };
        var address = endpoint.Contains("://", StringComparison.Ordinal) ? endpoint : "http://" + endpoint;
        return GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxReceiveMessageSize = 4 * 1024 * 1024,
        });
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var channel in _channels) channel.Dispose();
    }
}
