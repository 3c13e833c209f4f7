using System.Text;

namespace Keel.Server.Http2;

/// <summary>
/// Rewrites an HTTP/2 request header block whose <c>:authority</c> is a URL (<c>http://host:port</c>) to the plain
/// <c>host:port</c> Kestrel accepts. etcdctl 3.4 dials its per-endpoint commands (<c>endpoint status</c>, <c>hashkv</c>,
/// <c>defrag</c>, <c>move-leader</c>) with the endpoint text as gRPC target, so the whole URL arrives as
/// <c>:authority</c>; grpc-go servers take any authority, Kestrel resets the stream as an invalid Host.
/// </summary>
/// <remarks>
/// One instance per connection: it mirrors the client's HPACK dynamic table (RFC 7541 §4) to know what indexed
/// names stand for. Only a literal <c>:authority</c> field is re-encoded (same representation, the value as a plain
/// string); every other field keeps its bytes. When the client's encoder inserted the URL into its table, Kestrel's
/// table gets the shorter <c>host:port</c> instead: entries are only ever smaller on Kestrel's side, so Kestrel evicts no
/// entry before the client does and every index the client sends still names the same (rewritten) entry.
/// </remarks>
internal sealed class HpackAuthorityRewriter(int maxTableSizeBytes)
{
    private static readonly byte[] Authority = ":authority"u8.ToArray();

    // RFC 7541 Appendix A: the names of static table entries 1..61 (their values are never needed here).
    private static readonly byte[][] StaticNames =
    [
        .. new[]
        {
            ":authority", ":method", ":method", ":path", ":path", ":scheme", ":scheme", ":status", ":status", ":status",
            ":status", ":status", ":status", ":status", "accept-charset", "accept-encoding", "accept-language",
            "accept-ranges", "accept", "access-control-allow-origin", "age", "allow", "authorization", "cache-control",
            "content-disposition", "content-encoding", "content-language", "content-length", "content-location",
            "content-range", "content-type", "cookie", "date", "etag", "expect", "expires", "from", "host", "if-match",
            "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified", "link", "location",
            "max-forwards", "proxy-authenticate", "proxy-authorization", "range", "referer", "refresh", "retry-after",
            "server", "set-cookie", "strict-transport-security", "transfer-encoding", "user-agent", "vary", "via",
            "www-authenticate",
        }.Select(Encoding.ASCII.GetBytes),
    ];

    // The client's view of the dynamic table, newest first: each entry's name and its size (name + value + 32).
    private readonly LinkedList<(byte[] Name, int Size)> _table = new();
    private readonly int _maxAllowedBytes = maxTableSizeBytes;
    private int _maxBytes = maxTableSizeBytes;
    private int _bytes;

    /// <summary>The size of the client's dynamic table as this mirror counts it (RFC 7541 §4.1).</summary>
    internal int DynamicTableBytes => _bytes;

    /// <summary>Authorities rewritten so far on this connection.</summary>
    public int Rewritten { get; private set; }

