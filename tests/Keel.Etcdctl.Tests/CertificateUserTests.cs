using Keel.TestCluster;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// Certificate users (etcd's CN-based authentication) with the unmodified etcdctl 3.4 over mutual TLS: with
/// <c>--client-cert-auth</c> and no <c>--user</c>, the client certificate's common name is the user. Root administers
/// through its certificate alone, a user added with <c>--no-password</c> is confined to its prefix, a certificate whose
/// CN names no user is refused, and a password still authenticates beside the certificate. Also run against etcd 3.4
/// with <c>KEEL_TEST_SERVER=etcd</c>, which proves the expectations.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class CertificateUserTests : IDisposable
{
    private readonly TempDirectory _temp = new("keel-cn-");

    private string TempPath => _temp.Path;

    public void Dispose() => _temp.Dispose();

    [Fact(Timeout = 180_000)]
    public async Task The_client_certificate_common_name_is_the_user_when_no_password_is_given()
    {
        using var ca = TestCertificateAuthority.Create("keel-test-ca", TempPath);
        var server = ca.Issue("member", "server");
        var rootCertificate = ca.Issue("root", "root-client");
        var aliceCertificate = ca.Issue("alice", "alice-client");
        var strangerCertificate = ca.Issue("mallory", "mallory-client");
        var asRoot = new EtcdctlTls(ca.CaFile, rootCertificate.CertFile, rootCertificate.KeyFile);
        await using var cluster = await TestCluster.TestCluster.StartAsync(1, options: new TestClusterOptions
        {
            ClientScheme = "https",
            EtcdctlTls = asRoot,
            ExtraFlags = ["--cert-file", server.CertFile, "--key-file", server.KeyFile, "--trusted-ca-file", ca.CaFile,
                "--client-cert-auth", "--bcrypt-cost", "4"],
        });
        var root = cluster.Etcdctl();
        var alice = new TestCluster.Etcdctl(cluster.ClientUrls, tls: asRoot with { CertFile = aliceCertificate.CertFile, KeyFile = aliceCertificate.KeyFile });
        var mallory = new TestCluster.Etcdctl(cluster.ClientUrls, tls: asRoot with { CertFile = strangerCertificate.CertFile, KeyFile = strangerCertificate.KeyFile });

        Assert.Equal(["User root created"], await root.LinesAsync("user", "add", "root:rootpw"));
        Assert.Equal(["Authentication Enabled"], await root.LinesAsync("auth", "enable"));

        // From here on every call of `root` carries no token: the server takes the user from the certificate's CN.
        Assert.Equal(["Role app created"], await root.LinesAsync("role", "add", "app"));
        Assert.Equal(["Role app updated"], await root.LinesAsync("role", "grant-permission", "app", "readwrite", "app/", "--prefix=true"));
        Assert.Equal(["User alice created"], await root.LinesAsync("user", "add", "alice", "--no-password"));
        Assert.Equal(["Role app is granted to user alice"], await root.LinesAsync("user", "grant-role", "alice", "app"));
        await root.PutAsync("secret/key", "root-only");
        Assert.Equal(["secret/key", "root-only"], await root.LinesAsync("get", "secret/key"));

        await alice.PutAsync("app/config", "v1");
        Assert.Equal(["app/config", "v1"], await alice.LinesAsync("get", "app/", "--prefix"));
        var deniedRead = await alice.RunAsync("get", "secret/key");
        Assert.NotEqual(0, deniedRead.ExitCode);
        Assert.Contains("etcdserver: permission denied", deniedRead.StandardError);
        Assert.DoesNotContain("root-only", deniedRead.StandardOutput);
        Assert.Contains("etcdserver: permission denied", (await alice.RunAsync("put", "secret/key", "stolen")).StandardError);
        Assert.Contains("etcdserver: permission denied", (await alice.RunAsync("user", "list")).StandardError);
        // A user without a password cannot authenticate with one: only its certificate speaks for it (etcd 3.4 text).
        var passwordless = await alice.As("alice", "guess").RunAsync("get", "app/config");
        Assert.NotEqual(0, passwordless.ExitCode);
        Assert.Contains("auth: authentication failed, password was given for no password user", passwordless.StandardError);

        // A certificate from the trusted CA whose CN names no user reaches nothing.
        var stranger = await mallory.RunAsync("get", "app/config");
        Assert.NotEqual(0, stranger.ExitCode);
        Assert.Contains("etcdserver: permission denied", stranger.StandardError);
        Assert.DoesNotContain("v1", stranger.StandardOutput);

        // A password given beside a certificate wins over the CN (etcd takes the token first): mallory's certificate
        // with root's password is root.
        Assert.Equal(["secret/key", "root-only"], await mallory.As("root", "rootpw").LinesAsync("get", "secret/key"));

        Assert.Equal(["Authentication Disabled"], await root.LinesAsync("auth", "disable"));
        Assert.Equal(["secret/key", "root-only"], await mallory.LinesAsync("get", "secret/key"));
    }
}
