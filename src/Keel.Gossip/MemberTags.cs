using System.Text;

namespace Keel.Gossip;

/// <summary>
/// Per-member metadata gossiped with a member's alive claim: zone, role, software version and a load figure, the tags
/// Consul and Cassandra spread by gossip. Bounded in size (memberlist's <c>MetaMaxSize</c> is 512 bytes) so one member
/// cannot bloat every packet; versioned by the member's incarnation (changing them raises it, as memberlist does).
/// </summary>
public sealed record MemberTags
{
    /// <summary>The largest encoded size of a tag set (memberlist's <c>MetaMaxSize</c>).</summary>
    public const int MaxEncodedBytes = 512;

    /// <summary>Creates a tag set.</summary>
    /// <exception cref="MetadataTooLargeException">A field is over 255 UTF-8 bytes or the whole is over <see cref="MaxEncodedBytes"/>.</exception>
    public MemberTags(string zone, string role, string version, int load)
    {
        Zone = zone ?? "";
        Role = role ?? "";
        Version = version ?? "";
        Load = load;
        foreach (var field in new[] { Zone, Role, Version })
            if (Encoding.UTF8.GetByteCount(field) > byte.MaxValue)
                throw new MetadataTooLargeException($"tag '{field[..Math.Min(field.Length, 16)]}...' is over {byte.MaxValue} UTF-8 bytes");
        EncodedSize = 3 + Encoding.UTF8.GetByteCount(Zone) + Encoding.UTF8.GetByteCount(Role) + Encoding.UTF8.GetByteCount(Version) + 4;
        if (EncodedSize > MaxEncodedBytes)
            throw new MetadataTooLargeException($"tags encode to {EncodedSize} bytes; the limit is {MaxEncodedBytes}");
    }

    /// <summary>Availability zone or rack.</summary>
    public string Zone { get; }

    /// <summary>Role (server, agent, ...).</summary>
    public string Role { get; }

    /// <summary>Software version.</summary>
    public string Version { get; }

    /// <summary>An application-defined load figure (e.g. permille CPU).</summary>
    public int Load { get; }

    /// <summary>Bytes this tag set takes on the wire.</summary>
    public int EncodedSize { get; }
}

/// <summary>Member tags were larger than the gossip protocol allows (<see cref="MemberTags.MaxEncodedBytes"/>).</summary>
public sealed class MetadataTooLargeException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    public MetadataTooLargeException(string message) : base(message) { }
}
