using System.Net;
using System.Net.Sockets;

namespace Keel.Gossip.Hosting;

/// <summary>
/// Maps a member id to its UDP endpoint and back: the id of a member is its IPv4 address and port (plus a marker bit so
/// it is never 0). Deriving the id from the address means a seed address is enough to address the seed's core, no
/// address needs to be gossiped, and a member restarted at the same address is the same member, which SWIM expects:
/// it refutes its own "dead" or "left" record by raising its incarnation (memberlist names nodes by host name for the
/// same reason).
/// </summary>
public static class GossipAddress
{
    private const ulong Marker = 1UL << 48;

    /// <summary>The member id of <paramref name="endpoint"/>.</summary>
    /// <exception cref="ArgumentException">The endpoint is not IPv4 (IPv4-mapped IPv6 is accepted).</exception>
    public static ulong IdOf(IPEndPoint endpoint)
    {
        var address = endpoint.Address.IsIPv4MappedToIPv6 ? endpoint.Address.MapToIPv4() : endpoint.Address;
        if (address.AddressFamily != AddressFamily.InterNetwork)
            throw new ArgumentException($"gossip agents use IPv4 endpoints; got {endpoint}", nameof(endpoint));
        Span<byte> bytes = stackalloc byte[4];
        address.TryWriteBytes(bytes, out _);
        var ip = (ulong)bytes[0] << 24 | (ulong)bytes[1] << 16 | (ulong)bytes[2] << 8 | bytes[3];
        return Marker | ip << 16 | (ushort)endpoint.Port;
    }

    /// <summary>The endpoint of member <paramref name="id"/>.</summary>
    /// <exception cref="ArgumentException">The id was not made by <see cref="IdOf"/>.</exception>
    public static IPEndPoint EndpointOf(ulong id)
    {
        if ((id >> 48) != 1) throw new ArgumentException($"member id 0x{id:x} is not an address-derived id", nameof(id));
        var ip = (id >> 16) & 0xFFFF_FFFF;
        var address = new IPAddress(new[] { (byte)(ip >> 24), (byte)(ip >> 16), (byte)(ip >> 8), (byte)ip });
        return new IPEndPoint(address, (int)(id & 0xFFFF));
    }

    /// <summary>True when <paramref name="id"/> was made by <see cref="IdOf"/>.</summary>
    public static bool IsAddressId(ulong id) => (id >> 48) == 1;
}
