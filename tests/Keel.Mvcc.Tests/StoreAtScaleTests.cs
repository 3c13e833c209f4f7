using Keel.Core.Encoding;
using static Keel.Mvcc.Tests.B;

namespace Keel.Mvcc.Tests;

/// <summary>Issue 11: one copy of each value (memory and image), 64-bit image sizes, and images of older members.</summary>
public class StoreAtScaleTests
{
    [Fact]
    public void The_snapshot_image_holds_each_value_once()
    {
        var store = new MvccStore();
        var value = new string('v', 1024);
        for (var i = 0; i < 200; i++) store.Put($"k{i:D3}", value, timestamp: 1000 + i);
        // Overwrites: each event carries the new version and, as prev_kv, the one before: both are in the index.
        for (var i = 0; i < 200; i++) store.Put($"k{i:D3}", value + "2", timestamp: 2000 + i);
        var image = store.Snapshot();
        const long values = 400L * 1024 + 200;
        Assert.InRange(image.Length, values, values + 400 * 120);   // v1 wrote them three times (index, kv, prev_kv)
        var restored = MvccStore.Restore(image);
        Assert.Equal(store.Events(2, [0], FromKey), restored.Events(2, [0], FromKey));
        Assert.Equal(store.HashKv(0), restored.HashKv(0));
    }

    [Fact]
    public void A_prev_kv_kept_past_compaction_is_written_in_full_and_restored()
    {
        var store = new MvccStore();
        store.Put("a", "old", timestamp: 1);   // rev 2
        store.Put("a", "new", timestamp: 2);   // rev 3, prev_kv = rev 2
        store.Compact(3);                      // rev 2 leaves the index; the event at rev 3 keeps its prev_kv
        var restored = MvccStore.Restore(store.Snapshot());
        var change = Assert.Single(restored.Events(3, Y("a"), []));
        Assert.Equal("old", S(change.PrevKv!.Value));
        Assert.Equal(store.Events(3, Y("a"), []), restored.Events(3, Y("a"), []));
    }

    [Fact]
    public void A_version_1_image_of_an_older_member_is_still_read()
    {
        // Hand-written version-1 image: key "a" put at rev 2 (ts 7), one event with the kv in full and no prev_kv.
        var payload = new List<byte>();
        void I64(long v) => payload.AddRange(BitConverter.GetBytes(v));
        void I32(int v) => payload.AddRange(BitConverter.GetBytes(v));
        I64(2); I64(0); I64(7);
        I32(1); I32(1); payload.Add((byte)'a'); I32(1);
        I64(2); payload.Add(1); I64(2); I64(1); I64(0); I32(1); payload.Add((byte)'x');
        I32(1); I64(2); I64(7); I32(1);
        payload.Add(0); I32(1); payload.Add((byte)'a'); I64(2); I64(2); I64(1); I64(0); I32(1); payload.Add((byte)'x'); payload.Add(0);
        var frame = new byte[ChecksummedFrame.OverheadBytes("KMVC"u8) + payload.Count];
        var writer = new BinarySpanWriter(frame);
        ChecksummedFrame.WriteHeader(ref writer, "KMVC"u8, 1);
        writer.Bytes(payload.ToArray());
        ChecksummedFrame.WriteChecksum(ref writer);

        var restored = MvccStore.Restore(frame);
        restored.AssertInvariants();
        Assert.Equal("x", S(restored.Range(new RangeRequest { Key = Y("a") }).Kvs[0].Value));
        var change = Assert.Single(restored.Events(2, Y("a"), []));
        Assert.Equal(EventType.Put, change.Type);
        Assert.Equal(7, restored.TimestampOf(2));
        // Written again, it is a version-2 image of the same state.
        Assert.Equal(2, restored.Snapshot()[4]);
        Assert.Equal(restored.HashKv(0), MvccStore.Restore(restored.Snapshot()).HashKv(0));
    }

    [Fact]
    public void Image_sizes_are_summed_in_64_bits_past_2_GiB()
    {
        // 3,000 versions of 1 MiB sharing one array: about 3 GiB of image, 1 MiB of memory.
        var value = new byte[1 << 20];
        var index = new KeyIndex();
        var log = new RevisionLog();
        const int keys = 3000;
        for (var i = 0; i < keys; i++)
        {
            var history = new KeyHistory(BitConverter.GetBytes(i).Reverse().ToArray());
            var kv = new KeyValue(history.Key, i + 2, i + 2, 1, value, 0);
            history.Add(new KeyRevision(i + 2, kv));
            index.Add(history);
            log.Add(i + 2, i, [new Change(EventType.Put, kv, null)]);
        }
        var payload = StoreImage.Capture(keys + 1, 0, 0, index, log, []).PayloadBytes();
        // Header; per key: key and counts, the version (revision, flag, create, version, lease, length, value); per
        // revision: revision, timestamp, count, and an event naming its key and the indexed version (flag + revision).
        const long expected = 8 * 3 + 4 + keys * (4 + 4 + 4 + 8 + 1 + 8 * 3 + 4 + (1L << 20)) + 4 + keys * (8 + 8 + 4 + 1 + 4 + 4 + 1 + 8 + 1);
        Assert.Equal(expected, payload);
        Assert.True(payload > int.MaxValue);
        var error = Assert.Throws<ImageTooLargeException>(() => ImageSize.CheckFitsOneArray(payload, "the image"));
        Assert.Equal(payload, error.Bytes);
        Assert.Contains("above the", error.Message);
        Assert.Equal(1000, ImageSize.CheckFitsOneArray(1000, "the image"));
    }
}
