using System.Diagnostics;
using Keel.TestCluster;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// One member of a real 3-member cluster keeps its data directory on a small tmpfs that is then filled: when its WAL can
/// no longer grow it raises NOSPACE for itself (listed by <c>etcdctl alarm list</c>), refuses writes with etcd's words,
/// keeps serving serializable reads, and never exits; the other two go on writing; once space is freed it writes its
/// log again and catches up. Keel only (etcd 3.4 panics when its WAL write fails); needs root for <c>mount</c>, which
/// CI and the development machines have.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class DiskFullTests : IAsyncLifetime
{
    // Two 64 MiB WAL segments fit with room to spare; the filler takes the room, so the second one cannot be made.
    private const int TmpfsMegabytes = 160;
    private string? _mount;
    private TestCluster.TestCluster? _cluster;

    private TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync()
    {
        _mount = Directory.CreateTempSubdirectory("keel-tmpfs-").FullName;
        await Run("mount", "-t", "tmpfs", "-o", $"size={TmpfsMegabytes}m", "tmpfs", _mount);
        var mount = _mount;
        _cluster = await TestCluster.TestCluster.StartAsync(3, ServerKind.Keel, options: new TestClusterOptions
        {
            DataDirectoryOf = (index, _) => index == 2 ? Path.Combine(mount, "n3") : null,
        });
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
        if (_mount is not null)
        {
            await Run("umount", "-l", _mount);
            Directory.Delete(_mount, recursive: true);
        }
    }

    private static async Task Run(string command, params string[] args)
    {
        var start = new ProcessStartInfo(command) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(bound.Token);
        var error = await process.StandardError.ReadToEndAsync();
        Assert.True(process.ExitCode == 0, $"{command} {string.Join(' ', args)} failed ({process.ExitCode}): {error} (this test needs root)");
    }

    private static async Task<bool> Eventually(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (await condition()) return true;
            await Task.Delay(100);
        }
        return await condition();
    }

    [Fact(Timeout = 240_000)]
    public async Task A_full_disk_raises_nospace_keeps_reads_and_the_member_catches_up_when_space_returns()
    {
        var all = Cluster.Etcdctl(0, 1);
        var full = new TestCluster.Etcdctl([Cluster.Members[2].ClientUrl], TimeSpan.FromSeconds(10));
        await all.PutAsync("disk/first", "v");
        Assert.True(await Eventually(async () => (await full.RunAsync(["get", "disk/first", "--consistency=s"])).OutputLines.Count == 2, TimeSpan.FromSeconds(20)));

        // Leave a quarter of a megabyte free: the member's preallocated WAL segment fills, the next one cannot be made.
        var filler = Path.Combine(_mount!, "filler");
        var free = new DriveInfo(_mount!).AvailableFreeSpace;
        await using (var file = new FileStream(filler, FileMode.CreateNew, FileAccess.Write))
        {
            var chunk = new byte[1 << 20];
            for (long left = free - 256 * 1024; left > 0; left -= chunk.Length) file.Write(chunk, 0, (int)Math.Min(chunk.Length, left));
        }

        var value = new string('d', 1 << 20);
        var raised = false;
        for (var i = 0; i < 120 && !raised; i++)
        {
            // When the full member was the leader it stops heartbeating and the other two elect a new one: a client
            // retries through that election, as etcd's clients do.
            EtcdctlResult put = null!;
            for (var attempt = 0; attempt < 5; attempt++)
            {
                put = await all.RunAsync(["put", $"disk/big/{i:D3}"], value, TimeSpan.FromSeconds(20));
                if (put.ExitCode == 0) break;
                await Task.Delay(500);
            }
            Assert.True(put.ExitCode == 0, $"the healthy majority refused a write: {put}\n{Cluster.DescribeOutput(30)}");
            if (i % 10 == 9) raised = (await full.RunAsync(["alarm", "list"])).OutputLines.Any(l => l.Contains("alarm:NOSPACE", StringComparison.Ordinal));
        }
        Assert.True(raised || await Eventually(async () => (await full.RunAsync(["alarm", "list"])).OutputLines.Any(l => l.Contains("alarm:NOSPACE", StringComparison.Ordinal)), TimeSpan.FromSeconds(10)),
            $"no NOSPACE alarm on the full member\n{Cluster.DescribeOutput(30)}");
        Assert.True(Cluster.Members[2].IsRunning, Cluster.DescribeOutput(30));
        Assert.Contains("NOSPACE", Cluster.Members[2].Output.Text());

        var refused = await full.RunAsync(["put", "disk/refused", "x"]);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("etcdserver: mvcc: database space exceeded", refused.StandardError);
        Assert.Equal(["disk/first", "v"], (await full.RunAsync(["get", "disk/first", "--consistency=s"])).EnsureSuccess().OutputLines);
        await all.PutAsync("disk/majority", "still-writes");

        File.Delete(filler);
        Assert.True(await Eventually(async () =>
            (await full.RunAsync(["get", "disk/majority", "--consistency=s"])).OutputLines is [_, "still-writes"], TimeSpan.FromSeconds(30)),
            $"the member did not catch up after space returned\n{Cluster.DescribeOutput(30)}");
        Assert.True(await Eventually(async () => !(await full.RunAsync(["alarm", "list"])).OutputLines.Any(l => l.Contains("NOSPACE", StringComparison.Ordinal)), TimeSpan.FromSeconds(10)));
        await full.PutAsync("disk/after", "room-again");
        Assert.True(Cluster.Members[2].IsRunning);
    }
}
