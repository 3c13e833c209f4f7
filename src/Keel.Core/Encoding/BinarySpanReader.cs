using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Keel.Core.Encoding;

/// <summary>
/// Reads the fields <see cref="BinarySpanWriter"/> writes, bounds-checking every read, without allocating. Input is
/// untrusted (disk, network), so every failure is an <see cref="EncodingFormatException"/> naming the offset, never an
/// <see cref="IndexOutOfRangeException"/>, and <see cref="ReadCount"/> refuses counts the remaining bytes cannot back,
/// so a corrupt length can never make a caller allocate gigabytes.
/// </summary>
/// <remarks>The count guard follows etcd's WAL decoder, which rejects a record length beyond the file
/// (server/storage/wal/decoder.go, "ErrMaxWALEntrySizeLimitExceeded").</remarks>
public ref struct BinarySpanReader
{
    private readonly ReadOnlySpan<byte> _data;

    /// <summary>Starts reading at offset 0 of <paramref name="data"/>.</summary>
    public BinarySpanReader(ReadOnlySpan<byte> data) => _data = data;

    /// <summary>Bytes consumed so far, i.e. the offset of the next field (offsets in errors are counted the same way).</summary>
    public int Position { get; private set; }

    /// <summary>Bytes not read yet.</summary>
    public readonly int Remaining => _data.Length - Position;

    /// <summary>Whether every byte has been read.</summary>
    public readonly bool IsAtEnd => Position == _data.Length;

    /// <summary>Returns the next <paramref name="length"/> bytes (a view into the input, not a copy).</summary>
    /// <exception cref="EncodingFormatException">Fewer than <paramref name="length"/> bytes are left, or it is negative.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ReadOnlySpan<byte> ReadBytes(int length)
    {
        if ((uint)length > (uint)(_data.Length - Position)) ThrowTruncated(length, Position, _data.Length - Position);
        var slice = _data.Slice(Position, length);
        Position += length;
        return slice;
    }

    /// <summary>Steps over <paramref name="length"/> bytes.</summary>
    /// <exception cref="EncodingFormatException">Fewer than <paramref name="length"/> bytes are left, or it is negative.</exception>
    public void Skip(int length) => ReadBytes(length);

    /// <summary>Reads one byte.</summary>
    /// <exception cref="EncodingFormatException">No byte is left.</exception>
    public byte U8() => ReadBytes(1)[0];

    /// <summary>Reads a 32-bit signed integer, little-endian.</summary>
    /// <exception cref="EncodingFormatException">Fewer than 4 bytes are left.</exception>
    public int I32() => BinaryPrimitives.ReadInt32LittleEndian(ReadBytes(4));

    /// <summary>Reads a 32-bit unsigned integer, little-endian.</summary>
    /// <exception cref="EncodingFormatException">Fewer than 4 bytes are left.</exception>
    public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(4));

    /// <summary>Reads a 64-bit signed integer, little-endian.</summary>
    /// <exception cref="EncodingFormatException">Fewer than 8 bytes are left.</exception>
    public long I64() => BinaryPrimitives.ReadInt64LittleEndian(ReadBytes(8));

    /// <summary>Reads a 64-bit unsigned integer, little-endian.</summary>
    /// <exception cref="EncodingFormatException">Fewer than 8 bytes are left.</exception>
    public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(ReadBytes(8));

    /// <summary>
    /// Reads an <see cref="I32"/> count (of items, or of bytes with <paramref name="minBytesPerItem"/> 1) and checks that
    /// it is non-negative and that the bytes after it could hold that many items of at least
    /// <paramref name="minBytesPerItem"/> bytes each. Use it before allocating or looping on a decoded count.
    /// </summary>
    /// <param name="minBytesPerItem">The smallest encoding of one item; 0 only checks the sign.</param>
    /// <exception cref="EncodingFormatException">The count is negative or cannot fit (<see cref="EncodingProblem.CountOutOfRange"/>,
    /// at the count's own offset), or fewer than 4 bytes are left.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="minBytesPerItem"/> is negative.</exception>
    public int ReadCount(int minBytesPerItem)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(minBytesPerItem);
        var offset = Position;
        var count = I32();
        if (count < 0 || (long)count * minBytesPerItem > _data.Length - Position)
            ThrowCountOutOfRange(count, offset, _data.Length - Position);
        return count;
    }

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowTruncated(int length, int offset, int left) =>
        throw new EncodingFormatException(EncodingProblem.Truncated, offset, length, left);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowCountOutOfRange(int count, int offset, int left) =>
        throw new EncodingFormatException(EncodingProblem.CountOutOfRange, offset, count, left);
}
