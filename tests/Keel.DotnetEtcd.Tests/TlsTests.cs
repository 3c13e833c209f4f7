using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using dotnet_etcd;
using Grpc.Core;
using Keel.TestCluster;

namespace Keel.DotnetEtcd.Tests;

/// <summary>
/// dotnet-etcd over TLS with a client certificate against a member started with <c>--client-cert-auth</c>: it writes
/// and reads; the same client without its certificate is refused. Passes against etcd 3.4 too.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class TlsTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("keel-dotnet-etcd-tls-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_directory, recursive: true); }
        catch (IOException) { /* best effort: a temp directory */ }
    }

    private static EtcdClient Client(string url, X509Certificate2 ca, X509Certificate2? clientCertificate) =>
        new(url, configureChannelOptions: options =>
        {
            options.Credentials = ChannelCredentials.SecureSsl;
            var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true };
            handler.SslOptions.CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                CustomTrustStore = { ca },
                RevocationMode = X509RevocationMode.NoCheck,
            };
            if (clientCertificate is not null) handler.SslOptions.ClientCertificates = [clientCertificate];
            options.HttpHandler = handler;
        });

    [Fact(Timeout = 120_000)]
    public async Task Dotnet_etcd_with_a_client_certificate_writes_and_reads_and_without_one_is_refused()
    {
        using var authority = TestCertificateAuthority.Create("keel-test-ca", _directory);
        var server = authority.Issue("member", "server");
        var client = authority.Issue("client", "client");
        await using var cluster = await TestCluster.TestCluster.StartAsync(1, options: new TestClusterOptions
        {
            ClientScheme = "https",
            EtcdctlTls = new EtcdctlTls(authority.CaFile, client.CertFile, client.KeyFile),
            ExtraFlags = ["--cert-file", server.CertFile, "--key-file", server.KeyFile, "--trusted-ca-file", authority.CaFile, "--client-cert-auth"],
        });
        var url = cluster.ClientUrls[0];
        Assert.StartsWith("https://", url);
        using var clientCertificate = X509Certificate2.CreateFromPemFile(client.CertFile, client.KeyFile);

        using (var etcd = Client(url, authority.Certificate, clientCertificate))
        {
            await etcd.PutAsync("tls/key", "over-tls", deadline: Bounds.CallDeadline);
            Assert.Equal("over-tls", await etcd.GetValAsync("tls/key", deadline: Bounds.CallDeadline));
        }
        using (var anonymous = Client(url, authority.Certificate, clientCertificate: null))
        {
            var refused = await Assert.ThrowsAsync<RpcException>(() => anonymous.GetValAsync("tls/key", deadline: Bounds.CallDeadline));
            // The server drops the handshake of a client without a certificate. Under TLS 1.3 the client learns it either
            // while connecting (Unavailable) or on the first read of the HTTP/2 connection after its own handshake finished
            // (Internal); both are a refused connection, never an answer.
            Assert.True(refused.StatusCode is StatusCode.Unavailable or StatusCode.Internal, $"refused with {refused.StatusCode}: {refused.Status.Detail}");
        }
    }
}
