using System.Text;

namespace Keel.Mvcc;

/// <summary>
/// Unsigned lexicographic order and content equality of byte keys, the order of etcd's btree index and bbolt (a proper prefix sorts first).
/// </summary>
internal sealed class ByteKeyComparer : IComparer<byte[]>, IEqualityComparer<byte[]>
{
    /// <summary>The single instance.</summary>
    public static ByteKeyComparer Instance { get; } = new();

    private ByteKeyComparer() { }

    /// <summary>Unsigned lexicographic comparison.</summary>
    public int Compare(byte[]? x, byte[]? y)
    {
        if (ReferenceEquals(x, y)) return 0;
        if (x is null) return -1;
        if (y is null) return 1;
        return x.AsSpan().SequenceCompareTo(y);
    }

    /// <summary>Content equality.</summary>
    public bool Equals(byte[]? x, byte[]? y) => ReferenceEquals(x, y) || (x is not null && y is not null && x.AsSpan().SequenceEqual(y));

    /// <summary>A content hash; hash collections of keys are only used for lookups, never iterated to decide anything.</summary>
    public int GetHashCode(byte[] obj)
    {
        var hash = new HashCode();
        hash.AddBytes(obj);
        return hash.ToHashCode();
    }

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
