using System.Diagnostics;
using System.Net;
using Keel.TestCluster;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// etcd 3.5's HTTP health on the metrics listener of real members: <c>/health</c>, <c>/livez</c> and <c>/readyz</c>
/// answer 200 while there is a leader, and <c>/readyz</c> and <c>/health</c> flip to 503 "no leader" when the leader
/// and one more member are killed, then back once they return. Keel only (etcd 3.4 has <c>/health</c> but neither
/// <c>/livez</c> nor <c>/readyz</c>).
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class HttpHealthTests : IAsyncLifetime
{
    private readonly int[] _metricsPorts = FreePorts.Reserve(3);
    private TestCluster.TestCluster? _cluster;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(5) };

    private TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => _cluster = await TestCluster.TestCluster.StartAsync(3, ServerKind.Keel, options: new TestClusterOptions
    {
        EnvironmentOf = (index, _) => new Dictionary<string, string> { ["KEEL_LISTEN_METRICS_URLS"] = $"http://127.0.0.1:{_metricsPorts[index]}" },
    });

    public async Task DisposeAsync()
    {
        _http.Dispose();
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    private async Task<(HttpStatusCode Status, string Body)> Get(int member, string path)
    {
        using var response = await _http.GetAsync($"http://127.0.0.1:{_metricsPorts[member]}{path}");
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            if (await condition()) return;
            await Task.Delay(50);
        }
        Assert.Fail($"not within 30 s: {what}");
    }

    [Fact(Timeout = 180_000)]
    public async Task Readyz_flips_without_a_leader_and_back()
    {
        for (var member = 0; member < 3; member++)
        {
            Assert.Equal((HttpStatusCode.OK, "{\"health\":\"true\",\"reason\":\"\"}"), await Get(member, "/health"));
            Assert.Equal((HttpStatusCode.OK, "ok\n"), await Get(member, "/readyz"));
            Assert.Equal((HttpStatusCode.OK, "ok\n"), await Get(member, "/livez"));
        }
        var leader = await Cluster.FindLeaderAsync();
        var other = (leader + 1) % 3;
        var survivor = 3 - leader - other;
        await Cluster.KillAsync(leader);
        await Cluster.KillAsync(other);
        await Eventually(async () => (await Get(survivor, "/readyz")) == (HttpStatusCode.ServiceUnavailable, "readyz check failed: no leader\n"), "readyz 503 without a leader");
        Assert.Equal((HttpStatusCode.ServiceUnavailable, "{\"health\":\"false\",\"reason\":\"no leader\"}"), await Get(survivor, "/health"));
        Assert.Equal((HttpStatusCode.OK, "ok\n"), await Get(survivor, "/livez"));

        await Task.WhenAll(Cluster.RestartAsync(leader), Cluster.RestartAsync(other));
        await Eventually(async () => (await Get(survivor, "/readyz")).Status == HttpStatusCode.OK, "readyz 200 once a leader is back");
    }
}
