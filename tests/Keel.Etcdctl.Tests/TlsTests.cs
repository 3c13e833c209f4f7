using System.Diagnostics;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Keel.TestCluster;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// TLS with etcd's flags on real members, driven by the unmodified etcdctl 3.4 with <c>--cacert --cert --key</c>: a
/// 3-member cluster with client and peer mutual TLS serves etcdctl, refuses a client without a certificate and a
/// plaintext one, and (Keel) refuses a peer whose certificate comes from another CA before it can send a byte of Raft,
/// counting it; a certificate rotated on disk is served to the next connection without a restart. The same tests
/// run against etcd 3.4 with <c>KEEL_TEST_SERVER=etcd</c> (the Keel-only metric check is skipped there).
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class TlsTests : IDisposable
{
    private readonly TempDirectory _temp = new("keel-tls-");

    private string TempPath => _temp.Path;

    public void Dispose() => _temp.Dispose();

    private static string[] ClientTlsFlags(IssuedCertificate server, string caFile) =>
        ["--cert-file", server.CertFile, "--key-file", server.KeyFile, "--trusted-ca-file", caFile, "--client-cert-auth"];

    private static string[] PeerTlsFlags(IssuedCertificate peer, string caFile) =>
        ["--peer-cert-file", peer.CertFile, "--peer-key-file", peer.KeyFile, "--peer-trusted-ca-file", caFile, "--peer-client-cert-auth",
         "--peer-cert-allowed-cn", "member"];

    [Fact(Timeout = 180_000)]
    public async Task Three_members_with_client_and_peer_mutual_tls_serve_etcdctl_and_refuse_the_rest()
    {
        using var ca = TestCertificateAuthority.Create("keel-test-ca", TempPath);
        using var otherCa = TestCertificateAuthority.Create("other-ca", TempPath);
        var member = ca.Issue("member", "member");
        var client = ca.Issue("client", "client");
        var foreign = otherCa.Issue("member", "foreign");
        var metricsPorts = FreePorts.Reserve(3);
        var tls = new EtcdctlTls(ca.CaFile, client.CertFile, client.KeyFile);
        await using var cluster = await TestCluster.TestCluster.StartAsync(3, options: new TestClusterOptions
        {
            ClientScheme = "https",
            PeerScheme = "https",
            EtcdctlTls = tls,
            ExtraFlags = [.. ClientTlsFlags(member, ca.CaFile), .. PeerTlsFlags(member, ca.CaFile),
                "--cipher-suites", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"],
            EnvironmentOf = (index, _) => new Dictionary<string, string> { ["KEEL_LISTEN_METRICS_URLS"] = $"http://127.0.0.1:{metricsPorts[index]}" },
        });

        var ctl = cluster.Etcdctl();
        Assert.All(cluster.ClientUrls, url => Assert.StartsWith("https://", url));
        (await cluster.Etcdctl(0).RunAsync("put", "/tls/a", "secret-value")).EnsureSuccess();
        Assert.Equal(["/tls/a", "secret-value"], (await cluster.Etcdctl(2).RunAsync("get", "/tls/a")).EnsureSuccess().OutputLines);
        var health = (await ctl.RunAsync("endpoint", "health", "--cluster")).EnsureSuccess();
        Assert.Equal(3, health.StandardError.Split('\n').Count(l => l.Contains("is healthy")) + health.StandardOutput.Split('\n').Count(l => l.Contains("is healthy")));

        // The CA alone (no client certificate), and plaintext on the TLS port: both refused.
        var noCertificate = await new TestCluster.Etcdctl([cluster.ClientUrls[0]], tls: tls with { CertFile = null, KeyFile = null })
            .RunAsync("get", "/tls/a", "--command-timeout=3s");
        Assert.NotEqual(0, noCertificate.ExitCode);
        Assert.DoesNotContain("secret-value", noCertificate.StandardOutput);
        var plaintext = await new TestCluster.Etcdctl([cluster.ClientUrls[0].Replace("https://", "http://")])
            .RunAsync("get", "/tls/a", "--command-timeout=3s");
        Assert.NotEqual(0, plaintext.ExitCode);
        Assert.DoesNotContain("secret-value", plaintext.StandardOutput);

        // A peer with a certificate from another CA (it knows the public CA, so it accepts the member's certificate)
        // does not get past the handshake: the member never sends it the hello's challenge.
        var peerUri = new Uri(cluster.Members[0].PeerUrl);
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var answered = await ForeignPeerGetsAnAnswerAsync(peerUri, foreign, ca.CaFile);
            Assert.False(answered, "a peer with a foreign certificate got an answer from the peer port");
        }
        if (cluster.Kind == ServerKind.Keel)
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            var refused = 0.0;
            var clock = Stopwatch.StartNew();
            while (refused < 2 && clock.Elapsed < TimeSpan.FromSeconds(20))
            {
                // The metrics reader exports about once a second: poll for the count with a bound.
                var metrics = await http.GetStringAsync($"http://127.0.0.1:{metricsPorts[0]}/metrics");
                refused = metrics.Split('\n')
                    .Where(l => l.StartsWith("keel_peer_connections_refused_total{", StringComparison.Ordinal) && l.Contains("reason=\"untrusted-certificate\""))
                    .Select(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture))
                    .DefaultIfEmpty(0).Sum();
                if (refused < 2) await Task.Delay(200);
            }
            Assert.True(refused >= 2, $"keel_peer_connections_refused_total{{reason=\"untrusted-certificate\"}} is {refused}");
            Assert.Contains("refused (untrusted-certificate)", cluster.Members[0].Output.Text());
        }
        // The cluster is unharmed.
        (await ctl.RunAsync("put", "/tls/b", "still-writable")).EnsureSuccess();
    }

    [Fact(Timeout = 120_000)]
    public async Task A_certificate_rotated_on_disk_is_served_to_new_connections_without_a_restart()
    {
        using var ca = TestCertificateAuthority.Create("keel-test-ca", TempPath);
        var first = ca.Issue("member", "server", validDays: 1);
        var client = ca.Issue("client", "client");
        var tls = new EtcdctlTls(ca.CaFile, client.CertFile, client.KeyFile);
        await using var cluster = await TestCluster.TestCluster.StartAsync(1, options: new TestClusterOptions
        {
            ClientScheme = "https",
            EtcdctlTls = tls,
            ExtraFlags = ClientTlsFlags(first, ca.CaFile),
        });
        var url = new Uri(cluster.ClientUrls[0]);
        var served = await ServedCertificateAsync(url, client, ca.CaFile);
        Assert.Equal(first.SerialNumber, served.SerialNumber);

        // Rotate: a new certificate (new serial, a later expiry) replaces the files in place, key first, each by an
        // atomic rename, as cert-manager or a renewal job would.
        var second = ca.Issue("member", "server-next", validDays: 2);
        File.Move(second.KeyFile, first.KeyFile, overwrite: true);
        File.Move(second.CertFile, first.CertFile, overwrite: true);
        var clock = Stopwatch.StartNew();
        while (served.SerialNumber != second.SerialNumber && clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            await Task.Delay(100);
            served = await ServedCertificateAsync(url, client, ca.CaFile);
        }
        Assert.Equal(second.SerialNumber, served.SerialNumber);
        Assert.Equal(second.NotAfter, served.NotAfter.ToUniversalTime(), TimeSpan.FromSeconds(1));
        (await cluster.Etcdctl().RunAsync("put", "/tls/rotated", "yes")).EnsureSuccess();
        Assert.Equal(["/tls/rotated", "yes"], (await cluster.Etcdctl().RunAsync("get", "/tls/rotated")).EnsureSuccess().OutputLines);
        Assert.True(cluster.Members[0].IsRunning);
        Assert.Equal(1, cluster.Members[0].Incarnation);
    }

    [Fact(Timeout = 120_000)]
    public async Task Auto_tls_generates_certificates_into_the_data_directory_and_serves_with_them()
    {
        await using var cluster = await TestCluster.TestCluster.StartAsync(1, options: new TestClusterOptions
        {
            ClientScheme = "https",
            PeerScheme = "https",
            EtcdctlTls = new EtcdctlTls(null, null, null, InsecureSkipVerify: true),
            ExtraFlags = ["--auto-tls", "--peer-auto-tls"],
        });
        (await cluster.Etcdctl().RunAsync("put", "/tls/auto", "generated")).EnsureSuccess();
        Assert.Equal(["/tls/auto", "generated"], (await cluster.Etcdctl().RunAsync("get", "/tls/auto")).EnsureSuccess().OutputLines);
        var dataDir = cluster.Members[0].DataDirectory;
        Assert.True(File.Exists(Path.Combine(dataDir, "fixtures", "client", "cert.pem")));
        Assert.True(File.Exists(Path.Combine(dataDir, "fixtures", "peer", "cert.pem")));
        // Generated, so nobody can verify it: a client that checks the certificate refuses it.
        var verifying = await new TestCluster.Etcdctl(cluster.ClientUrls).RunAsync("get", "/tls/auto", "--command-timeout=3s");
        Assert.NotEqual(0, verifying.ExitCode);
    }

    [Fact(Timeout = 60_000)]
    public async Task An_unknown_cipher_suite_name_stops_the_start_with_the_name()
    {
        if (ServerSelection.FromEnvironment() != ServerKind.Keel) return; // etcd's message differs; the flag's meaning is the same
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in new[] { TestCluster.TestCluster.KeelDll, "serve", "--data-dir", Path.Combine(TempPath, "d"), "--cipher-suites", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_NOT_A_SUITE" })
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var stderr = process.StandardError.ReadToEndAsync(bound.Token);
        try
        {
            await process.WaitForExitAsync(bound.Token);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        Assert.Equal(2, process.ExitCode);
        Assert.Contains("--cipher-suites: unexpected TLS cipher suite 'TLS_NOT_A_SUITE'", await stderr);
    }

    private static X509Certificate2 LoadCa(string caFile)
    {
        var collection = new X509Certificate2Collection();
        collection.ImportFromPemFile(caFile);
        return collection[0];
    }

    // A fresh TLS connection (ALPN h2, as gRPC offers) and the certificate the server presented on it.
    private static async Task<X509Certificate2> ServedCertificateAsync(Uri url, IssuedCertificate client, string caFile)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(url.Host, url.Port);
        await using var ssl = new SslStream(tcp.GetStream());
        using var ca = LoadCa(caFile);
        var clientCertificate = X509Certificate2.CreateFromPemFile(client.CertFile, client.KeyFile);
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = url.Host,
            ApplicationProtocols = [SslApplicationProtocol.Http2],
            ClientCertificates = [clientCertificate],
            CertificateChainPolicy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, CustomTrustStore = { ca }, RevocationMode = X509RevocationMode.NoCheck },
        });
        Assert.Equal(SslApplicationProtocol.Http2, ssl.NegotiatedApplicationProtocol);
        return new X509Certificate2(ssl.RemoteCertificate!);
    }

    // Connects to a peer port with a certificate from another CA, sends a well-formed hello for member 1 and reports
    // whether anything came back (the challenge) before the connection closed.
    private static async Task<bool> ForeignPeerGetsAnAnswerAsync(Uri peer, IssuedCertificate foreign, string caFile)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(peer.Host, peer.Port);
        await using var ssl = new SslStream(tcp.GetStream());
        using var ca = LoadCa(caFile);
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = peer.Host,
                ClientCertificates = [X509Certificate2.CreateFromPemFile(foreign.CertFile, foreign.KeyFile)],
                CertificateChainPolicy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, CustomTrustStore = { ca }, RevocationMode = X509RevocationMode.NoCheck },
            }, bound.Token);
            var hello = new byte[21];
            BitConverter.GetBytes(0x4B45454Cu).CopyTo(hello, 0);
            hello[4] = 3;
            BitConverter.GetBytes(1UL).CopyTo(hello, 13);
            await ssl.WriteAsync(hello, bound.Token);
            var answer = new byte[16];
            return await ssl.ReadAsync(answer, bound.Token) > 0;
        }
        catch (Exception e) when (e is System.Security.Authentication.AuthenticationException or IOException)
        {
            return false;
        }
    }
}
