namespace Keel.Etcdctl.Tests;

/// <summary>
/// A single member killed with SIGKILL and restarted on its data directory keeps every acknowledged write and its
/// revision counter: durability without any peer to catch up from.
/// </summary>
public sealed class SingleMemberRestartTests : IAsyncLifetime
{
    private TestCluster.TestCluster? _cluster;

    private TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => _cluster = await TestCluster.TestCluster.StartAsync(1);

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    [Fact(Timeout = 120_000)]
    public async Task Acknowledged_writes_and_the_revision_survive_SIGKILL_and_restart()
    {
        var ctl = Cluster.Etcdctl();
        long last = 0;
        for (var i = 0; i < 20; i++) last = await ctl.PutAsync($"single/{i:D2}", $"v{i}");
        await ctl.LinesAsync("del", "single/00");

        await Cluster.KillAsync(0);
        Assert.False(Cluster.Members[0].IsRunning);
        await Cluster.RestartAsync(0);

        using var json = await ctl.JsonAsync("get", "single/", "--prefix");
        Assert.Equal(19, json.RootElement.GetProperty("count").GetInt64());
        Assert.Equal(last + 1, json.RootElement.GetProperty("header").GetProperty("revision").GetInt64());
        Assert.Equal(["single/19", "v19"], await ctl.LinesAsync("get", "single/19"));
        Assert.Equal(last + 2, await ctl.PutAsync("single/after", "restart"));
        Assert.Equal(2, Cluster.Members[0].Incarnation);
    }
}
