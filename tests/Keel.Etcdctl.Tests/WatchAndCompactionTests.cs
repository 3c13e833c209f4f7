namespace Keel.Etcdctl.Tests;

/// <summary>
/// <c>etcdctl watch</c> as a running process whose output is collected: from an old revision, by prefix, with
/// prev-kv, and after compaction (the compacted error). Plus <c>compaction</c> itself.
/// </summary>
[Collection(SharedClusterCollection.Name)]
public sealed class WatchAndCompactionTests(SharedClusterFixture fixture)
{
    private readonly TestCluster.Etcdctl _ctl = fixture.Ctl;

    [Fact(Timeout = 60_000)]
    public async Task Watch_from_an_old_revision_replays_history_in_order()
    {
        var first = await _ctl.PutAsync("watch-old/k", "v1");
        await _ctl.PutAsync("watch-old/k", "v2");
        Assert.Equal(["1"], await _ctl.LinesAsync("del", "watch-old/k"));

        await using var watch = _ctl.Start("watch", "watch-old/k", "--rev", first.ToString());
        var lines = await watch.WaitForLinesAsync(9, EtcdctlExtensions.OutputTimeout);
        Assert.Equal(["PUT", "watch-old/k", "v1", "PUT", "watch-old/k", "v2", "DELETE", "watch-old/k", ""], lines.Take(9));

        // Still live: a new event follows the history.
        await _ctl.PutAsync("watch-old/k", "v3");
        lines = await watch.WaitForLinesAsync(12, EtcdctlExtensions.OutputTimeout);
        Assert.Equal(["PUT", "watch-old/k", "v3"], lines.Skip(9));
    }

    [Fact(Timeout = 60_000)]
    public async Task Watch_prefix_sees_only_the_prefix_and_prev_kv_shows_the_old_pair()
    {
        var now = await _ctl.PutAsync("watch-prefix-marker", "m");

        // Starting at now + 1 makes the watch independent of when the watcher's stream is established.
        await using var watch = _ctl.Start("watch", "watch-prefix/", "--prefix", "--prev-kv", "--rev", (now + 1).ToString());
        await _ctl.PutAsync("watch-prefix/a", "1");
        await _ctl.PutAsync("watch-prefiy", "outside");
        await _ctl.PutAsync("watch-prefix/a", "2");
        await _ctl.LinesAsync("del", "watch-prefix/a");

        var expected = new[]
        {
            "PUT", "watch-prefix/a", "1",
            "PUT", "watch-prefix/a", "1", "watch-prefix/a", "2",
            "DELETE", "watch-prefix/a", "2", "watch-prefix/a", "",
        };
        var lines = await watch.WaitForLinesAsync(expected.Length, EtcdctlExtensions.OutputTimeout);
        Assert.Equal(expected, lines);
    }

    [Fact(Timeout = 60_000)]
    public async Task Compaction_makes_old_revisions_unreadable_and_cancels_watches_from_them()
    {
        var first = await _ctl.PutAsync("watch-compact/k", "v1");
        await _ctl.PutAsync("watch-compact/k", "v2");
        var third = await _ctl.PutAsync("watch-compact/k", "v3");

        Assert.Equal([$"compacted revision {third}"], await _ctl.LinesAsync("compaction", third.ToString()));

        var oldRead = await _ctl.RunAsync("get", "watch-compact/k", "--rev", first.ToString());
        Assert.NotEqual(0, oldRead.ExitCode);
        Assert.Contains("Error: etcdserver: mvcc: required revision has been compacted", oldRead.StandardError);

        var again = await _ctl.RunAsync("compaction", third.ToString());
        Assert.NotEqual(0, again.ExitCode);
        Assert.Contains("Error: etcdserver: mvcc: required revision has been compacted", again.StandardError);

        // The compaction revision itself is still readable.
        Assert.Equal(["watch-compact/k", "v3"], await _ctl.LinesAsync("get", "watch-compact/k", "--rev", third.ToString()));

        await using var watch = _ctl.Start("watch", "watch-compact/k", "--rev", first.ToString());
        var exitCode = await watch.WaitForExitAsync(EtcdctlExtensions.OutputTimeout);
        Assert.True(exitCode != 0, watch.Describe());
        Assert.Contains("watch was canceled (etcdserver: mvcc: required revision has been compacted)", watch.ErrorLines);
        Assert.Empty(watch.OutputLines);

        // A watch from the compaction revision itself still works.
        await using var fromCompacted = _ctl.Start("watch", "watch-compact/k", "--rev", third.ToString());
        Assert.Equal(["PUT", "watch-compact/k", "v3"], await fromCompacted.WaitForLinesAsync(3, EtcdctlExtensions.OutputTimeout));
    }
}
