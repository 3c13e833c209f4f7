namespace Keel.Server.Http2;

/// <summary>
/// Decodes HPACK's Huffman-coded strings (RFC 7541 §5.2, code in Appendix B). The code is canonical: each symbol's code
/// follows from the code lengths alone (codes of one length are consecutive in symbol order, and each length's first
/// code continues the previous length's), so only the 257 lengths are kept and the decoder walks the canonical code.
/// </summary>
internal static class HpackHuffman
{
    private const int EndOfString = 256;
    private const int MaxCodeBits = 30;

    // RFC 7541 Appendix B: the code length in bits of symbols 0..255 and EOS (256).
    private static readonly byte[] CodeLengths =
    [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
        30,
    ];

    // Per code length: the first code of that length, how many symbols have it, and where they start in SymbolsByCode.
    private static readonly uint[] FirstCode = new uint[MaxCodeBits + 1];
    private static readonly int[] CountOfLength = new int[MaxCodeBits + 1];
    private static readonly int[] FirstSymbolIndex = new int[MaxCodeBits + 1];
    private static readonly int[] SymbolsByCode = new int[257];

    static HpackHuffman()
    {
        var order = Enumerable.Range(0, 257).OrderBy(s => CodeLengths[s]).ThenBy(s => s).ToArray();
        order.CopyTo(SymbolsByCode, 0);
        uint code = 0;
        var previousLength = 0;
        for (var i = 0; i < order.Length; i++)
        {
            int length = CodeLengths[order[i]];
            if (i > 0) code = (code + 1) << (length - previousLength);
            if (CountOfLength[length] == 0)
            {
                FirstCode[length] = code;
                FirstSymbolIndex[length] = i;
            }
            CountOfLength[length]++;
            previousLength = length;
        }
        // The code is complete: the last (EOS) code is all ones.
        System.Diagnostics.Debug.Assert(code == (1u << MaxCodeBits) - 1);
    }

    /// <summary>Decodes <paramref name="input"/> into bytes.</summary>
    /// <exception cref="HpackException">Not valid Huffman code (EOS inside, padding longer than 7 bits or not all ones).</exception>
    public static byte[] Decode(ReadOnlySpan<byte> input)
    {
        var output = new List<byte>(input.Length * 8 / 5 + 1);
        uint code = 0;
        var length = 0;
        foreach (var octet in input)
        {
            for (var bit = 7; bit >= 0; bit--)
            {
                code = (code << 1) | (uint)((octet >> bit) & 1);
                length++;
                if (length > MaxCodeBits) throw new HpackException("invalid Huffman code");
                var offset = code - FirstCode[length];
                if (CountOfLength[length] > 0 && code >= FirstCode[length] && offset < (uint)CountOfLength[length])
                {
                    var symbol = SymbolsByCode[FirstSymbolIndex[length] + (int)offset];
                    if (symbol == EndOfString) throw new HpackException("Huffman-coded string contains EOS");
                    output.Add((byte)symbol);
                    code = 0;
                    length = 0;
                }
            }
        }
        // Padding: the most significant bits of EOS (all ones), fewer than 8.
        if (length > 7 || code != (1u << length) - 1) throw new HpackException("invalid Huffman padding");
        return [.. output];
    }
}

/// <summary>A header block that is not valid HPACK.</summary>
internal sealed class HpackException(string message) : Exception(message);
