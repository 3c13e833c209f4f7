using System.Text.RegularExpressions;

namespace Keel.Etcdctl.Tests;

/// <summary>lease grant, keep-alive (--once and running), timetolive --keys, list and revoke, with attached keys disappearing.</summary>
[Collection(SharedClusterCollection.Name)]
public sealed partial class LeaseTests(SharedClusterFixture fixture)
{
    private readonly TestCluster.Etcdctl _ctl = fixture.Ctl;

    [GeneratedRegex(@"^lease ([0-9a-f]+) granted with TTL\((\d+)s\)$")]
    private static partial Regex Granted();

    private async Task<(string Id, long Ttl)> Grant(long ttlSeconds)
    {
        var lines = await _ctl.LinesAsync("lease", "grant", ttlSeconds.ToString());
        var match = Granted().Match(Assert.Single(lines));
        Assert.True(match.Success, $"unexpected grant output: {lines[0]}");
        return (match.Groups[1].Value, long.Parse(match.Groups[2].Value));
    }

    [Fact(Timeout = 60_000)]
    public async Task Grant_timetolive_keepalive_list_and_revoke_with_attached_keys_disappearing()
    {
        var (id, ttl) = await Grant(60);
        Assert.Equal(60, ttl);
        await _ctl.PutAsync("lease-full/a", "1", "--lease", id);
        await _ctl.PutAsync("lease-full/b", "2", "--lease", id);
        await _ctl.PutAsync("lease-full/free", "3");

        var withKeys = Assert.Single(await _ctl.LinesAsync("lease", "timetolive", id, "--keys"));
        var match = Regex.Match(withKeys, $@"^lease {id} granted with TTL\(60s\), remaining\((\d+)s\), attached keys\(\[(.*)\]\)$");
        Assert.True(match.Success, withKeys);
        Assert.InRange(long.Parse(match.Groups[1].Value), 40, 60);
        Assert.Equal(["lease-full/a", "lease-full/b"], match.Groups[2].Value.Split(' ').Order(StringComparer.Ordinal));

        var withoutKeys = Assert.Single(await _ctl.LinesAsync("lease", "timetolive", id));
        Assert.Matches($@"^lease {id} granted with TTL\(60s\), remaining\(\d+s\)$", withoutKeys);

        Assert.Equal([$"lease {id} keepalived with TTL(60)"], await _ctl.LinesAsync("lease", "keep-alive", "--once", id));

        var list = await _ctl.LinesAsync("lease", "list");
        Assert.Matches(@"^found \d+ leases$", list[0]);
        Assert.Contains(id, list.Skip(1));
        Assert.Equal(list.Count - 1, int.Parse(list[0].Split(' ')[1]));

        Assert.Equal([$"lease {id} revoked"], await _ctl.LinesAsync("lease", "revoke", id));
        Assert.Equal(["lease-full/free", "3"], await _ctl.LinesAsync("get", "lease-full/", "--prefix"));
        Assert.Equal([$"lease {id} already expired"], await _ctl.LinesAsync("lease", "timetolive", id));
        Assert.DoesNotContain(id, (await _ctl.LinesAsync("lease", "list")).Skip(1));

        var revokeAgain = await _ctl.RunAsync("lease", "revoke", id);
        Assert.NotEqual(0, revokeAgain.ExitCode);
        Assert.Contains("etcdserver: requested lease not found", revokeAgain.StandardError);

        var putWithUnknownLease = await _ctl.RunAsync("put", "lease-full/c", "x", "--lease", id);
        Assert.NotEqual(0, putWithUnknownLease.ExitCode);
        Assert.Contains("etcdserver: requested lease not found", putWithUnknownLease.StandardError);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_TTL_below_the_minimum_is_raised_to_it()
    {
        // Minimum TTL = ceil(1.5 x election timeout) = 2 s with the default 1 s election timeout.
        var (id, ttl) = await Grant(1);
        Assert.Equal(2, ttl);
        await _ctl.LinesAsync("lease", "revoke", id);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_running_keep_alive_holds_a_short_lease_and_expiry_deletes_its_keys_once_it_stops()
    {
        var (id, ttl) = await Grant(2);
        Assert.Equal(2, ttl);
        var revision = await _ctl.PutAsync("lease-expire/k", "v", "--lease", id);
        await using var watch = _ctl.Start("watch", "lease-expire/k", "--rev", (revision + 1).ToString());

        await using (var keepAlive = _ctl.Start("lease", "keep-alive", id))
        {
            // etcdctl refreshes every TTL/3: seven answers span more than the 2 s TTL.
            var lines = await keepAlive.WaitForLinesAsync(7, EtcdctlExtensions.OutputTimeout);
            Assert.All(lines, line => Assert.Equal($"lease {id} keepalived with TTL(2)", line));
            Assert.Equal(["lease-expire/k", "v"], await _ctl.LinesAsync("get", "lease-expire/k"));
            Assert.Empty(watch.OutputLines);
        }

        // Keep-alive killed: the leader expires the lease within the TTL (plus its 500 ms check period) and deletes the key.
        Assert.Equal(["DELETE", "lease-expire/k", ""], await watch.WaitForLinesAsync(3, EtcdctlExtensions.OutputTimeout));
        Assert.Empty(await _ctl.LinesAsync("get", "lease-expire/k"));
        Assert.Equal([$"lease {id} already expired"], await _ctl.LinesAsync("lease", "timetolive", id));
    }
}
