using System.Diagnostics.CodeAnalysis;

namespace Keel.Core;

/// <summary>
/// Compares keys by content: unsigned lexicographic order (etcd's and bbolt's key order) and content equality, with
/// span lookups so probing for a key does not allocate.
/// </summary>
/// <remarks>
/// The hash code is per-process randomized (<see cref="HashCode"/>); that is fine because hash collections of keys are
/// only used for lookups, never iterated to decide anything.
/// </remarks>
public sealed class ByteKeyComparer : IComparer<byte[]>, IEqualityComparer<byte[]>,
    IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
{
    /// <summary>The single instance.</summary>
    public static ByteKeyComparer Instance { get; } = new();

    private ByteKeyComparer() { }

    /// <summary>Unsigned lexicographic comparison; a proper prefix sorts first.</summary>
    public int Compare(byte[]? x, byte[]? y)
    {
        if (ReferenceEquals(x, y)) return 0;
        if (x is null) return -1;
        if (y is null) return 1;
        return x.AsSpan().SequenceCompareTo(y);
    }

    /// <summary>Content equality.</summary>
    public bool Equals(byte[]? x, byte[]? y)
    {
        if (ReferenceEquals(x, y)) return true;
        if (x is null || y is null) return false;
        return x.AsSpan().SequenceEqual(y);
    }

    /// <summary>A content hash.</summary>
    public int GetHashCode([DisallowNull] byte[] obj) => GetHashCode((ReadOnlySpan<byte>)obj);

    /// <summary>Content equality between a probe span and a stored key.</summary>
    public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

    /// <summary>The content hash of a probe span (equal to the stored key's).</summary>
    public int GetHashCode(ReadOnlySpan<byte> alternate)
    {
        var hash = new HashCode();
        hash.AddBytes(alternate);
        return hash.ToHashCode();
    }

    /// <summary>Copies the probe span into a key to store.</summary>
    public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();
}
