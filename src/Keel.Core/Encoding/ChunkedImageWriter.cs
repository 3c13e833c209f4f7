using System.Buffers.Binary;
using System.IO.Hashing;
using System.Runtime.CompilerServices;

namespace Keel.Core.Encoding;

/// <summary>Receives the next piece of an image that a <see cref="ChunkedImageWriter"/> streams (a file write, say).</summary>
public delegate void ImageChunkSink(ReadOnlySpan<byte> chunk);

/// <summary>
/// Writes an image of known size field by field, either straight into an array of exactly that size or as a stream of
/// bounded chunks handed to a sink (issue 11: a snapshot of five million keys was encoded into one 1.7 GB buffer before
/// it was written, so every snapshot of a large store briefly doubled the member's resident memory; streamed, the
/// encoder holds one chunk). The same encoder code serves both, so what is written to a file is bit for bit what an
/// in-memory image holds.
/// </summary>
/// <remarks>
/// Fixed-width little-endian fields, as <see cref="BinarySpanWriter"/>. A checksummed frame
/// (<see cref="ChecksummedFrame"/>: magic, version, payload, CRC-32 of all three) can be written inside the image with
/// <see cref="BeginFrame"/> and <see cref="EndFrame"/>; its checksum is computed a chunk at a time. Writing more or
/// fewer bytes than the size announced is a bug in the size computation: <see cref="InvariantViolationException"/>.
/// </remarks>
public sealed class ChunkedImageWriter
{
    /// <summary>Size of the chunks handed to a sink.</summary>
    public const int DefaultChunkBytes = 1 << 20;

    private readonly byte[] _buffer;
    private readonly int _bufferStart;
    private readonly int _bufferEnd;
    private readonly ImageChunkSink? _sink;
    private int _used;
    private long _flushed;
    private Crc32? _frameChecksum;
    private int _frameStart;

    /// <summary>Writes an image straight into <paramref name="destination"/>, which is exactly as long as the image.</summary>
    public ChunkedImageWriter(ArraySegment<byte> destination)
    {
        _buffer = destination.Array ?? throw new ArgumentException("the destination has no array", nameof(destination));
        _bufferStart = destination.Offset;
        _bufferEnd = destination.Offset + destination.Count;
        _used = _bufferStart;
        TotalBytes = destination.Count;
    }

    /// <summary>Streams an image of <paramref name="totalBytes"/> bytes to <paramref name="sink"/> in chunks of at most <paramref name="chunkBytes"/>.</summary>
    public ChunkedImageWriter(long totalBytes, ImageChunkSink sink, int chunkBytes = DefaultChunkBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(totalBytes);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkBytes, 16);
        _sink = sink ?? throw new ArgumentNullException(nameof(sink));
        _buffer = new byte[(int)Math.Min(chunkBytes, Math.Max(16, totalBytes))];
        _bufferEnd = _buffer.Length;
        TotalBytes = totalBytes;
    }

    /// <summary>The image's announced size.</summary>
    public long TotalBytes { get; }

    /// <summary>Bytes written so far.</summary>
    public long Position => _flushed + (_used - _bufferStart);

    /// <summary>Writes one byte.</summary>
    public void U8(byte value) => Take(1)[0] = value;

    /// <summary>Writes a 32-bit signed integer, little-endian.</summary>
    public void I32(int value) => BinaryPrimitives.WriteInt32LittleEndian(Take(4), value);

    /// <summary>Writes a 32-bit unsigned integer, little-endian.</summary>
    public void U32(uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Take(4), value);

    /// <summary>Writes a 64-bit signed integer, little-endian.</summary>
    public void I64(long value) => BinaryPrimitives.WriteInt64LittleEndian(Take(8), value);

    /// <summary>Writes bytes as they are, across as many chunks as they need.</summary>
    public void Bytes(ReadOnlySpan<byte> value)
    {
        while (!value.IsEmpty)
        {
            if (_used == _bufferEnd) Flush();
            var count = Math.Min(value.Length, _bufferEnd - _used);
            value[..count].CopyTo(_buffer.AsSpan(_used, count));
            _used += count;
            value = value[count..];
        }
        CheckWithinTotal();
    }

    /// <summary>Starts a checksummed frame here: its magic and version (see <see cref="ChecksummedFrame.WriteHeader"/>).</summary>
    public void BeginFrame(ReadOnlySpan<byte> magic, byte version)
    {
        Invariant.Check(_frameChecksum is null, "frames do not nest");
        _frameChecksum = new Crc32();
        _frameStart = _used;
        Bytes(magic);
        U8(version);
    }

    /// <summary>Ends the frame begun by <see cref="BeginFrame"/> with the CRC-32 of everything it holds (see <see cref="ChecksummedFrame.WriteChecksum"/>).</summary>
    public void EndFrame()
    {
        Invariant.Check(_frameChecksum is not null, "a frame was begun");
        _frameChecksum!.Append(_buffer.AsSpan(_frameStart, _used - _frameStart));
        var checksum = _frameChecksum.GetCurrentHashAsUInt32();
        _frameChecksum = null;
        U32(checksum);
    }

    /// <summary>Hands the last chunk to the sink and checks that exactly <see cref="TotalBytes"/> were written.</summary>
    public void Complete()
    {
        Invariant.Check(_frameChecksum is null, "every frame was ended");
        if (_sink is not null && _used > 0) Flush();
        Invariant.Check(Position == TotalBytes, "encoded size was computed wrongly");
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Span<byte> Take(int length)
    {
        if (_bufferEnd - _used < length) Flush();
        var slice = _buffer.AsSpan(_used, length);
        _used += length;
        CheckWithinTotal();
        return slice;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void CheckWithinTotal()
    {
        if (Position > TotalBytes) ThrowOverflow();
    }

    private void Flush()
    {
        // Straight into a destination array, running out of room means the size was computed wrongly.
        if (_sink is null) ThrowOverflow();
        var chunk = _buffer.AsSpan(0, _used);
        _frameChecksum?.Append(chunk[_frameStart..]);
        _frameStart = 0;
        _sink!(chunk);
        _flushed += _used;
        _used = 0;
    }

    private void ThrowOverflow() =>
        throw new InvariantViolationException($"encoded size was computed wrongly: more than the announced {TotalBytes} bytes were written");
}
