using Keel.Core.Encoding;
using static Keel.Mvcc.Tests.B;

namespace Keel.Mvcc.Tests;

public class SnapshotTests
{
    private static MvccStore Busy()
    {
        var store = new MvccStore();
        store.Put("a", "1", timestamp: 10);
        store.Put("b", "2", timestamp: 20, lease: 5);
        store.Put("a", "3", timestamp: 30);
        store.Delete("b");
        store.Put(new PutRequest { Key = [0xff, 0], Value = [] }, 50);
        store.Compact(3);
        store.Put("b", "again", timestamp: 60);
        return store;
    }

    [Fact]
    public void Restore_gives_back_the_same_state_history_and_timestamps()
    {
        var store = Busy();
        var restored = MvccStore.Restore(store.Snapshot());
        restored.AssertInvariants();
        Assert.Equal(store.CurrentRevision, restored.CurrentRevision);
        Assert.Equal(store.CompactRevision, restored.CompactRevision);
        for (var revision = store.CompactRevision; revision <= store.CurrentRevision; revision++)
        {
            Assert.Equal(store.HashKv(revision), restored.HashKv(revision));
            Assert.Equal(store.Range(new RangeRequest { Key = [0], RangeEnd = FromKey, Revision = revision }).Kvs,
                restored.Range(new RangeRequest { Key = [0], RangeEnd = FromKey, Revision = revision }).Kvs);
        }
        Assert.Equal(store.Events(3, [0], FromKey), restored.Events(3, [0], FromKey));
        Assert.Equal(store.RevisionAt(45), restored.RevisionAt(45));
        Assert.Equal(store.Snapshot(), restored.Snapshot());
        // The restored store goes on identically, including the timestamp rule.
        Assert.Throws<ArgumentOutOfRangeException>(() => restored.Put("z", "1", timestamp: 59));
        Assert.Equal(store.Put("z", "1", timestamp: 70), restored.Put("z", "1", timestamp: 70));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void A_captured_image_encoded_after_more_writes_and_compactions_is_the_store_at_its_capture(int seed)
    {
        // Issue 11: a snapshot captures references on the loop and is encoded later, off it, while the store goes on.
        var random = new Random(seed);
        var store = new MvccStore();
        void Churn(int writes, bool compact)
        {
            for (var i = 0; i < writes; i++)
            {
                var key = $"k{random.Next(40)}";
                if (random.Next(6) == 0) store.Delete(key);
                else store.Put(key, new string('v', random.Next(0, 30)) + i);
                if (compact && random.Next(25) == 0 && store.CurrentRevision > store.CompactRevision + 2)
                    store.Compact(store.CurrentRevision - 1 - random.Next((int)Math.Min(10, store.CurrentRevision - store.CompactRevision - 2)));
            }
        }
        Churn(300, compact: true);
        Churn(300, compact: false); // many keys with several versions at the capture...
        var expected = store.Snapshot();
        var image = store.CaptureImage();
        Churn(300, compact: true); // ...which compaction then drops while the image still refers to them
        store.Compact(store.CurrentRevision);
        Assert.Equal(expected.Length, image.SizeBytes);
        Assert.Equal(expected, image.ToArray());
        Assert.Equal(expected, MvccStore.Restore(image.ToArray()).Snapshot());
    }

    [Fact]
    public void An_empty_store_round_trips()
    {
        var restored = MvccStore.Restore(new MvccStore().Snapshot());
        Assert.Equal(1, restored.CurrentRevision);
        Assert.Equal(0, restored.IndexedKeyCount);
    }

    [Fact]
    public void Damaged_or_truncated_snapshots_are_refused()
    {
        var bytes = Busy().Snapshot();
        var flipped = bytes.ToArray();
        flipped[20] ^= 1;
        Assert.Equal(EncodingProblem.ChecksumMismatch, Assert.Throws<EncodingFormatException>(() => MvccStore.Restore(flipped)).Problem);
        Assert.Throws<EncodingFormatException>(() => MvccStore.Restore(bytes.AsSpan(0, bytes.Length - 9)));
        Assert.Throws<EncodingFormatException>(() => MvccStore.Restore(new byte[3]));
    }

    [Fact]
    public void A_snapshot_whose_history_holds_a_put_the_index_does_not_is_refused_though_its_checksum_is_right()
    {
        // A sender with a bug (or a hostile one) can write a well-formed, correctly checksummed image whose watch history
        // carries its own copy of a version instead of the index's: the restored store would hold two copies that can
        // drift apart. The invariant check refuses it as a format error.
        var store = new MvccStore();
        store.Put("a", "x");
        store.Put("a", "y");
        var image = store.Snapshot();
        byte[] indexedRefs = [MvccStore.IndexedVersion, 3, 0, 0, 0, 0, 0, 0, 0, MvccStore.IndexedVersion, 2, 0, 0, 0, 0, 0, 0, 0];
        var at = image.AsSpan().IndexOf(indexedRefs);
        Assert.True(at > 0 && image.AsSpan(at + 1).IndexOf(indexedRefs) < 0, "revision 3's event refers to its versions once");
        var inline = new List<byte> { MvccStore.InlineVersion };
        foreach (var field in new long[] { 2, 3, 2, 0 }) inline.AddRange(BitConverter.GetBytes(field));
        inline.AddRange(BitConverter.GetBytes(1));
        inline.Add((byte)'y');
        var forged = image[..at].Concat(inline).Concat(image[(at + 9)..^ChecksummedFrame.ChecksumBytes]).ToList();
        forged.AddRange(BitConverter.GetBytes(ChecksummedFrame.Checksum(forged.ToArray())));

        var refused = Assert.Throws<EncodingFormatException>(() => MvccStore.Restore(forged.ToArray()));
        Assert.Contains("a logged put is the index's version", refused.Message);
    }
}

/// <summary>A replica restored from a snapshot at any point goes on exactly as the original.</summary>
public class SnapshotPropertyTests
{
    [FsCheck.Xunit.Property(MaxTest = 200, Replay = "5301,1777")]
    public bool A_restored_replica_stays_identical(byte[] program, byte cut)
    {
        string[] keys = ["a", "b", "b/1", "c"];
        var original = new MvccStore();
        MvccStore? replica = null;
        var steps = program.Length / 2;
        var restoreAt = steps == 0 ? 0 : cut % steps;
        for (var step = 0; step < steps; step++)
        {
            if (step == restoreAt) replica = MvccStore.Restore(original.Snapshot());
            var kind = program[2 * step] % 4;
            var key = Y(keys[program[2 * step + 1] % keys.Length]);
            foreach (var store in new[] { original, replica })
            {
                if (store is null) continue;
                switch (kind)
                {
                    case 0: store.Put(new PutRequest { Key = key, Value = [program[2 * step]] }, step); break;
                    case 1: store.DeleteRange(new DeleteRangeRequest { Key = key, RangeEnd = FromKey }, step); break;
                    case 2 when store.CurrentRevision > store.CompactRevision: store.Compact(store.CurrentRevision); break;
                    default: store.Put(new PutRequest { Key = key, Lease = program[2 * step + 1] }, step); break;
                }
            }
        }
        replica ??= MvccStore.Restore(original.Snapshot());
        replica.AssertInvariants();
        Assert.Equal(original.HashKv(0), replica.HashKv(0));
        Assert.Equal(original.Snapshot(), replica.Snapshot());
        return true;
    }
}
