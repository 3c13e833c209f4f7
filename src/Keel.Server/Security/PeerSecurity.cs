namespace Keel.Server.Security;

/// <summary>
/// How peers authenticate each other (docs/security.md, "Peer authentication"): TLS on <c>https</c> peer URLs with the
/// peer certificate and CA, and the cluster secret proved in the hello. Either, both or (with a warning at startup)
/// neither.
/// </summary>
/// <param name="Tls">Peer TLS (<c>--peer-cert-file</c>, <c>--peer-auto-tls</c>, ...), or null.</param>
/// <param name="Secret">The cluster secret (<c>--peer-secret-file</c>), or null.</param>
public sealed record PeerSecurity(TlsContext? Tls, PeerSecret? Secret)
{
    /// <summary>No TLS and no secret: anyone reaching the peer port can talk Raft.</summary>
    public static readonly PeerSecurity None = new(null, null);
}
