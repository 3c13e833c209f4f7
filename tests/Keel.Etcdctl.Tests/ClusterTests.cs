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

    // etcdctl 3.4 dials `endpoint status` and `endpoint hashkv` with the endpoint text as the HTTP/2 :authority; given
    // "http://host:port" that is "http://host:port", which Kestrel refuses as an invalid host (grpc-go servers accept
    // it). Known difference, docs/server.md: these two commands need host:port endpoints against Keel.
    private Keel.TestCluster.Etcdctl HostPort(params int[] memberIndexes) =>
        new((memberIndexes.Length == 0 ? _cluster.Members : memberIndexes.Select(i => _cluster.Members[i])).Select(m => Authority(m.ClientUrl)));

    private static string Authority(string url) => new Uri(url).Authority;
}
