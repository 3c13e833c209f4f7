using System.Text;

namespace Keel.Mvcc;

/// <summary>Shows byte keys in messages and test output.</summary>
internal static class KeyText
{
    /// <summary>Printable ASCII as is, other bytes as \xNN: for messages and test output.</summary>
    public static string Show(ReadOnlySpan<byte> bytes)
    {
        var text = new StringBuilder(bytes.Length);
        foreach (var b in bytes)
        {
            if (b is >= 0x20 and < 0x7f && b != (byte)'\\') text.Append((char)b);
            else text.Append("\\x").Append(b.ToString("x2", System.Globalization.CultureInfo.InvariantCulture));
        }
        return text.ToString();
    }
}
