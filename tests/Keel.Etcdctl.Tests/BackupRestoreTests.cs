using System.Diagnostics;
using System.Text.Json;
using Keel.TestCluster;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// A backup of a live 3-member cluster (<c>keel snapshot save</c>) restored into a fresh 3-member cluster (<c>keel
/// snapshot restore</c> into each new data directory, as with etcdutl) has the same keys, leases and revision, and every
/// new member answers <c>etcdctl endpoint hashkv</c> with the original's hash. Keel only: etcd's backups are bbolt files
/// restored by etcdutl.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class BackupRestoreTests
{
    private static async Task<(int ExitCode, string Output)> Keel(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(TestCluster.TestCluster.KeelDll);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var output = process.StandardOutput.ReadToEndAsync(bound.Token);
        var error = process.StandardError.ReadToEndAsync(bound.Token);
        await process.WaitForExitAsync(bound.Token);
        return (process.ExitCode, await output + await error);
    }

    private static async Task<long> HashKv(TestClusterMember member, long revision)
    {
        // etcdctl 3.4 sends a per-endpoint call's endpoint text as :authority: host:port is what the servers accept.
        var ctl = new TestCluster.Etcdctl([new Uri(member.ClientUrl).Authority]);
        using var json = await ctl.JsonAsync("endpoint", "hashkv", "--rev", revision.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return json.RootElement[0].GetProperty("HashKV").GetProperty("hash").GetInt64();
    }

    [Fact(Timeout = 240_000)]
    public async Task A_backup_restores_into_a_new_cluster_with_an_equal_hashkv()
    {
        var backup = Path.Combine(Path.GetTempPath(), $"keel-backup-{Guid.NewGuid():N}.snapshot");
        try
        {
            long revision, hash;
            await using (var original = await TestCluster.TestCluster.StartAsync(3, ServerKind.Keel))
            {
                var ctl = original.Etcdctl();
                for (var i = 0; i < 50; i++) await ctl.PutAsync($"backup/{i:D2}", $"v{i}");
                await ctl.LinesAsync("del", "backup/00");
                var lease = (await ctl.LinesAsync("lease", "grant", "600"))[0].Split(' ')[1];
                await ctl.PutAsync("backup/leased", "x", "--lease", lease);
                revision = await original.RevisionAsync(0);
                hash = await HashKv(original.Members[0], revision);

                var (saved, saveOutput) = await Keel("snapshot", "save", backup, "--endpoints", new Uri(original.Members[1].ClientUrl).Authority);
                Assert.True(saved == 0, saveOutput);
                var (described, status) = await Keel("snapshot", "status", backup, "-w", "json");
                Assert.True(described == 0, status);
                using var info = JsonDocument.Parse(status);
                Assert.Equal(revision, info.RootElement.GetProperty("revision").GetInt64());
                Assert.Equal(hash, info.RootElement.GetProperty("hash").GetInt64());
                Assert.Equal(1, info.RootElement.GetProperty("leases").GetInt32());
            }

            // A damaged backup is refused with a clear message, never restored.
            var damaged = backup + ".damaged";
            var bytes = await File.ReadAllBytesAsync(backup);
            bytes[bytes.Length / 2] ^= 0xFF;
            await File.WriteAllBytesAsync(damaged, bytes);
            var (refused, refusal) = await Keel("snapshot", "status", damaged);
            File.Delete(damaged);
            Assert.NotEqual(0, refused);
            Assert.Contains("SHA-256", refusal);

            await using var restored = await TestCluster.TestCluster.StartAsync(3, ServerKind.Keel, options: new TestClusterOptions
            {
                PrepareMember = async (member, initialCluster) =>
                {
                    var (code, output) = await Keel("snapshot", "restore", backup, "--data-dir", member.DataDirectory,
                        "--name", member.Name, "--initial-cluster", initialCluster, "--initial-advertise-peer-urls", member.PeerUrl);
                    Assert.True(code == 0, output);
                },
            });
            foreach (var member in restored.Members)
            {
                var restoredHash = await HashKv(member, revision);
                Assert.True(hash == restoredHash, $"hash {restoredHash} at revision {revision} on {member}, original {hash}\n{restored.DescribeOutput(20)}");
            }
            var restoredCtl = restored.Etcdctl();
            Assert.Equal(["backup/49", "v49"], await restoredCtl.LinesAsync("get", "backup/49"));
            Assert.Empty(await restoredCtl.LinesAsync("get", "backup/00"));
            Assert.Equal("found 1 leases", (await restoredCtl.LinesAsync("lease", "list"))[0]);
            Assert.Equal(revision + 1, await restoredCtl.PutAsync("backup/after", "restore"));
            // The new cluster is new: its members are the restored ones, not the original's.
            var members = await restoredCtl.LinesAsync("member", "list");
            Assert.Equal(3, members.Count);
            Assert.All(restored.Members, m => Assert.Contains(members, line => line.Contains(m.PeerUrl, StringComparison.Ordinal)));
        }
        finally
        {
            File.Delete(backup);
        }
    }
}
