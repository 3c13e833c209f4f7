using static Keel.Mvcc.Tests.B;

namespace Keel.Mvcc.Tests;

/// <summary>
/// A store that copies its values into segments (<see cref="ValueSegmentSource"/>) behaves, byte for byte, as one that
/// keeps an array per value; its segments' counts follow the index; compaction gives back the space of sparse segments
/// without changing what a capture taken before it reads.
/// </summary>
public class ValueSegmentTests
{
    private static byte[] Value(int seed, int length)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>The same writes into a plain store and a segmented one, with values from empty to several segments long.</summary>
    private static (MvccStore Plain, MvccStore Segmented) Twins(ValueSegmentSource segments, int writes, int keys)
    {
        var plain = new MvccStore();
        var segmented = new MvccStore(segments);
        var random = new Random(7);
        for (var i = 0; i < writes; i++)
        {
            var key = Y($"k{random.Next(keys):D3}");
            var length = random.Next(10) switch { 0 => 0, 1 => 300, _ => random.Next(1, 40) };
            var put = new PutRequest { Key = key, Value = Value(i, length), Lease = i % 3 };
            plain.Put(put, i);
            segmented.Put(put, i);
        }
        return (plain, segmented);
    }

    [Fact]
    public void A_segmented_store_reads_encodes_and_hashes_as_a_plain_one()
    {
        var (plain, segmented) = Twins(new HeapValueSegmentSource(128), writes: 400, keys: 50);
        segmented.AssertInvariants();
        var all = new RangeRequest { Key = [0], RangeEnd = FromKey };
        Assert.Equal(plain.Range(all).Kvs, segmented.Range(all).Kvs);
        Assert.Equal(plain.Range(all with { Revision = 150 }).Kvs, segmented.Range(all with { Revision = 150 }).Kvs);
        Assert.Equal(plain.Events(2, [0], FromKey), segmented.Events(2, [0], FromKey));
        Assert.Equal(plain.HashKv(0), segmented.HashKv(0));
        Assert.Equal(plain.Snapshot(), segmented.Snapshot());
        // Values of 300 bytes do not fit a 128-byte segment: each got one of its own.
        Assert.True(segmented.ValueSegmentCount > 10, $"{segmented.ValueSegmentCount} segments");
        Assert.Equal(LiveValueBytes(plain), segmented.ValueLiveBytes);
    }

    /// <summary>Bytes of every retained version's value (what the segments' live count must equal before any compaction).</summary>
    private static long LiveValueBytes(MvccStore store)
    {
        long bytes = 0;
        foreach (var e in store.Events(2, [0], FromKey))
            if (e.Type == EventType.Put) bytes += e.Kv.ValueLength;
        return bytes;
    }

    [Fact]
    public void Compaction_moves_live_values_out_of_sparse_segments_and_a_capture_taken_before_still_reads_the_old_ones()
    {
        var (plain, segmented) = Twins(new HeapValueSegmentSource(256), writes: 3000, keys: 20);
        var segmentBytesBefore = segmented.ValueSegmentBytes;
        var imageBefore = segmented.CaptureImage();
        var viewBefore = segmented.CaptureReadView();
        var expectedImage = plain.Snapshot();
        var all = new RangeRequest { Key = [0], RangeEnd = FromKey };
        var expectedAtView = plain.Range(all).Kvs;

        plain.Compact(plain.CurrentRevision);
        segmented.Compact(segmented.CurrentRevision);
        segmented.AssertInvariants();

        Assert.True(segmented.ValuesMoved > 0, "compaction moved no value");
        // 20 keys are left: their values and at most one partly written tail, far below the 3,000 versions before.
        Assert.True(segmented.ValueSegmentBytes <= 2 * segmented.ValueLiveBytes + 2 * 300 + 256,
            $"{segmented.ValueSegmentBytes} segment bytes for {segmented.ValueLiveBytes} live (before: {segmentBytesBefore})");
        Assert.True(segmented.ValueSegmentBytes < segmentBytesBefore / 10, $"{segmented.ValueSegmentBytes} of {segmentBytesBefore} segment bytes kept");
        Assert.Equal(plain.Range(all).Kvs, segmented.Range(all).Kvs);
        Assert.Equal(plain.Snapshot(), segmented.Snapshot());
        // What was captured before the move is read from the old segments, unchanged.
        Assert.Equal(expectedImage, imageBefore.ToArray());
        Assert.Equal(expectedAtView, viewBefore.Range(all).Kvs);

        // Writes after the move go on in the tail, and a second compaction keeps the counts exact.
        for (var i = 0; i < 200; i++)
        {
            var put = new PutRequest { Key = Y($"k{i % 20:D3}"), Value = Value(10_000 + i, 30) };
            plain.Put(put, 10_000 + i);
            segmented.Put(put, 10_000 + i);
        }
        plain.Compact(plain.CurrentRevision - 5);
        segmented.Compact(segmented.CurrentRevision - 5);
        segmented.AssertInvariants();
        Assert.Equal(plain.Snapshot(), segmented.Snapshot());
    }

