using System.Text.Json;
using System.Text.RegularExpressions;

namespace Keel.Etcdctl.Tests;

/// <summary>member list, endpoint health and endpoint status on the 3-member cluster.</summary>
[Collection(SharedClusterCollection.Name)]
public sealed class ClusterTests(SharedClusterFixture fixture)
{
    private readonly TestCluster.TestCluster _cluster = fixture.Cluster;

    [Fact(Timeout = 60_000)]
    public async Task Member_list_prints_every_member_with_its_urls()
    {
        var lines = await _cluster.Etcdctl().LinesAsync("member", "list");
        Assert.Equal(3, lines.Count);
        var expected = _cluster.Members.Select(m => $"started, {m.Name}, {m.PeerUrl}, {m.ClientUrl}, false").Order(StringComparer.Ordinal);
        var actual = lines.Select(line =>
        {
            var match = Regex.Match(line, "^([0-9a-f]+), (.*)$");
            Assert.True(match.Success, line);
            return match.Groups[2].Value;
        }).Order(StringComparer.Ordinal);
        Assert.Equal(expected, actual);
        Assert.Equal(3, lines.Select(l => l.Split(',')[0]).Distinct().Count());
    }

    [Fact(Timeout = 60_000)]
    public async Task Member_list_json_ids_match_each_members_own_status()
    {
        using var list = await _cluster.Etcdctl().JsonAsync("member", "list");
        var idsByName = list.RootElement.GetProperty("members").EnumerateArray()
            .ToDictionary(m => m.GetProperty("name").GetString()!, m => m.GetProperty("ID").GetUInt64());
        Assert.Equal(_cluster.Members.Select(m => m.Name).Order(), idsByName.Keys.Order());
        foreach (var member in _cluster.Members)
        {
            using var status = await HostPort(member.Index).JsonAsync("endpoint", "status");
            Assert.Equal(idsByName[member.Name], status.RootElement[0].GetProperty("Status").GetProperty("header").GetProperty("member_id").GetUInt64());
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Endpoint_health_reports_every_member_healthy()
    {
        var result = await _cluster.Etcdctl().RunAsync("endpoint", "health");
        Assert.True(result.ExitCode == 0, result.ToString());
        // etcdctl 3.4 prints the health lines on stderr.
        var healthy = result.StandardError.Split('\n').Where(l => l.Contains(" is healthy: successfully committed proposal: took = ")).ToArray();
        Assert.Equal(_cluster.ClientUrls.Order(StringComparer.Ordinal), healthy.Select(l => l.Split(' ')[0]).Order(StringComparer.Ordinal));

        var viaCluster = await _cluster.Etcdctl(0).RunAsync("endpoint", "health", "--cluster");
        Assert.True(viaCluster.ExitCode == 0, viaCluster.ToString());
        Assert.Equal(3, viaCluster.StandardError.Split('\n').Count(l => l.Contains(" is healthy: ")));
    }

    [Fact(Timeout = 60_000)]
    public async Task Endpoint_status_shows_exactly_one_leader_agreed_by_all()
    {
        var lines = await HostPort().LinesAsync("endpoint", "status");
        Assert.Equal(3, lines.Count);
        // endpoint, id, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors
        var fields = lines.Select(l => l.Split(", ")).ToArray();
        Assert.All(fields, f => Assert.Equal(10, f.Length));
        Assert.Single(fields, f => f[4] == "true");
        Assert.All(fields, f => Assert.Equal("false", f[5]));
        Assert.Equal(_cluster.ClientUrls.Select(Authority).Order(StringComparer.Ordinal), fields.Select(f => f[0]).Order(StringComparer.Ordinal));

        using var json = await HostPort().JsonAsync("endpoint", "status");
        var statuses = json.RootElement.EnumerateArray().Select(e => e.GetProperty("Status")).ToArray();
        Assert.Equal(3, statuses.Length);
        var leader = Assert.Single(statuses.Select(s => s.GetProperty("leader").GetUInt64()).Distinct());
        Assert.Contains(leader, statuses.Select(s => s.GetProperty("header").GetProperty("member_id").GetUInt64()));
        Assert.All(statuses, s => Assert.True(s.GetProperty("raftTerm").GetUInt64() > 0));
        var leaderIndex = await _cluster.FindLeaderAsync();
        Assert.Equal(fields.Single(f => f[4] == "true")[0], Authority(_cluster.Members[leaderIndex].ClientUrl));
    }

    [Fact(Timeout = 120_000)]
    public async Task Per_endpoint_commands_work_with_http_URL_endpoints()
    {
        // etcdctl 3.4 dials each endpoint of these commands with the endpoint text as gRPC target, so the HTTP/2
        // :authority is "http://127.0.0.1:P" itself; etcd takes it, and so must Keel (Kestrel alone resets the stream).
        var urls = _cluster.Etcdctl();
        Assert.All(urls.Endpoints, e => Assert.StartsWith("http://", e, StringComparison.Ordinal));

        using var status = await urls.JsonAsync("endpoint", "status");
        var statuses = status.RootElement.EnumerateArray().ToArray();
        Assert.Equal(_cluster.ClientUrls.Order(StringComparer.Ordinal), statuses.Select(s => s.GetProperty("Endpoint").GetString()!).Order(StringComparer.Ordinal));
        Assert.Equal(3, statuses.Select(s => s.GetProperty("Status").GetProperty("header").GetProperty("member_id").GetUInt64()).Distinct().Count());

        var health = await urls.RunAsync("endpoint", "health");
        Assert.True(health.ExitCode == 0, health.ToString());
        Assert.Equal(3, health.StandardError.Split('\n').Count(l => l.StartsWith("http://", StringComparison.Ordinal) && l.Contains(" is healthy: ")));

        var revision = await urls.PutAsync("cluster-tests/http-endpoints", "v");
        // Followers may still be applying the put: ask until every member hashes the same store at that revision.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (true)
        {
            var hashes = await urls.RunAsync("endpoint", "hashkv", $"--rev={revision}", "-w", "json");
            if (hashes.ExitCode == 0)
            {
                using var json = JsonDocument.Parse(hashes.StandardOutput);
                var hashKvs = json.RootElement.EnumerateArray().Select(e => e.GetProperty("HashKV")).ToArray();
                Assert.Equal(_cluster.ClientUrls.Order(StringComparer.Ordinal), json.RootElement.EnumerateArray().Select(e => e.GetProperty("Endpoint").GetString()!).Order(StringComparer.Ordinal));
                if (hashKvs.Select(h => h.GetProperty("hash").GetUInt32()).Distinct().Count() == 1) break;
            }
            Assert.True(DateTime.UtcNow < deadline, $"the members' hashes at revision {revision} did not agree: {hashes}");
            await Task.Delay(100);
        }

        var defrag = await urls.LinesAsync("defrag");
        Assert.Equal(_cluster.ClientUrls.Select(u => $"Finished defragmenting etcd member[{u}]").Order(StringComparer.Ordinal), defrag.Order(StringComparer.Ordinal));

        // move-leader asks every endpoint for its status, then the leader to transfer.
        var leader = await _cluster.FindLeaderAsync();
        var target = (leader + 1) % 3;
        var targetId = statuses.Single(s => s.GetProperty("Endpoint").GetString() == _cluster.Members[target].ClientUrl)
            .GetProperty("Status").GetProperty("header").GetProperty("member_id").GetUInt64();
        var moved = await urls.LinesAsync("move-leader", targetId.ToString("x", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains(moved, l => l.StartsWith("Leadership transferred from ", StringComparison.Ordinal) && l.EndsWith($" to {targetId:x}", StringComparison.Ordinal));
        Assert.Equal(target, await _cluster.FindLeaderAsync());
    }

    private Keel.TestCluster.Etcdctl HostPort(params int[] memberIndexes) =>
        new((memberIndexes.Length == 0 ? _cluster.Members : memberIndexes.Select(i => _cluster.Members[i])).Select(m => Authority(m.ClientUrl)));

    private static string Authority(string url) => new Uri(url).Authority;
}
