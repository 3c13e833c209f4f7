using Keel.Core.Encoding;

namespace Keel.Core.Tests;

/// <summary>
/// <see cref="ChunkedImageWriter"/>: streamed in chunks of any size, an image is bit for bit what the writer puts into an
/// array, checksummed frames included, and a wrong announced size is caught.
/// </summary>
public sealed class ChunkedImageWriterTests
{
    private static readonly byte[] Magic = "TEST"u8.ToArray();

    // A prefix, a frame holding fields and byte runs longer than a chunk, and a suffix.
    private static void WriteSample(ChunkedImageWriter writer, byte[] large)
    {
        writer.Bytes([1, 2, 3]);
        writer.BeginFrame(Magic, 7);
        for (var i = 0; i < 50; i++)
        {
            writer.I64(i * 1_000_003L);
            writer.I32(-i);
            writer.U8((byte)i);
            writer.U32((uint)i * 7);
            writer.Bytes(large.AsSpan(0, i * 13));
        }
        writer.Bytes(large);
        writer.EndFrame();
        writer.Bytes([9]);
    }

    private static long SampleBytes(byte[] large) =>
        3 + Magic.Length + 1 + Enumerable.Range(0, 50).Sum(i => 8 + 4 + 1 + 4 + i * 13L) + large.Length + 4 + 1;

    [Theory]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(100)]
    [InlineData(4096)]
    [InlineData(ChunkedImageWriter.DefaultChunkBytes)]
    public void A_streamed_image_is_the_array_image_and_its_frame_checks(int chunkBytes)
    {
        var large = Enumerable.Range(0, 3_000).Select(i => (byte)(i * 31)).ToArray();
        var total = SampleBytes(large);
        var array = new byte[total];
        var direct = new ChunkedImageWriter(array);
        WriteSample(direct, large);
        direct.Complete();

        var streamed = new List<byte>();
        var chunks = new List<int>();
        var writer = new ChunkedImageWriter(total, chunk => { streamed.AddRange(chunk.ToArray()); chunks.Add(chunk.Length); }, chunkBytes);
        WriteSample(writer, large);
        writer.Complete();

        Assert.Equal(array, streamed.ToArray());
        Assert.All(chunks, c => Assert.InRange(c, 1, chunkBytes));
        var frame = array.AsSpan(3, array.Length - 4);
        var reader = ChecksummedFrame.Open(frame, Magic, 7);
        Assert.Equal(0L, reader.I64());
    }

    [Fact]
    public void Writing_more_or_less_than_announced_is_a_bug_caught_where_it_happens()
    {
        var overflowing = new ChunkedImageWriter(new byte[10]);
        overflowing.I64(1);
        Assert.Throws<InvariantViolationException>(() => overflowing.I32(2));

        var streaming = new ChunkedImageWriter(20, _ => { }, 16);
        streaming.I64(1);
        streaming.I64(2);
        Assert.Throws<InvariantViolationException>(() => streaming.I64(3));

        var short_ = new ChunkedImageWriter(20, _ => { }, 16);
        short_.I64(1);
        Assert.Throws<InvariantViolationException>(() => short_.Complete());

        var open = new ChunkedImageWriter(new byte[9]);
        open.BeginFrame(Magic, 1);
        Assert.Throws<InvariantViolationException>(() => open.Complete());
    }
}
