using System.Net.Security;

namespace Keel.Server.Security;

/// <summary>
/// The TLS settings of one surface (clients or peers), named after etcd's flags: <c>--cert-file</c>,
/// <c>--key-file</c>, <c>--trusted-ca-file</c>, <c>--client-cert-auth</c>, <c>--auto-tls</c> (and their
/// <c>--peer-</c> twins, plus <c>--peer-cert-allowed-cn</c>). TLS is used on the URLs whose scheme is
/// <c>https</c>; these settings say with which certificate and whom to trust.
/// </summary>
public sealed record TlsSettings
{
    /// <summary>PEM certificate (the leaf first, then any intermediates) this side presents.</summary>
    public string? CertFile { get; init; }

    /// <summary>PEM private key of <see cref="CertFile"/>.</summary>
    public string? KeyFile { get; init; }

    /// <summary>PEM CA bundle that signs the certificates this side accepts from the other side.</summary>
    public string? TrustedCaFile { get; init; }

    /// <summary>Require the other side (the client of a connection) to present a certificate signed by <see cref="TrustedCaFile"/>.</summary>
    public bool ClientCertAuth { get; init; }

    /// <summary>Without <see cref="CertFile"/>, generate a self-signed certificate into the data directory (development only: no authentication).</summary>
    public bool AutoTls { get; init; }

    /// <summary>When set, a certificate of the other side must carry exactly this common name (<c>--peer-cert-allowed-cn</c>).</summary>
    public string? AllowedCn { get; init; }

    /// <summary>The TLS 1.2 cipher suites allowed (<c>--cipher-suites</c>); empty leaves the platform's defaults.</summary>
    public IReadOnlyList<TlsCipherSuite> CipherSuites { get; init; } = [];

    /// <summary>True when a certificate is configured or generated, so https URLs can be served.</summary>
    public bool HasCertificate => CertFile is not null || AutoTls;
}
