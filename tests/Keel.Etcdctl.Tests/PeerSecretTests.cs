using System.Diagnostics;
using System.Text.Json;
using Keel.TestCluster;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// Peers without TLS prove the cluster secret (<c>--peer-secret-file</c>) on real processes: a member restarted with
/// another secret is refused by both peers before it can send or receive a single Raft message (each refusal logged
/// with its reason), so it learns no leader and no new write; given the right secret again it catches up. Keel only:
/// etcd has no peer secret.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class PeerSecretTests : IDisposable
{
    private readonly TempDirectory _temp = new("keel-peer-secret-");

    private string TempPath => _temp.Path;

    public void Dispose() => _temp.Dispose();

    [Fact(Timeout = 180_000)]
    public async Task A_member_with_another_secret_cannot_send_or_receive_a_raft_message()
    {
        if (ServerSelection.FromEnvironment() != ServerKind.Keel) return; // a Keel flag: etcd has no peer secret
        var secret = Path.Combine(TempPath, "secret");
        var otherSecret = Path.Combine(TempPath, "other-secret");
        await File.WriteAllTextAsync(secret, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        await File.WriteAllTextAsync(otherSecret, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        var victimSecret = secret;
        var victim = -1;
        await using var cluster = await TestCluster.TestCluster.StartAsync(3, ServerKind.Keel, options: new TestClusterOptions
        {
            FlagsOf = index => ["--peer-secret-file", index == victim ? victimSecret : secret],
        });
        // The victim is a follower, so the other two keep their leader throughout.
        var leader = await cluster.FindLeaderAsync();
        victim = (leader + 1) % 3;
        var witness = 3 - leader - victim;
        await cluster.Etcdctl(leader).PutAsync("secret/before", "1");
        // Applied everywhere before the victim goes (a serializable read of it on the victim is checked below).
        var applied = Stopwatch.StartNew();
        while ((await cluster.Etcdctl(victim).RunAsync("get", "secret/before", "--consistency=s")).OutputLines.Count == 0 && applied.Elapsed < TimeSpan.FromSeconds(20))
            await Task.Delay(50);

        await cluster.KillAsync(victim);
        victimSecret = otherSecret;
        cluster.Relaunch(victim);
        // The peers refuse the victim's connections (it dials them at start) and it refuses theirs.
        var clock = Stopwatch.StartNew();
        while (!(RefusedForSecret(cluster, leader) && RefusedForSecret(cluster, victim)) && clock.Elapsed < TimeSpan.FromSeconds(30))
            await Task.Delay(100);
        Assert.True(RefusedForSecret(cluster, leader), "the leader did not log refusing the victim:\n" + cluster.Members[leader].Output.Text());
        Assert.True(RefusedForSecret(cluster, victim), "the victim did not log refusing a peer:\n" + cluster.Members[victim].Output.Text());

        // A write committed by the other two never reaches the victim, and it knows no leader.
        await cluster.Etcdctl(leader).PutAsync("secret/after", "2");
        Assert.Equal(["secret/after", "2"], (await cluster.Etcdctl(witness).RunAsync("get", "secret/after")).EnsureSuccess().OutputLines);
        var isolated = cluster.Etcdctl(victim);
        Assert.Empty((await isolated.RunAsync("get", "secret/after", "--consistency=s")).EnsureSuccess().OutputLines);
        Assert.Equal(["secret/before", "1"], (await isolated.RunAsync("get", "secret/before", "--consistency=s")).EnsureSuccess().OutputLines);
        var status = (await isolated.RunAsync("endpoint", "status", "-w", "json")).EnsureSuccess();
        using (var json = JsonDocument.Parse(status.StandardOutput))
        {
            // etcdctl's JSON leaves out zero fields: no "leader" is leader 0.
            var statusOf = json.RootElement[0].GetProperty("Status");
            Assert.Equal(0UL, statusOf.TryGetProperty("leader", out var leaderId) ? leaderId.GetUInt64() : 0UL);
        }

        // The right secret again: the victim rejoins and catches up.
        await cluster.KillAsync(victim);
        victimSecret = secret;
        await cluster.RestartAsync(victim);
        Assert.Equal(["secret/after", "2"], (await isolated.RunAsync("get", "secret/after")).EnsureSuccess().OutputLines);
    }

    private static bool RefusedForSecret(TestCluster.TestCluster cluster, int index) =>
        cluster.Members[index].Output.Text().Contains("refused (secret)", StringComparison.Ordinal);
}
