using System.Text.Json;

namespace Keel.Etcdctl.Tests;

/// <summary>put, get (prefix, limit, revision, sort, keys-only, count) and del through etcdctl, exact output.</summary>
[Collection(SharedClusterCollection.Name)]
public sealed class KvTests(SharedClusterFixture fixture)
{
    private readonly TestCluster.Etcdctl _ctl = fixture.Ctl;

    [Fact(Timeout = 60_000)]
    public async Task Put_prints_OK_and_get_prints_key_then_value()
    {
        Assert.Equal(["OK"], await _ctl.LinesAsync("put", "kv-basic/a", "hello world"));
        Assert.Equal(["kv-basic/a", "hello world"], await _ctl.LinesAsync("get", "kv-basic/a"));
        Assert.Equal(["hello world"], await _ctl.LinesAsync("get", "kv-basic/a", "--print-value-only"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Get_of_a_missing_key_prints_nothing_and_succeeds()
    {
        Assert.Empty(await _ctl.LinesAsync("get", "kv-missing/none"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Get_prefix_returns_exactly_the_prefixed_keys_in_key_order()
    {
        await _ctl.PutAsync("kv-prefix/b", "2");
        await _ctl.PutAsync("kv-prefix/a", "1");
        await _ctl.PutAsync("kv-prefix/c", "3");
        await _ctl.PutAsync("kv-prefiy", "outside");
        await _ctl.PutAsync("kv-prefi", "outside");

        Assert.Equal(["kv-prefix/a", "1", "kv-prefix/b", "2", "kv-prefix/c", "3"], await _ctl.LinesAsync("get", "kv-prefix/", "--prefix"));
        // An explicit [key, range_end) range.
        Assert.Equal(["kv-prefix/a", "1", "kv-prefix/b", "2"], await _ctl.LinesAsync("get", "kv-prefix/a", "kv-prefix/c"));
        // --from-key: every key >= the given one.
        var fromKey = await _ctl.LinesAsync("get", "kv-prefix/c", "--from-key", "--keys-only");
        Assert.Equal("kv-prefix/c", fromKey[0]);
        Assert.Contains("kv-prefiy", fromKey);
        Assert.DoesNotContain("kv-prefi", fromKey);
    }

    [Fact(Timeout = 60_000)]
    public async Task Get_limit_returns_the_first_keys_and_reports_more_and_the_full_count()
    {
        for (var i = 1; i <= 5; i++) await _ctl.PutAsync($"kv-limit/{i}", $"v{i}");

        Assert.Equal(["kv-limit/1", "v1", "kv-limit/2", "v2"], await _ctl.LinesAsync("get", "kv-limit/", "--prefix", "--limit", "2"));

        // etcdctl 3.4 has no --count-only; the count is in the JSON response of a limited range.
        using var json = await _ctl.JsonAsync("get", "kv-limit/", "--prefix", "--limit", "2");
        Assert.Equal(5, json.RootElement.GetProperty("count").GetInt64());
        Assert.True(json.RootElement.GetProperty("more").GetBoolean());
        Assert.Equal(2, json.RootElement.GetProperty("kvs").GetArrayLength());

        using var all = await _ctl.JsonAsync("get", "kv-limit/", "--prefix");
        Assert.Equal(5, all.RootElement.GetProperty("count").GetInt64());
        Assert.False(all.RootElement.TryGetProperty("more", out var more) && more.GetBoolean());
    }

    [Fact(Timeout = 60_000)]
    public async Task Get_sorts_by_every_target_in_both_orders()
    {
        // Creation order c, a, b; values make VALUE order differ from KEY order; b is modified twice (VERSION 3).
        await _ctl.PutAsync("kv-sort/c", "1");
        await _ctl.PutAsync("kv-sort/a", "3");
        await _ctl.PutAsync("kv-sort/b", "0");
        await _ctl.PutAsync("kv-sort/b", "0");
        await _ctl.PutAsync("kv-sort/b", "2");

        async Task<string[]> Keys(string target, string order) =>
            (await _ctl.LinesAsync("get", "kv-sort/", "--prefix", "--keys-only", "--sort-by", target, "--order", order))
            .Where(line => line.Length > 0).ToArray();

        Assert.Equal(["kv-sort/a", "kv-sort/b", "kv-sort/c"], await Keys("KEY", "ASCEND"));
        Assert.Equal(["kv-sort/c", "kv-sort/b", "kv-sort/a"], await Keys("KEY", "DESCEND"));
        Assert.Equal(["kv-sort/c", "kv-sort/a", "kv-sort/b"], await Keys("CREATE", "ASCEND"));
        Assert.Equal(["kv-sort/b", "kv-sort/a", "kv-sort/c"], await Keys("CREATE", "DESCEND"));
        Assert.Equal(["kv-sort/c", "kv-sort/a", "kv-sort/b"], await Keys("MODIFY", "ASCEND"));
        Assert.Equal(["kv-sort/b", "kv-sort/a", "kv-sort/c"], await Keys("MODIFY", "DESCEND"));
        Assert.Equal(["kv-sort/c", "kv-sort/b", "kv-sort/a"], await Keys("VALUE", "ASCEND"));
        Assert.Equal(["kv-sort/a", "kv-sort/b", "kv-sort/c"], await Keys("VALUE", "DESCEND"));
        Assert.Equal("kv-sort/b", (await Keys("VERSION", "DESCEND"))[0]);
        // Sorting applies before the limit.
        Assert.Equal(["kv-sort/c", "1"], await _ctl.LinesAsync("get", "kv-sort/", "--prefix", "--sort-by", "KEY", "--order", "DESCEND", "--limit", "1"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Get_at_a_revision_reads_history()
    {
        var first = await _ctl.PutAsync("kv-rev/k", "v1");
        var second = await _ctl.PutAsync("kv-rev/k", "v2");
        var other = await _ctl.PutAsync("kv-rev/other", "o");
        Assert.True(first < second && second < other, $"revisions {first} {second} {other}");

        Assert.Equal(["kv-rev/k", "v1"], await _ctl.LinesAsync("get", "kv-rev/k", "--rev", first.ToString()));
        Assert.Equal(["kv-rev/k", "v2"], await _ctl.LinesAsync("get", "kv-rev/k", "--rev", second.ToString()));
        Assert.Equal(["kv-rev/k", "v2"], await _ctl.LinesAsync("get", "kv-rev/k"));
        Assert.Equal(["kv-rev/k", "v1"], await _ctl.LinesAsync("get", "kv-rev/", "--prefix", "--rev", first.ToString()));
        Assert.Equal(["kv-rev/k", "v2", "kv-rev/other", "o"], await _ctl.LinesAsync("get", "kv-rev/", "--prefix", "--rev", other.ToString()));
        Assert.Empty(await _ctl.LinesAsync("get", "kv-rev/other", "--rev", second.ToString()));

        var future = await _ctl.RunAsync("get", "kv-rev/k", "--rev", (other + 1_000_000).ToString());
        Assert.NotEqual(0, future.ExitCode);
        Assert.Contains("Error: etcdserver: mvcc: required revision is a future revision", future.StandardError);
    }

    [Fact(Timeout = 60_000)]
    public async Task Json_output_carries_create_and_mod_revision_and_version()
    {
        var created = await _ctl.PutAsync("kv-meta/k", "a");
        var modified = await _ctl.PutAsync("kv-meta/k", "b");

        using var json = await _ctl.JsonAsync("get", "kv-meta/k");
        var kv = json.RootElement.GetProperty("kvs")[0];
        Assert.Equal("kv-meta/k", kv.GetProperty("key").Base64Text());
        Assert.Equal("b", kv.GetProperty("value").Base64Text());
        Assert.Equal(created, kv.GetProperty("create_revision").GetInt64());
        Assert.Equal(modified, kv.GetProperty("mod_revision").GetInt64());
        Assert.Equal(2, kv.GetProperty("version").GetInt64());
        Assert.True(json.RootElement.GetProperty("header").GetProperty("revision").GetInt64() >= modified);
        Assert.Equal(1, json.RootElement.GetProperty("count").GetInt64());
    }

    [Fact(Timeout = 60_000)]
    public async Task Keys_only_prints_each_key_followed_by_an_empty_line()
    {
        await _ctl.PutAsync("kv-keys/a", "1");
        await _ctl.PutAsync("kv-keys/b", "2");
        Assert.Equal(["kv-keys/a", "", "kv-keys/b", ""], await _ctl.LinesAsync("get", "kv-keys/", "--prefix", "--keys-only"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Del_prints_the_count_and_prev_kv_prints_the_deleted_pairs()
    {
        await _ctl.PutAsync("kv-del/single", "x");
        Assert.Equal(["1"], await _ctl.LinesAsync("del", "kv-del/single"));
        Assert.Equal(["0"], await _ctl.LinesAsync("del", "kv-del/single"));
        Assert.Empty(await _ctl.LinesAsync("get", "kv-del/single"));

        await _ctl.PutAsync("kv-del/p/a", "1");
        await _ctl.PutAsync("kv-del/p/b", "2");
        await _ctl.PutAsync("kv-del/q", "stays");
        Assert.Equal(["2", "kv-del/p/a", "1", "kv-del/p/b", "2"], await _ctl.LinesAsync("del", "kv-del/p/", "--prefix", "--prev-kv"));
        Assert.Empty(await _ctl.LinesAsync("get", "kv-del/p/", "--prefix"));
        Assert.Equal(["kv-del/q", "stays"], await _ctl.LinesAsync("get", "kv-del/", "--prefix"));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_delete_then_recreate_resets_version_and_create_revision()
    {
        await _ctl.PutAsync("kv-recreate/k", "1");
        await _ctl.PutAsync("kv-recreate/k", "2");
        await _ctl.LinesAsync("del", "kv-recreate/k");
        var recreated = await _ctl.PutAsync("kv-recreate/k", "3");
        using var json = await _ctl.JsonAsync("get", "kv-recreate/k");
        var kv = json.RootElement.GetProperty("kvs")[0];
        Assert.Equal(1, kv.GetProperty("version").GetInt64());
        Assert.Equal(recreated, kv.GetProperty("create_revision").GetInt64());
    }

    [Fact(Timeout = 60_000)]
    public async Task Every_member_serves_the_same_data_with_serializable_reads()
    {
        var revision = await _ctl.PutAsync("kv-members/k", "everywhere");
        foreach (var member in fixture.Cluster.Members)
        {
            var ctl = fixture.Cluster.Etcdctl(member.Index);
            // Linearizable: must see the write at once.
            Assert.Equal(["kv-members/k", "everywhere"], await ctl.LinesAsync("get", "kv-members/k"));
            // Serializable: local; after the linearizable read above the member has applied at least that revision.
            using var json = await ctl.JsonAsync("get", "kv-members/k", "--consistency", "s");
            Assert.True(json.RootElement.GetProperty("header").GetProperty("revision").GetInt64() >= revision);
            Assert.Equal("everywhere", json.RootElement.GetProperty("kvs")[0].GetProperty("value").Base64Text());
        }
    }
}
