using Grpc.Core;
using Keel.TestCluster;

namespace Keel.Client.Tests;

/// <summary>
/// The client against a 3-member cluster with client mutual TLS and auth enabled (set up with the unmodified etcdctl
/// 3.4): with the CA, its certificate and a user's password it reads, writes and watches inside the user's prefix on
/// every member (simple tokens are per member, so it authenticates with each), is refused outside it with etcd's error,
/// a wrong password is refused, a client without a certificate gets nothing, and a certificate user (no password, CN
/// from the certificate) works without a token. Also run against etcd 3.4 (KEEL_TEST_SERVER=etcd).
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class SecurityTests : IDisposable
{
    private readonly TempDirectory _temp = new("keel-client-tls-");

    private string TempPath => _temp.Path;

    public void Dispose() => _temp.Dispose();

    [Fact(Timeout = 180_000)]
    public async Task Mutual_tls_and_a_password_user_confined_to_its_prefix_on_every_member()
    {
        using var ca = TestCertificateAuthority.Create("keel-test-ca", TempPath);
        var server = ca.Issue("member", "server");
        var rootCertificate = ca.Issue("root", "root-client");
        var appCertificate = ca.Issue("app-client", "app-client");
        var certUser = ca.Issue("reporter", "reporter-client");
        await using var cluster = await TestCluster.TestCluster.StartAsync(3, options: new TestClusterOptions
        {
            ClientScheme = "https",
            EtcdctlTls = new EtcdctlTls(ca.CaFile, rootCertificate.CertFile, rootCertificate.KeyFile),
            ExtraFlags = ["--cert-file", server.CertFile, "--key-file", server.KeyFile, "--trusted-ca-file", ca.CaFile, "--client-cert-auth", "--bcrypt-cost", "4"],
        });
        var root = cluster.Etcdctl();
        foreach (var step in new[]
        {
            new[] { "user", "add", "root:rootpw" }, ["auth", "enable"], ["role", "add", "app"],
            ["role", "grant-permission", "app", "readwrite", "app/", "--prefix=true"], ["user", "add", "alice:alicepw"], ["user", "grant-role", "alice", "app"],
            ["user", "add", "reporter", "--no-password"], ["user", "grant-role", "reporter", "app"], ["put", "secret/key", "root-only"],
        })
            (await root.RunAsync(step)).EnsureSuccess();

        KeelClientOptions Options(IssuedCertificate? certificate, string? user, string? password) => new()
        {
            Endpoints = cluster.ClientUrls.ToList(), CaFile = ca.CaFile, CertFile = certificate?.CertFile, KeyFile = certificate?.KeyFile,
            Username = user, Password = password, CommandTimeout = TimeSpan.FromSeconds(5), RetryLimit = 3,
        };

        await using (var alice = new KeelClient(Options(appCertificate, "alice", "alicepw")))
        {
            // Six puts and reads: round-robin takes them to every member, each authenticating alice on its own.
            var firstRevision = 0L;
            for (var i = 0; i < 6; i++)
            {
                var put = await alice.PutAsync($"app/k{i}", $"v{i}");
                if (i == 0) firstRevision = put.Revision;
                Assert.Equal($"v{i}", (await alice.GetAsync($"app/k{i}"))?.Value);
            }
            // A watch (a stream) carries the token too.
            using var watching = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var watch = alice.WatchAsync("app/", new WatchOptions { Prefix = true, StartRevision = firstRevision }, watching.Token).GetAsyncEnumerator(watching.Token);
            Assert.True(await watch.MoveNextAsync());
            Assert.Equal("app/k0", watch.Current.Kv.Key);
            await watch.DisposeAsync();
            var denied = await Assert.ThrowsAsync<KeelClientException>(() => alice.GetAsync("secret/key"));
            Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
            Assert.Equal("etcdserver: permission denied", denied.Detail);
            Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<KeelClientException>(() => alice.PutAsync("secret/key", "stolen"))).StatusCode);
        }

        await using (var wrong = new KeelClient(Options(appCertificate, "alice", "wrong")))
        {
            var refused = await Assert.ThrowsAsync<KeelClientException>(() => wrong.GetAsync("app/k0"));
            Assert.Contains("etcdserver: authentication failed, invalid user ID or password", refused.Message);
        }

        // No client certificate: the TLS handshake is refused, nothing is read.
        await using (var anonymous = new KeelClient(Options(null, "alice", "alicepw")))
            await Assert.ThrowsAsync<KeelClientException>(() => anonymous.GetAsync("app/k0"));

        // A certificate user: no username, the certificate's CN is the user.
        await using (var reporter = new KeelClient(Options(certUser, null, null)))
        {
            Assert.Equal("v0", (await reporter.GetAsync("app/k0"))?.Value);
            Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<KeelClientException>(() => reporter.GetAsync("secret/key"))).StatusCode);
        }
    }
}
