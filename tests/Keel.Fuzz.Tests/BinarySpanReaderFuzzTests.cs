using FsCheck;
using FsCheck.Fluent;
using Keel.Core.Encoding;
using Xunit.Abstractions;

namespace Keel.Fuzz.Tests;

/// <summary>
/// The shared reader under every codec: any sequence of reads over any bytes either returns in-range values or throws
/// <see cref="EncodingFormatException"/>; a count from <see cref="BinarySpanReader.ReadCount"/> is always backed by the
/// bytes left, so allocating that many items of that minimum size stays within the input.
/// </summary>
public sealed class BinarySpanReaderFuzzTests(ITestOutputHelper output)
{
    public sealed record ReadScript(byte[] Data, (int Op, int Argument)[] Reads);

    private static readonly Gen<ReadScript> Scripts =
        from data in ByteGens.RandomBytes
        from reads in ByteGens.ArrayOf(
            from op in Gen.Choose(0, 7)
            from argument in Gen.Frequency((4, Gen.Choose(0, 64)), (1, Gen.Elements(int.MaxValue, int.MinValue, -1, 4096)))
            select (op, argument), 1, 40)
        select new ReadScript(data, reads);

    private static void Run(ReadScript script)
    {
        var reader = new BinarySpanReader(script.Data);
        foreach (var (op, argument) in script.Reads)
        {
            var before = reader.Position;
            switch (op)
            {
                case 0: reader.U8(); break;
                case 1: reader.I32(); break;
                case 2: reader.U64(); break;
                case 3: Assert.Equal(argument, reader.ReadBytes(argument).Length); break;
                case 4:
                {
                    var minBytes = Math.Clamp(argument, 0, 64);
                    var count = reader.ReadCount(minBytes);
                    Assert.InRange(count, 0, int.MaxValue);
                    Assert.True((long)count * minBytes <= reader.Remaining, $"count {count} x {minBytes} exceeds the {reader.Remaining} bytes left");
                    if (minBytes > 0) _ = new byte[count * minBytes]; // what a caller would allocate: bounded by the input
                    break;
                }
                case 5: reader.Skip(argument); break;
                case 6: reader.I64(); break;
                default: reader.U32(); break;
            }
            Assert.InRange(reader.Position, before, script.Data.Length);
            Assert.Equal(script.Data.Length - reader.Position, reader.Remaining);
        }
    }

    [Fact]
    public void Any_reads_over_any_bytes_stay_in_bounds_or_throw_EncodingFormatException() =>
        Fuzzer.Run(output, "binary-span-reader", Scripts, Run, e => e is EncodingFormatException, s => s.Data.Length, s => s.Data);

    [Fact]
    public void Negative_lengths_are_format_errors() =>
        Assert.Throws<EncodingFormatException>(() => new BinarySpanReader(new byte[8]).ReadBytes(-1));
}
