using System.Text.Json;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// <c>etcdctl txn</c> in its interactive stdin format: compares (one per line), an empty line, success operations,
/// an empty line, failure operations, an empty line.
/// </summary>
[Collection(SharedClusterCollection.Name)]
public sealed class TxnTests(SharedClusterFixture fixture)
{
    private readonly TestCluster.Etcdctl _ctl = fixture.Ctl;

    private async Task<IReadOnlyList<string>> Txn(string script)
    {
        var result = await _ctl.RunAsync(["txn"], script);
        Assert.True(result.ExitCode == 0, result.ToString());
        return result.OutputLines;
    }

    [Fact(Timeout = 60_000)]
    public async Task A_true_compare_runs_the_success_operations()
    {
        await _ctl.PutAsync("txn-ok/a", "1");
        var output = await Txn("value(\"txn-ok/a\") = \"1\"\n\nput txn-ok/x ok\nget txn-ok/a\n\nput txn-ok/x bad\n\n");
        Assert.Equal(["SUCCESS", "", "OK", "", "txn-ok/a", "1"], output);
        Assert.Equal(["txn-ok/x", "ok"], await _ctl.LinesAsync("get", "txn-ok/x"));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_false_compare_runs_the_failure_operations()
    {
        await _ctl.PutAsync("txn-fail/a", "1");
        var output = await Txn("value(\"txn-fail/a\") = \"2\"\n\nput txn-fail/x ok\n\nput txn-fail/x bad\nget txn-fail/x\n\n");
        Assert.Equal(["FAILURE", "", "OK", "", "txn-fail/x", "bad"], output);
    }

    [Fact(Timeout = 60_000)]
    public async Task All_compares_must_hold_on_version_create_and_mod_revision()
    {
        var created = await _ctl.PutAsync("txn-multi/a", "1");
        var modified = await _ctl.PutAsync("txn-multi/a", "2");

        var holds = $"version(\"txn-multi/a\") = \"2\"\ncreate(\"txn-multi/a\") = \"{created}\"\nmod(\"txn-multi/a\") = \"{modified}\"\n\nput txn-multi/r yes\n\nput txn-multi/r no\n\n";
        Assert.Equal("SUCCESS", (await Txn(holds))[0]);
        Assert.Equal(["txn-multi/r", "yes"], await _ctl.LinesAsync("get", "txn-multi/r"));

        // One false compare (mod_revision moved on) sends the whole transaction to the failure branch.
        var oneFalse = $"version(\"txn-multi/a\") = \"2\"\nmod(\"txn-multi/a\") > \"{modified}\"\n\nput txn-multi/r yes2\n\nput txn-multi/r no2\n\n";
        Assert.Equal("FAILURE", (await Txn(oneFalse))[0]);
        Assert.Equal(["txn-multi/r", "no2"], await _ctl.LinesAsync("get", "txn-multi/r"));

        // A missing key has create_revision 0: the "create if absent" idiom of the lock recipe.
        var absent = "create(\"txn-multi/none\") = \"0\"\n\nput txn-multi/none first\n\n\n";
        Assert.Equal(["SUCCESS", "", "OK"], await Txn(absent));
        Assert.Equal(["FAILURE"], await Txn(absent));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_transaction_applies_at_one_revision()
    {
        var before = await _ctl.PutAsync("txn-rev/seed", "0");
        var result = await _ctl.RunAsync(["txn", "-w", "json"], "\nput txn-rev/a 1\nput txn-rev/b 2\ndel txn-rev/seed\n\n\n");
        Assert.True(result.ExitCode == 0, result.ToString());
        using var json = JsonDocument.Parse(result.StandardOutput);
        Assert.True(json.RootElement.GetProperty("succeeded").GetBoolean());
        var revision = json.RootElement.GetProperty("header").GetProperty("revision").GetInt64();
        Assert.Equal(before + 1, revision);

        using var read = await _ctl.JsonAsync("get", "txn-rev/", "--prefix");
        var mods = read.RootElement.GetProperty("kvs").EnumerateArray().Select(kv => kv.GetProperty("mod_revision").GetInt64()).ToArray();
        Assert.Equal([revision, revision], mods);
    }
}
