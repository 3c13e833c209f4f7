namespace Keel.Etcdctl.Tests;

/// <summary>
/// etcdctl's client-side lock and election recipes (lease + create-revision ordering + watch of the predecessor):
/// two contenders, mutual exclusion checked through a key both write, and an observer of the election.
/// </summary>
[Collection(SharedClusterCollection.Name)]
public sealed class LockAndElectionTests(SharedClusterFixture fixture) : IDisposable
{
    private readonly TestCluster.Etcdctl _ctl = fixture.Ctl;
    private readonly string _scratch = Directory.CreateTempSubdirectory("keel-lock-test-").FullName;

    public void Dispose() => Directory.Delete(_scratch, recursive: true);

    /// <summary>Starts a watch on <paramref name="prefix"/> from the next revision, so a test can await a contender's key.</summary>
    private async Task<TestCluster.EtcdctlProcess> WatchFromNow(string prefix)
    {
        var now = await _ctl.PutAsync($"marker-{prefix}", "m");
        return _ctl.Start("watch", prefix, "--prefix", "--rev", (now + 1).ToString());
    }

    [Fact(Timeout = 60_000)]
    public async Task The_second_contender_gets_the_lock_only_after_the_first_releases_it()
    {
        var release = Path.Combine(_scratch, "release-a");
        // Each holder writes the guard on entry and reads it back on exit: anyone else writing in between shows.
        // The nested etcdctl inherits ETCDCTL_ENDPOINTS; etcdctl sets ETCD_LOCK_KEY for the command.
        var holderA = $"etcdctl put lock-ex/guard A-in >/dev/null && echo \"A holds $ETCD_LOCK_KEY\" && " +
                      $"while [ ! -e '{release}' ]; do sleep 0.05; done; " +
                      "v=$(etcdctl get lock-ex/guard --print-value-only); etcdctl put lock-ex/guard A-out >/dev/null; echo \"A saw $v\"";
        var holderB = "v=$(etcdctl get lock-ex/guard --print-value-only); echo \"B saw $v on entry\"; " +
                      "etcdctl put lock-ex/guard B-in >/dev/null; v=$(etcdctl get lock-ex/guard --print-value-only); echo \"B saw $v\"";

        await using var a = _ctl.Start("lock", "lock-ex/l", "--", "sh", "-c", holderA);
        var aLines = await a.WaitForLinesAsync(1, EtcdctlExtensions.OutputTimeout);
        Assert.StartsWith("A holds lock-ex/l/", aLines[0]);

        await using var contenders = await WatchFromNow("lock-ex/l/");
        await using var b = _ctl.Start("lock", "lock-ex/l", "--", "sh", "-c", holderB);
        // B's key appears under the lock prefix: B has made its bid and must now wait for A.
        var bid = await contenders.WaitForLinesAsync(3, EtcdctlExtensions.OutputTimeout);
        Assert.Equal("PUT", bid[0]);
        Assert.StartsWith("lock-ex/l/", bid[1]);
        Assert.Empty(b.OutputLines);
        Assert.Equal(2, (await _ctl.LinesAsync("get", "lock-ex/l/", "--prefix", "--keys-only")).Count(l => l.Length > 0));

        File.WriteAllText(release, "");
        Assert.Equal(0, await a.WaitForExitAsync(EtcdctlExtensions.OutputTimeout));
        Assert.Equal("A saw A-in", a.OutputLines[^1]);

        Assert.Equal(0, await b.WaitForExitAsync(EtcdctlExtensions.OutputTimeout));
        Assert.Equal(["B saw A-out on entry", "B saw B-in"], b.OutputLines);
        // Both released: no key left under the lock prefix.
        Assert.Empty(await _ctl.LinesAsync("get", "lock-ex/l/", "--prefix"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Lock_without_a_command_prints_its_key_and_releases_it_on_interrupt()
    {
        await using var holder = _ctl.Start("lock", "lock-plain/l");
        var key = (await holder.WaitForLinesAsync(1, EtcdctlExtensions.OutputTimeout))[0];
        Assert.Matches("^lock-plain/l/[0-9a-f]+$", key);
        Assert.Equal([key, ""], await _ctl.LinesAsync("get", "lock-plain/l/", "--prefix"));
        holder.Interrupt();
        await holder.WaitForExitAsync(EtcdctlExtensions.OutputTimeout);
        Assert.Empty(await _ctl.LinesAsync("get", "lock-plain/l/", "--prefix"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Election_leadership_passes_from_the_first_candidate_to_the_second_and_the_observer_sees_both()
    {
        await using var observer = _ctl.Start("elect", "--listen", "elect-e");
        await using var a = _ctl.Start("elect", "elect-e", "proposal-A");
        var aLines = await a.WaitForLinesAsync(2, EtcdctlExtensions.OutputTimeout);
        Assert.Matches("^elect-e/[0-9a-f]+$", aLines[0]);
        Assert.Equal("proposal-A", aLines[1]);
        Assert.Equal([aLines[0], "proposal-A"], await observer.WaitForLinesAsync(2, EtcdctlExtensions.OutputTimeout));

        await using var contenders = await WatchFromNow("elect-e/");
        await using var b = _ctl.Start("elect", "elect-e", "proposal-B");
        var bid = await contenders.WaitForLinesAsync(3, EtcdctlExtensions.OutputTimeout);
        Assert.Equal("PUT", bid[0]);
        Assert.Equal("proposal-B", bid[2]);
        Assert.Empty(b.OutputLines);

        a.Interrupt(); // resign
        await a.WaitForExitAsync(EtcdctlExtensions.OutputTimeout);
        var bLines = await b.WaitForLinesAsync(2, EtcdctlExtensions.OutputTimeout);
        Assert.Equal(bid[1], bLines[0]);
        Assert.Equal("proposal-B", bLines[1]);
        var observed = await observer.WaitForLinesAsync(4, EtcdctlExtensions.OutputTimeout);
        Assert.Equal([aLines[0], "proposal-A", bLines[0], "proposal-B"], observed);

        b.Interrupt();
        await b.WaitForExitAsync(EtcdctlExtensions.OutputTimeout);
        Assert.Empty(await _ctl.LinesAsync("get", "elect-e/", "--prefix"));
    }
}
