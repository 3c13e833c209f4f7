using System.Text;
using System.Text.Json;
using Keel.TestCluster;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// One 3-member cluster shared by every test class in the <see cref="SharedClusterCollection"/>: its tests run one after
/// another and each uses its own key prefix, so none sees another's keys.
/// </summary>
public sealed class SharedClusterFixture : IAsyncLifetime
{
    private TestCluster.TestCluster? _cluster;

    /// <summary>The running cluster.</summary>
    public TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    /// <summary>etcdctl against every member.</summary>
    public TestCluster.Etcdctl Ctl => Cluster.Etcdctl();

    /// <inheritdoc />
    public async Task InitializeAsync() => _cluster = await TestCluster.TestCluster.StartAsync(3);

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
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

/// <summary>etcdctl helpers: revisions from <c>-w json</c> and bounded waits.</summary>
public static class EtcdctlExtensions
{
    /// <summary>Bound on waiting for a running etcdctl's output.</summary>
    public static readonly TimeSpan OutputTimeout = TimeSpan.FromSeconds(20);

    /// <summary><c>put key value -w json</c>; returns the revision the put created.</summary>
    public static async Task<long> PutAsync(this TestCluster.Etcdctl ctl, string key, string value, params string[] flags)
    {
        var result = (await ctl.RunAsync(["put", key, value, "-w", "json", .. flags])).EnsureSuccess();
        using var json = JsonDocument.Parse(result.StandardOutput);
        return json.RootElement.GetProperty("header").GetProperty("revision").GetInt64();
    }

    /// <summary>Runs etcdctl and asserts success; returns stdout lines.</summary>
    public static async Task<IReadOnlyList<string>> LinesAsync(this TestCluster.Etcdctl ctl, params string[] args)
    {
        var result = await ctl.RunAsync(args);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.OutputLines;
    }

    /// <summary>Runs etcdctl with <c>-w json</c> and parses stdout.</summary>
    public static async Task<JsonDocument> JsonAsync(this TestCluster.Etcdctl ctl, params string[] args)
    {
        var result = await ctl.RunAsync([.. args, "-w", "json"]);
        Assert.True(result.ExitCode == 0, result.ToString());
        return JsonDocument.Parse(result.StandardOutput);
    }

    /// <summary>Decodes a base64 field of etcdctl's JSON output (keys and values are base64 there).</summary>
    public static string Base64Text(this JsonElement element) => Encoding.UTF8.GetString(Convert.FromBase64String(element.GetString()!));
}
