using BenchmarkDotNet.Attributes;
using Keel.Core.Encoding;

namespace Keel.Benchmarks;

/// <summary>
/// The shared snapshot codec (Keel.Core.Encoding): write a checksummed frame of 64 records (id, term, token, a 16-byte
/// key) into a preallocated buffer, and open (checksum) and read it back. Target: no allocation on either path.
/// </summary>
[MemoryDiagnoser]
public class CodecBenchmarks
{
    private const int Records = 64;
    private const int KeyBytes = 16;
    private static ReadOnlySpan<byte> Magic => "KBEN"u8;

    private readonly byte[] _key = new byte[KeyBytes];
    private byte[] _frame = null!;

    [GlobalSetup]
    public void Setup()
    {
        for (var i = 0; i < KeyBytes; i++) _key[i] = (byte)(i * 7);
        _frame = new byte[ChecksummedFrame.OverheadBytes(Magic) + 4 + Records * (8 + 8 + 8 + 4 + KeyBytes)];
        WriteFrame();
    }

    /// <summary>Encodes the whole frame, CRC-32 included.</summary>
    [Benchmark]
    public int WriteFrame()
    {
        var writer = new BinarySpanWriter(_frame);
        ChecksummedFrame.WriteHeader(ref writer, Magic, 1);
        writer.I32(Records);
        for (var i = 0; i < Records; i++)
        {
            writer.I64(i);
            writer.U64((ulong)i * 3);
            writer.I64(-i);
            writer.I32(KeyBytes);
            writer.Bytes(_key);
        }
        ChecksummedFrame.WriteChecksum(ref writer);
        writer.AssertFull();
        return writer.Position;
    }

    /// <summary>Verifies magic, version and CRC-32, then decodes every field.</summary>
    [Benchmark]
    public long ReadFrame()
    {
        var reader = ChecksummedFrame.Open(_frame, Magic, 1);
        var count = reader.ReadCount(8 + 8 + 8 + 4);
        long sum = 0;
        for (var i = 0; i < count; i++)
        {
            sum += reader.I64();
            sum += (long)reader.U64();
            sum += reader.I64();
            sum += reader.ReadBytes(reader.ReadCount(1)).Length;
        }
        return sum;
    }
}