    [Fact]
    public void A_put_that_keeps_the_value_shares_it_and_the_counts_follow()
    {
        var store = new MvccStore(new HeapValueSegmentSource(64));
        store.Put(new PutRequest { Key = Y("a"), Value = Y("value-of-a") }, 1);
        store.Put(new PutRequest { Key = Y("a"), IgnoreValue = true, Lease = 0 }, 2);
        store.AssertInvariants();
        Assert.Equal(20, store.ValueLiveBytes);
        Assert.Equal(Y("value-of-a"), store.Range(new RangeRequest { Key = Y("a") }).Kvs.Single().Value);
        store.Compact(store.CurrentRevision);
        store.AssertInvariants();
        Assert.Equal(10, store.ValueLiveBytes);
        Assert.Equal(Y("value-of-a"), store.Range(new RangeRequest { Key = Y("a") }).Kvs.Single().Value);
    }

    [Fact]
    public void A_restored_store_puts_its_values_into_segments_from_the_source_it_is_given()
    {
        var (plain, _) = Twins(new HeapValueSegmentSource(128), writes: 300, keys: 30);
        var restored = MvccStore.Restore(plain.Snapshot(), new HeapValueSegmentSource(128));
        Assert.NotNull(restored.ValueSegments);
        Assert.True(restored.ValueSegmentCount > 0);
        Assert.Equal(plain.Snapshot(), restored.Snapshot());
        Assert.Equal(plain.HashKv(0), restored.HashKv(0));
    }

    [Fact]
    public void When_no_segment_can_be_made_values_stay_in_arrays_of_their_own_and_nothing_is_lost()
    {
        var source = new FailingSource(new HeapValueSegmentSource(32));
        var store = new MvccStore(source);
        store.Put(new PutRequest { Key = Y("a"), Value = Y("in-a-segment") }, 1);
        source.Failing = true;
        store.Put(new PutRequest { Key = Y("b"), Value = Value(1, 100) }, 2);
        store.Put(new PutRequest { Key = Y("c"), Value = Value(2, 100) }, 3);
        source.Failing = false;
        store.Put(new PutRequest { Key = Y("d"), Value = Value(3, 100) }, 4);
        store.AssertInvariants();
        Assert.Equal(2, store.ValuesOutsideSegments);
        Assert.Equal(Value(1, 100), store.Range(new RangeRequest { Key = Y("b") }).Kvs.Single().Value);
        Assert.Equal(Value(3, 100), store.Range(new RangeRequest { Key = Y("d") }).Kvs.Single().Value);
        Assert.Equal(12 + 100, store.ValueLiveBytes);
    }

    [Fact]
    public void A_version_made_with_the_public_constructor_and_one_in_a_segment_are_equal_by_content()
    {
        var store = new MvccStore(new HeapValueSegmentSource(64));
        store.Put(new PutRequest { Key = Y("k"), Value = Y("v") }, 1);
        var stored = store.Range(new RangeRequest { Key = Y("k") }).Kvs.Single();
        Assert.Equal(new KeyValue(Y("k"), 2, 2, 1, Y("v"), 0), stored);
        Assert.Equal(1, stored.ValueLength);
        Assert.Empty((stored with { Value = [] }).Value);
        // Every call copies a segment's value: callers own what they get.
        Assert.NotSame(stored.Value, stored.Value);
    }

    private sealed class FailingSource(ValueSegmentSource inner) : ValueSegmentSource
    {
        public bool Failing { get; set; }

        public override int SegmentBytes => inner.SegmentBytes;

        public override ValueSegment Create(int capacityBytes) =>
            Failing ? throw new IOException("No space left on device") : inner.Create(capacityBytes);
    }
}
