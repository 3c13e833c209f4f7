using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Keel.Server.Security;

/// <summary>
/// <c>--auto-tls</c> and <c>--peer-auto-tls</c>: a self-signed certificate generated into the data directory (etcd's
/// <c>fixtures/client</c> and <c>fixtures/peer</c>) on first start and reused afterwards. For development only: it
/// encrypts, but nobody can verify it, so it authenticates no one.
/// </summary>
public static class SelfSignedCertificate
{
    /// <summary>How long a generated certificate is valid (etcd: one year).</summary>
    public static readonly TimeSpan Validity = TimeSpan.FromDays(365);

    /// <summary>
    /// Returns the certificate and key files under <paramref name="directory"/>, generating them if absent, valid for
    /// <paramref name="hosts"/> (IP addresses or DNS names) and localhost.
    /// </summary>
    public static (string CertFile, string KeyFile) Ensure(string directory, IEnumerable<string> hosts)
    {
        Directory.CreateDirectory(directory);
        var certFile = Path.Combine(directory, "cert.pem");
        var keyFile = Path.Combine(directory, "key.pem");
        if (File.Exists(certFile) && File.Exists(keyFile)) return (certFile, keyFile);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=keel-auto-tls, O=keel", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        foreach (var host in hosts.Append("localhost").Append("127.0.0.1").Distinct(StringComparer.OrdinalIgnoreCase))
        {
            if (IPAddress.TryParse(host.Trim('[', ']'), out var address)) names.AddIpAddress(address);
            else names.AddDnsName(host);
        }
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false));
        var now = DateTimeOffset.UtcNow;
        using var certificate = request.CreateSelfSigned(now.AddHours(-1), now.Add(Validity));
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(certFile, certificate.ExportCertificatePem());
        return (certFile, keyFile);
    }
}
