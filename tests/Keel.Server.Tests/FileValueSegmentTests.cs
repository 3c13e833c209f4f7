using Keel.Mvcc;
using Keel.Server.Hosting;

namespace Keel.Server.Tests;

/// <summary>
/// The server's file-backed value segments (staged positional writes, reads through the mapping) under a store: the
/// same bytes as a plain store for values from empty to larger than a staging buffer, across compaction, and for a
/// reader on another thread while the store keeps writing.
/// </summary>
public sealed class FileValueSegmentTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "keel-value-segments-" + Path.GetRandomFileName());

    public void Dispose()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        Directory.Delete(_path, recursive: true);
    }

    private static byte[] Value(int seed, int length)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static PutRequest Put(int i, Random random)
    {
        var length = random.Next(20) switch { 0 => 0, 1 => 100_000, 2 => random.Next(60_000, 70_000), _ => random.Next(1, 600) };
        return new PutRequest { Key = System.Text.Encoding.UTF8.GetBytes($"k{random.Next(40):D2}"), Value = Value(i, length) };
    }

    [Fact]
    public void A_store_on_file_segments_reads_and_encodes_as_a_plain_one_across_compactions()
    {
        var source = new FileValueSegmentSource(_path, segmentBytes: 256 * 1024);
        var plain = new MvccStore();
        var segmented = new MvccStore(source);
        var random = new Random(11);
        for (var i = 0; i < 1500; i++)
        {
            var put = Put(i, random);
            plain.Put(put, i);
            segmented.Put(put, i);
            if (i % 500 == 499)
            {
                plain.Compact(plain.CurrentRevision - 20);
                segmented.Compact(segmented.CurrentRevision - 20);
                segmented.AssertInvariants();
            }
        }
        var all = new RangeRequest { Key = [0], RangeEnd = [0] };
        Assert.Equal(plain.Range(all).Kvs, segmented.Range(all).Kvs);
        Assert.Equal(plain.Snapshot(), segmented.Snapshot());
        Assert.True(segmented.ValuesMoved > 0, "no value was moved out of a sparse segment");
        Assert.True(source.SegmentsCreated > 3);
        Assert.NotEmpty(Directory.GetFiles(_path, "*.values"));
    }

    [Fact]
    public void A_reader_on_another_thread_sees_every_value_a_capture_holds_while_the_store_writes_on()
    {
        var store = new MvccStore(new FileValueSegmentSource(_path, segmentBytes: 128 * 1024));
        var random = new Random(3);
        var all = new RangeRequest { Key = [0], RangeEnd = [0] };
        for (var round = 0; round < 20; round++)
        {
            for (var i = 0; i < 50; i++) store.Put(Put(round * 1000 + i, random), round * 1000 + i);
            var view = store.CaptureReadView();
            var expected = store.Range(all).Kvs.Select(kv => (kv.Key, kv.Value)).ToList();
            var reader = Task.Run(() =>
            {
                for (var pass = 0; pass < 5; pass++)
                {
                    var got = view.Range(all).Kvs;
                    Assert.Equal(expected.Count, got.Count);
                    for (var k = 0; k < got.Count; k++) Assert.Equal(expected[k].Value, got[k].Value);
                }
            });
            // The writer goes on (new values staged, buffers flushed, segments sealed, values moved) meanwhile.
            for (var i = 50; i < 100; i++) store.Put(Put(round * 1000 + i, random), round * 1000 + i);
            store.Compact(store.CurrentRevision - 10);
            reader.GetAwaiter().GetResult();
        }
        store.AssertInvariants();
    }
}