    /// <summary>
    /// Reads one complete header block; returns a rewritten block when its <c>:authority</c> was a URL, or null when
    /// the block can be forwarded as it is. The dynamic table mirror advances either way.
    /// </summary>
    /// <exception cref="HpackException">The block is not valid HPACK (the caller stops rewriting: Kestrel will refuse it).</exception>
    public byte[]? Rewrite(ReadOnlySpan<byte> block)
    {
        List<byte>? output = null;
        var copied = 0;
        var position = 0;
        while (position < block.Length)
        {
            var start = position;
            var first = block[position];
            if ((first & 0x80) != 0)
            {
                // Indexed field: nothing to change (a URL authority never reaches Kestrel's table).
                _ = NameAt(ReadInteger(block, ref position, 7));
                continue;
            }
            if ((first & 0xE0) == 0x20)
            {
                var size = ReadInteger(block, ref position, 5);
                if (size > _maxAllowedBytes) throw new HpackException($"dynamic table size update to {size} exceeds {_maxAllowedBytes}");
                _maxBytes = size;
                Evict(0);
                continue;
            }
            var indexing = (first & 0xC0) == 0x40;
            var prefixBits = indexing ? 6 : 4;
            var representation = (byte)(first & (indexing ? 0xC0 : 0xF0));
            var nameIndex = ReadInteger(block, ref position, prefixBits);
            var nameStart = position;
            var name = nameIndex == 0 ? ReadString(block, ref position) : NameAt(nameIndex);
            var nameEnd = position;
            var value = ReadString(block, ref position);
            if (indexing) Insert(name, value.Length);
            if (!name.AsSpan().SequenceEqual(Authority) || HostPort(value) is not { } hostPort) continue;

            output ??= new List<byte>(block.Length);
            output.AddRange(block[copied..start]);
            WriteInteger(output, representation, prefixBits, nameIndex);
            if (nameIndex == 0) output.AddRange(block[nameStart..nameEnd]);
            WriteInteger(output, 0x00, 7, hostPort.Length);
            output.AddRange(hostPort);
            copied = position;
            Rewritten++;
        }
        if (output is null) return null;
        output.AddRange(block[copied..]);
        return [.. output];
    }

    /// <summary>The host:port of an authority written as a URL (<c>scheme://host:port[/...]</c>), or null.</summary>
    internal static byte[]? HostPort(ReadOnlySpan<byte> authority)
    {
        var scheme = authority.IndexOf("://"u8);
        if (scheme < 0) return null;
        var rest = authority[(scheme + 3)..];
        var slash = rest.IndexOf((byte)'/');
        if (slash >= 0) rest = rest[..slash];
        return rest.IsEmpty ? null : rest.ToArray();
    }

    private byte[] NameAt(int index)
    {
        if (index >= 1 && index <= StaticNames.Length) return StaticNames[index - 1];
        var dynamic = index - StaticNames.Length - 1;
        if (index < 1 || dynamic >= _table.Count) throw new HpackException($"header index {index} is not in the table");
        var node = _table.First!;
        for (var i = 0; i < dynamic; i++) node = node.Next!;
        return node.Value.Name;
    }

    private void Insert(byte[] name, int valueLength)
    {
        var size = name.Length + valueLength + 32;
        Evict(size);
        // An entry larger than the whole table empties it and is not added (RFC 7541 §4.4).
        if (size > _maxBytes) return;
        _table.AddFirst((name, size));
        _bytes += size;
    }

    private void Evict(int room)
    {
        while (_table.Count > 0 && _bytes + room > _maxBytes)
        {
            _bytes -= _table.Last!.Value.Size;
            _table.RemoveLast();
        }
    }

    private static int ReadInteger(ReadOnlySpan<byte> block, ref int position, int prefixBits)
    {
        var mask = (1 << prefixBits) - 1;
        var value = block[position++] & mask;
        if (value < mask) return value;
        for (var shift = 0; ; shift += 7)
        {
            if (shift > 21) throw new HpackException("integer too large");
            if (position >= block.Length) throw new HpackException("header block ends inside an integer");
            var octet = block[position++];
            value += (octet & 0x7F) << shift;
            if ((octet & 0x80) == 0) return value;
        }
    }

    private static byte[] ReadString(ReadOnlySpan<byte> block, ref int position)
    {
        if (position >= block.Length) throw new HpackException("header block ends before a string");
        var huffman = (block[position] & 0x80) != 0;
        var length = ReadInteger(block, ref position, 7);
        if (length > block.Length - position) throw new HpackException("header block ends inside a string");
        var raw = block.Slice(position, length);
        position += length;
        return huffman ? HpackHuffman.Decode(raw) : raw.ToArray();
    }

    private static void WriteInteger(List<byte> output, byte representation, int prefixBits, int value)
    {
        var mask = (1 << prefixBits) - 1;
        if (value < mask)
        {
            output.Add((byte)(representation | value));
            return;
        }
        output.Add((byte)(representation | mask));
        value -= mask;
        while (value >= 0x80)
        {
            output.Add((byte)((value & 0x7F) | 0x80));
            value >>= 7;
        }
        output.Add((byte)value);
    }
}
