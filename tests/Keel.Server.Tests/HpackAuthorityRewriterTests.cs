using System.Text;
using Keel.Server.Http2;

namespace Keel.Server.Tests;

/// <summary>
/// The HPACK reader behind the :authority fix: RFC 7541 Appendix C's Huffman examples decode, the dynamic table mirror
/// counts as the RFC does, and an authority written as a URL (Huffman-coded, as grpc-go sends it) becomes host:port
/// while every other byte of the block stays.
/// </summary>
public class HpackAuthorityRewriterTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    [Theory]
    [InlineData("f1e3 c2e5 f23a 6ba0 ab90 f4ff", "www.example.com")]
    [InlineData("a8eb 1064 9cbf", "no-cache")]
    [InlineData("25a8 49e9 5ba9 7d7f", "custom-key")]
    [InlineData("25a8 49e9 5bb8 e8b4 bf", "custom-value")]
    [InlineData("9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3", "https://www.example.com")]
    public void Huffman_examples_of_RFC_7541_decode(string hex, string text) =>
        Assert.Equal(text, Encoding.ASCII.GetString(HpackHuffman.Decode(Hex(hex))));

    [Theory]
    [InlineData("f1e3 c2e5 f23a 6ba0 ab90 f4fe")] // padding not all ones
    [InlineData("f1e3 c2e5 f23a 6ba0 ab90 f4ff ff")] // padding longer than 7 bits
    [InlineData("ffff fffc")] // EOS inside the string
    public void Invalid_Huffman_is_refused(string hex) =>
        Assert.Throws<HpackException>(() => HpackHuffman.Decode(Hex(hex)));

    [Fact]
    public void Requests_of_RFC_7541_C4_pass_unchanged_and_the_table_counts_as_the_RFC()
    {
        var rewriter = new HpackAuthorityRewriter(4096);
        Assert.Null(rewriter.Rewrite(Hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")));
        Assert.Equal(57, rewriter.DynamicTableBytes);
        Assert.Null(rewriter.Rewrite(Hex("8286 84be 5886 a8eb 1064 9cbf")));
        Assert.Equal(110, rewriter.DynamicTableBytes);
        Assert.Null(rewriter.Rewrite(Hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")));
        Assert.Equal(164, rewriter.DynamicTableBytes);
        Assert.Equal(0, rewriter.Rewritten);
    }

    [Fact]
    public void A_Huffman_coded_URL_authority_becomes_host_port_and_later_indexed_references_stay()
    {
        var rewriter = new HpackAuthorityRewriter(4096);
        // :method GET, :scheme http, :path /, :authority "https://www.example.com" (literal, incremental indexing, Huffman).
        var rewritten = rewriter.Rewrite(Hex("8286 8441 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"));
        Assert.NotNull(rewritten);
        Assert.Equal([0x82, 0x86, 0x84, 0x41, 15, .. "www.example.com"u8.ToArray()], rewritten);
        // The client counts its entry with the URL it sent: 10 + 23 + 32.
        Assert.Equal(65, rewriter.DynamicTableBytes);
        // The next request names the entry by index; Kestrel's copy already holds host:port, so nothing changes.
        Assert.Null(rewriter.Rewrite(Hex("8286 84be")));
        Assert.Equal(1, rewriter.Rewritten);
    }

    [Fact]
    public void A_plain_URL_authority_without_indexing_and_with_a_path_keeps_the_representation()
    {
        var rewriter = new HpackAuthorityRewriter(4096);
        var url = "http://127.0.0.1:2379/"u8.ToArray();
        // Literal never indexed (0x10) with the name written out.
        byte[] block = [0x10, 10, .. ":authority"u8.ToArray(), (byte)url.Length, .. url, 0x82];
        var rewritten = rewriter.Rewrite(block);
        Assert.Equal([0x10, 10, .. ":authority"u8.ToArray(), 14, .. "127.0.0.1:2379"u8.ToArray(), 0x82], rewritten);
        Assert.Equal(0, rewriter.DynamicTableBytes);
    }

    [Fact]
    public void Names_indexed_into_the_dynamic_table_are_followed()
    {
        var rewriter = new HpackAuthorityRewriter(4096);
        // Insert (:authority, "a:1"), then a literal without indexing whose name is dynamic entry 62.
        Assert.Null(rewriter.Rewrite([0x41, 3, .. "a:1"u8.ToArray()]));
        var url = "http://b:2"u8.ToArray();
        var rewritten = rewriter.Rewrite([0x0F, 62 - 15, (byte)url.Length, .. url]);
        Assert.Equal([0x0F, 62 - 15, 3, .. "b:2"u8.ToArray()], rewritten);
    }

    [Fact]
    public void Table_size_updates_evict_and_oversized_updates_or_unknown_indexes_are_refused()
    {
        var rewriter = new HpackAuthorityRewriter(4096);
        Assert.Null(rewriter.Rewrite(Hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")));
        // Size update to 0 empties the table; index 62 is then unknown.
        Assert.Null(rewriter.Rewrite([0x20]));
        Assert.Equal(0, rewriter.DynamicTableBytes);
        Assert.Throws<HpackException>(() => rewriter.Rewrite([0xBE]));
        // 8192 is larger than the 4096 the server allowed.
        Assert.Throws<HpackException>(() => rewriter.Rewrite([0x3F, 0xE1, 0x3F]));
        // A block cut inside a string.
        Assert.Throws<HpackException>(() => rewriter.Rewrite([0x41, 0x05, (byte)'a']));
    }

    [Theory]
    [InlineData("http://127.0.0.1:2379", "127.0.0.1:2379")]
    [InlineData("https://[::1]:2379/x", "[::1]:2379")]
    [InlineData("127.0.0.1:2379", null)]
    [InlineData("http://", null)]
    public void Host_port_of_an_authority(string authority, string? expected)
    {
        var hostPort = HpackAuthorityRewriter.HostPort(Encoding.ASCII.GetBytes(authority));
        Assert.Equal(expected, hostPort is null ? null : Encoding.ASCII.GetString(hostPort));
    }
}
