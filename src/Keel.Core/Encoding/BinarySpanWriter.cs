using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Keel.Core.Encoding;

/// <summary>
/// Writes fixed-width little-endian fields one after another into a caller-sized buffer, without allocating. The
/// intended use is "compute the exact size, allocate once, write, <see cref="AssertFull"/>", as the lease and
/// idempotency snapshots do; running past the end means that size computation is wrong, which is a bug in Keel, so it
/// raises <see cref="InvariantViolationException"/> rather than a format error.
/// </summary>
/// <remarks>Little-endian fixed-width fields as in etcd's WAL and bbolt pages (encoding/binary.LittleEndian); Keel's
/// encodings are only ever read by Keel, so no varints: every field's offset is computable.</remarks>
public ref struct BinarySpanWriter
{
    private readonly Span<byte> _buffer;

    /// <summary>Starts writing at offset 0 of <paramref name="buffer"/>.</summary>
    public BinarySpanWriter(Span<byte> buffer) => _buffer = buffer;

    /// <summary>Bytes written so far, i.e. the offset of the next field.</summary>
    public int Position { get; private set; }

    /// <summary>Bytes still free in the buffer.</summary>
    public readonly int Remaining => _buffer.Length - Position;

    /// <summary>The bytes written so far (the buffer's first <see cref="Position"/> bytes).</summary>
    public readonly Span<byte> Written => _buffer[..Position];

    /// <summary>Reserves the next <paramref name="length"/> bytes and returns them for the caller to fill (text, hashes).</summary>
    /// <exception cref="InvariantViolationException">Fewer than <paramref name="length"/> bytes are free, or it is negative.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<byte> Take(int length)
    {
        if ((uint)length > (uint)(_buffer.Length - Position)) ThrowOverflow(length, Position, _buffer.Length - Position);
        var slice = _buffer.Slice(Position, length);
        Position += length;
        return slice;
    }

    /// <summary>Writes one byte.</summary>
    public void U8(byte value) => Take(1)[0] = value;

    /// <summary>Writes a 32-bit signed integer, little-endian.</summary>
    public void I32(int value) => BinaryPrimitives.WriteInt32LittleEndian(Take(4), value);

    /// <summary>Writes a 32-bit unsigned integer, little-endian.</summary>
    public void U32(uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Take(4), value);

    /// <summary>Writes a 64-bit signed integer, little-endian.</summary>
    public void I64(long value) => BinaryPrimitives.WriteInt64LittleEndian(Take(8), value);

    /// <summary>Writes a 64-bit unsigned integer, little-endian.</summary>
    public void U64(ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Take(8), value);

    /// <summary>Copies <paramref name="value"/> as is (no length prefix: write one with <see cref="I32"/> if the reader needs it).</summary>
    public void Bytes(ReadOnlySpan<byte> value) => value.CopyTo(Take(value.Length));

    /// <summary>Checks that the buffer is exactly full, i.e. that the caller's size computation matched what it wrote.</summary>
    /// <exception cref="InvariantViolationException">Bytes are left over.</exception>
    public readonly void AssertFull() => Invariant.Check(Position == _buffer.Length, "encoded size was computed wrongly");

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowOverflow(int length, int position, int remaining) =>
        throw new InvariantViolationException(
            $"encoded size was computed wrongly: writing {length} bytes at offset {position} with {remaining} left");
}
