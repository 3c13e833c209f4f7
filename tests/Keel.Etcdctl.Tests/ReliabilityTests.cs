using Keel.TestCluster;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// etcd's space-quota procedure with the unmodified etcdctl 3.4 (also run against etcd 3.4 with the same flags, which
/// proves the test): writes past <c>--quota-backend-bytes</c> raise NOSPACE, writes then fail with "etcdserver: mvcc:
/// database space exceeded" while reads work, <c>alarm list</c> shows the alarm, and compact + defrag + alarm disarm make
/// writes work again.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class SpaceQuotaTests : IAsyncLifetime
{
    private TestCluster.TestCluster? _cluster;

    private TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    // etcd's bbolt file starts near 20 KiB and grows in steps; 1 MiB leaves room for both servers to start.
    public async Task InitializeAsync() => _cluster = await TestCluster.TestCluster.StartAsync(1,
        options: new TestClusterOptions { ExtraFlags = ["--quota-backend-bytes", (1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture)] });

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    [Fact(Timeout = 180_000)]
    public async Task Past_the_quota_writes_fail_reads_work_and_compact_defrag_disarm_recovers()
    {
        var ctl = Cluster.Etcdctl();
        var value = new string('q', 4096);
        EtcdctlResult? refused = null;
        // History of one key fills the store (compaction can free it), as in etcd's documented procedure.
        for (var i = 0; i < 2_000 && refused is null; i++)
        {
            var result = await ctl.RunAsync(["put", "quota/key", value]);
            if (result.ExitCode != 0) refused = result;
        }
        Assert.NotNull(refused);
        Assert.Contains("etcdserver: mvcc: database space exceeded", refused!.StandardError);

        var alarms = await ctl.LinesAsync("alarm", "list");
        Assert.Contains(alarms, line => line.Contains("alarm:NOSPACE", StringComparison.Ordinal));
        Assert.Equal(["quota/key", value], await ctl.LinesAsync("get", "quota/key"));
        var again = await ctl.RunAsync(["put", "quota/other", "x"]);
        Assert.NotEqual(0, again.ExitCode);
        Assert.Contains("database space exceeded", again.StandardError);

        var revision = await Cluster.RevisionAsync(0);
        await ctl.LinesAsync("compact", revision.ToString(System.Globalization.CultureInfo.InvariantCulture));
        // etcdctl 3.4 sends a per-endpoint call's endpoint text as :authority; host:port is what both servers accept.
        await new TestCluster.Etcdctl([new Uri(Cluster.Members[0].ClientUrl).Authority]).LinesAsync("defrag");
        await ctl.LinesAsync("alarm", "disarm");
        Assert.Empty(await ctl.LinesAsync("alarm", "list"));
        await ctl.PutAsync("quota/after", "works");
        Assert.Equal(["quota/after", "works"], await ctl.LinesAsync("get", "quota/after"));
    }
}

/// <summary>
/// A member whose fdatasync fails (EIO injected by Keel's failpoint, as etcd's gofail does) stops at once with a
/// non-zero exit and one FATAL line naming what failed; restarted without the fault it still holds every write it
/// acknowledged. Keel only: etcd has no such failpoint in its release build.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class FsyncFailureTests : IAsyncLifetime
{
    private TestCluster.TestCluster? _cluster;

    private TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => _cluster = await TestCluster.TestCluster.StartAsync(1, ServerKind.Keel, options: new TestClusterOptions
    {
        // First start only: fdatasync fails after 40 good calls.
        EnvironmentOf = (_, incarnation) => incarnation == 1
            ? new Dictionary<string, string> { ["KEEL_FAILPOINT_FDATASYNC_EIO_AFTER"] = "40" }
            : null,
    });

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    [Fact(Timeout = 180_000)]
    public async Task A_failed_fsync_stops_the_member_loudly_and_loses_no_acknowledged_write()
    {
        var ctl = new TestCluster.Etcdctl(Cluster.ClientUrls, TimeSpan.FromSeconds(8));
        var acknowledged = new List<int>();
        for (var i = 0; i < 200 && Cluster.Members[0].IsRunning; i++)
        {
            var result = await ctl.RunAsync(["put", $"fsync/{i:D3}", $"v{i}", "--command-timeout=3s"]);
            if (result.ExitCode == 0) acknowledged.Add(i);
        }
        var exitCode = await Cluster.WaitForExitAsync(0, TimeSpan.FromSeconds(30));
        Assert.NotEqual(0, exitCode);
        var output = Cluster.Members[0].Output.Text();
        Assert.Contains("keel: FATAL", output);
        Assert.Contains("fdatasync", output);
        Assert.NotEmpty(acknowledged);

        await Cluster.RestartAsync(0);
        foreach (var i in acknowledged)
            Assert.Equal([$"fsync/{i:D3}", $"v{i}"], await ctl.LinesAsync("get", $"fsync/{i:D3}"));
        await ctl.PutAsync("fsync/after", "restart");
    }
}
