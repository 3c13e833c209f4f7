using dotnet_etcd;
using Grpc.Core;

namespace Keel.DotnetEtcd.Tests;

/// <summary>
/// One 3-member cluster (Keel, or etcd with KEEL_TEST_SERVER=etcd) shared by every test class of this project, and a
/// dotnet-etcd client connected to all members. Tests use their own key prefixes.
/// </summary>
public sealed class SharedClusterFixture : IAsyncLifetime
{
    private TestCluster.TestCluster? _cluster;
    private EtcdClient? _client;

    /// <summary>The running cluster.</summary>
    public TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    /// <summary>A dotnet-etcd client over every member.</summary>
    public EtcdClient Client => _client ?? throw new InvalidOperationException("not started");

    /// <summary>A new client over the given members (default: all); the caller disposes it.</summary>
    public EtcdClient NewClient(params int[] members) =>
        new(string.Join(',', members.Length == 0 ? Cluster.ClientUrls : members.Select(i => Cluster.Members[i].ClientUrl)),
            configureChannelOptions: options => options.Credentials = ChannelCredentials.Insecure);

    /// <inheritdoc />
    public async Task InitializeAsync()
    {
        _cluster = await TestCluster.TestCluster.StartAsync(3);
        _client = NewClient();
    }

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        _client?.Dispose();
        if (_cluster is not null) await _cluster.DisposeAsync();
    }
}

/// <summary>The test classes that share one 3-member cluster.</summary>
[CollectionDefinition(Name)]
public sealed class SharedClusterCollection : ICollectionFixture<SharedClusterFixture>
{
    /// <summary>The collection name.</summary>
    public const string Name = "shared 3-member cluster";
}

/// <summary>Bounds for every call: no test waits forever on a server that does not answer.</summary>
public static class Bounds
{
    /// <summary>Deadline of one unary call.</summary>
    public static DateTime CallDeadline => DateTime.UtcNow.AddSeconds(10);

    /// <summary>Bound on waiting for a streamed answer or a blocked call.</summary>
    public static readonly TimeSpan WaitTimeout = TimeSpan.FromSeconds(20);
}
