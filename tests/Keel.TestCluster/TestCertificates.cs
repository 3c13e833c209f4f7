using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Keel.TestCluster;

/// <summary>
/// A throwaway certificate authority for TLS tests, made with <see cref="CertificateRequest"/> (no openssl): ECDSA
/// P-256 keys, certificates written as PEM files the way etcd's flags expect them.
/// </summary>
public sealed class TestCertificateAuthority : IDisposable
{
    private readonly ECDsa _key;

    private TestCertificateAuthority(string name, string directory, ECDsa key, X509Certificate2 certificate)
    {
        Name = name;
        Directory = directory;
        _key = key;
        Certificate = certificate;
        CaFile = Path.Combine(directory, $"{name}-ca.pem");
        File.WriteAllText(CaFile, certificate.ExportCertificatePem());
    }

    /// <summary>The CA's name (its CN and file prefix).</summary>
    public string Name { get; }

    /// <summary>Where its files are written.</summary>
    public string Directory { get; }

    /// <summary>The self-signed CA certificate.</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The CA certificate as PEM (for <c>--trusted-ca-file</c> and <c>--cacert</c>).</summary>
    public string CaFile { get; }

    /// <summary>Creates a CA valid from an hour ago for a day and writes its certificate into <paramref name="directory"/>.</summary>
    public static TestCertificateAuthority Create(string name, string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        return new TestCertificateAuthority(name, directory, key, request.CreateSelfSigned(now.AddHours(-1), now.AddDays(1)));
    }

    /// <summary>
    /// Issues a certificate for <paramref name="commonName"/> valid for 127.0.0.1 and localhost, usable by servers and
    /// clients, and writes <c>{fileName}.pem</c> and <c>{fileName}-key.pem</c>.
    /// </summary>
    /// <param name="commonName">The subject CN (the user for etcd's certificate auth, the peer name for --peer-cert-allowed-cn).</param>
    /// <param name="fileName">The file prefix.</param>
    /// <param name="validDays">Days until it expires (distinguishes rotated certificates).</param>
    public IssuedCertificate Issue(string commonName, string fileName, int validDays = 1)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, true, false));
        var serial = RandomNumberGenerator.GetBytes(12);
        serial[0] &= 0x7F;
        var now = DateTimeOffset.UtcNow;
        using var issued = request.Create(Certificate.SubjectName, X509SignatureGenerator.CreateForECDsa(_key), now.AddHours(-1), now.AddDays(validDays), serial);
        var certFile = Path.Combine(Directory, $"{fileName}.pem");
        var keyFile = Path.Combine(Directory, $"{fileName}-key.pem");
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem());
        File.WriteAllText(certFile, issued.ExportCertificatePem());
        return new IssuedCertificate(certFile, keyFile, issued.SerialNumber, issued.NotAfter.ToUniversalTime());
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _key.Dispose();
        Certificate.Dispose();
    }
}

/// <summary>A certificate issued by a <see cref="TestCertificateAuthority"/>.</summary>
/// <param name="CertFile">PEM certificate.</param>
/// <param name="KeyFile">PEM PKCS#8 private key.</param>
/// <param name="SerialNumber">Its serial number (hex, as <see cref="X509Certificate2.SerialNumber"/>).</param>
/// <param name="NotAfter">When it expires (UTC).</param>
public sealed record IssuedCertificate(string CertFile, string KeyFile, string SerialNumber, DateTime NotAfter);
