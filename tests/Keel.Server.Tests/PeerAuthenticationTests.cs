using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Keel.Raft;
using Keel.Server.Peers;
using Keel.Server.Security;
using Keel.TestCluster;
using Microsoft.Extensions.Logging.Abstractions;

namespace Keel.Server.Tests;

/// <summary>
/// Peer authentication on real loopback sockets: with the cluster secret, a dialer that proves it delivers messages and
/// one with another secret is refused (counted, nothing delivered); with peer mutual TLS, a dialer with a certificate
/// from another CA, one with a CN that is not allowed, and a plaintext dialer are refused the same way.
/// </summary>
public sealed class PeerAuthenticationTests : IDisposable
{
    private const ulong Self = 0xA1, Member = 0xB2, Intruder = 0xD4, Cluster = 0xC3;
    private readonly string _directory = Directory.CreateTempSubdirectory("keel-peer-auth-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_directory, recursive: true); }
        catch (IOException) { /* best effort: a temp directory */ }
    }

    private static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    private static async Task PollAsync(Func<bool> condition, TimeSpan within, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > within) throw new TimeoutException($"not {what} within {within.TotalSeconds:F0} s");
            await Task.Delay(10);
        }
    }

    private static Message Heartbeat(ulong from) => new() { Type = MessageType.Heartbeat, From = from, To = Self, Term = 1 };

    private TlsContext Tls(IssuedCertificate certificate, string caFile, string? allowedCn = null) =>
        TlsContext.Create("peer", new TlsSettings
        {
            CertFile = certificate.CertFile,
            KeyFile = certificate.KeyFile,
            TrustedCaFile = caFile,
            ClientCertAuth = true,
            AllowedCn = allowedCn,
        }, Path.Combine(_directory, "auto"), ["127.0.0.1"], NullLogger.Instance)!;

    [Fact]
    public async Task OnlyADialerThatProvesTheClusterSecretIsHeard()
    {
        var secret = PeerSecret.FromBytes("the cluster secret, 32 bytes...."u8);
        var other = PeerSecret.FromBytes("another cluster's secret, 32 b.."u8);
        var port = FreePort();
        var received = new ConcurrentQueue<Message>();
        await using var listener = new PeerTransport(Self, Cluster, [new Uri($"http://127.0.0.1:{port}")], received.Enqueue, NullLogger.Instance,
            security: new PeerSecurity(null, secret));
        listener.Start();
        await using var member = new PeerTransport(Member, Cluster, [new Uri($"http://127.0.0.1:{FreePort()}")], _ => { }, NullLogger.Instance,
            security: new PeerSecurity(null, secret));
        await using var intruder = new PeerTransport(Intruder, Cluster, [new Uri($"http://127.0.0.1:{FreePort()}")], _ => { }, NullLogger.Instance,
            security: new PeerSecurity(null, other));
        await using var open = new PeerTransport(Intruder + 1, Cluster, [new Uri($"http://127.0.0.1:{FreePort()}")], _ => { }, NullLogger.Instance);
        member.SetPeer(Self, [new Uri($"http://127.0.0.1:{port}")]);
        intruder.SetPeer(Self, [new Uri($"http://127.0.0.1:{port}")]);
        open.SetPeer(Self, [new Uri($"http://127.0.0.1:{port}")]);

        await PollAsync(() => listener.ConnectionsRefusedByReason.GetValueOrDefault("secret") >= 4, TimeSpan.FromSeconds(10), "both intruders refused twice");
        await PollAsync(() => member.PeerStatistics()[0].Connected, TimeSpan.FromSeconds(10), "the member connected");
        member.Send(Heartbeat(Member));
        intruder.Send(Heartbeat(Intruder));
        open.Send(Heartbeat(Intruder + 1));
        await PollAsync(() => received.Any(m => m.From == Member), TimeSpan.FromSeconds(10), "the member's heartbeat delivered");
        Assert.All(received, m => Assert.Equal(Member, m.From));
        Assert.False(intruder.PeerStatistics()[0].Connected);
        Assert.Equal(0, listener.FramesReceived - received.Count);
    }

    [Fact]
    public async Task WithPeerMutualTlsOnlyCertificatesOfThePeerCaWithTheAllowedCnAreHeard()
    {
        using var ca = TestCertificateAuthority.Create("peer-ca", _directory);
        using var otherCa = TestCertificateAuthority.Create("other-ca", _directory);
        var listenerCert = ca.Issue("member", "listener");
        var memberCert = ca.Issue("member", "member");
        var wrongCn = ca.Issue("intruder", "wrong-cn");
        var foreign = otherCa.Issue("member", "foreign");
        var port = FreePort();
        var target = new Uri($"https://127.0.0.1:{port}");
        var received = new ConcurrentQueue<Message>();
        await using var listener = new PeerTransport(Self, Cluster, [target], received.Enqueue, NullLogger.Instance,
            security: new PeerSecurity(Tls(listenerCert, ca.CaFile, allowedCn: "member"), null));
        listener.Start();
        // Intruders know the public CA certificate (so they accept the listener's) but hold no certificate signed by it
        // with the allowed CN.
        await using var foreignDialer = new PeerTransport(Intruder, Cluster, [new Uri($"https://127.0.0.1:{FreePort()}")], _ => { }, NullLogger.Instance,
            security: new PeerSecurity(Tls(foreign, ca.CaFile), null));
        await using var wrongCnDialer = new PeerTransport(Intruder + 1, Cluster, [new Uri($"https://127.0.0.1:{FreePort()}")], _ => { }, NullLogger.Instance,
            security: new PeerSecurity(Tls(wrongCn, ca.CaFile), null));
        await using var plaintextDialer = new PeerTransport(Intruder + 2, Cluster, [new Uri($"http://127.0.0.1:{FreePort()}")], _ => { }, NullLogger.Instance);
        await using var member = new PeerTransport(Member, Cluster, [new Uri($"https://127.0.0.1:{FreePort()}")], _ => { }, NullLogger.Instance,
            security: new PeerSecurity(Tls(memberCert, ca.CaFile), null));
        foreignDialer.SetPeer(Self, [target]);
        wrongCnDialer.SetPeer(Self, [target]);
        plaintextDialer.SetPeer(Self, [new Uri($"http://127.0.0.1:{port}")]);
        member.SetPeer(Self, [target]);

        await PollAsync(() => listener.ConnectionsRefusedByReason.GetValueOrDefault("untrusted-certificate") >= 2
                              && listener.ConnectionsRefusedByReason.GetValueOrDefault("cn-not-allowed") >= 2
                              && listener.ConnectionsRefusedByReason.GetValueOrDefault("tls-handshake") >= 2,
            TimeSpan.FromSeconds(15), $"every intruder refused twice ({string.Join(", ", listener.ConnectionsRefusedByReason)})");
        await PollAsync(() => member.PeerStatistics()[0].Connected, TimeSpan.FromSeconds(10), "the member connected over TLS");
        foreignDialer.Send(Heartbeat(Intruder));
        wrongCnDialer.Send(Heartbeat(Intruder + 1));
        plaintextDialer.Send(Heartbeat(Intruder + 2));
        member.Send(Heartbeat(Member));
        await PollAsync(() => received.Any(m => m.From == Member), TimeSpan.FromSeconds(10), "the member's heartbeat delivered");
        Assert.All(received, m => Assert.Equal(Member, m.From));
        Assert.False(foreignDialer.PeerStatistics()[0].Connected);
        Assert.False(wrongCnDialer.PeerStatistics()[0].Connected);
        Assert.False(plaintextDialer.PeerStatistics()[0].Connected);
    }

    [Fact]
    public void UnknownCipherSuiteNamesAreRefusedWithTheName()
    {
        Assert.Equal([System.Net.Security.TlsCipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, System.Net.Security.TlsCipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256],
            CipherSuiteNames.Parse("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"));
        var error = Assert.Throws<ArgumentException>(() => CipherSuiteNames.Parse("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_NOT_A_SUITE"));
        Assert.Contains("'TLS_NOT_A_SUITE'", error.Message);
        Assert.Empty(CipherSuiteNames.Parse(""));
    }
}
