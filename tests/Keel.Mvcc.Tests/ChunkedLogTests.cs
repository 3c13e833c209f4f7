using static Keel.Mvcc.Tests.B;

namespace Keel.Mvcc.Tests;

/// <summary>
/// The watch history's chunked storage: positions across chunk boundaries, prefix drops of whole and partial chunks,
/// and frozen views that stay as they were while the log grows and drops.
/// </summary>
public class ChunkedLogTests
{
    private const int Chunk = ChunkedLog<long>.ChunkSize;

    [Fact]
    public void Items_keep_their_absolute_positions_across_chunks_and_prefix_drops()
    {
        var log = new ChunkedLog<long>();
        for (long i = 0; i < 3 * Chunk + 5; i++) log.Add(i * 10);
        var frozen = log.Freeze();

        log.DropBefore(Chunk + 3); // one whole chunk and part of the next
        Assert.Equal((Chunk + 3L, 3L * Chunk + 5), (log.Start, log.End));
        for (var p = log.Start; p < log.End; p++) Assert.Equal(p * 10, log[p]);

        log.DropBefore(log.End); // everything, ending mid-chunk
        Assert.Equal(0, log.Count);
        for (long i = 0; i < 2 * Chunk; i++) log.Add(-i);
        Assert.Equal(-0L, log[3L * Chunk + 5]);
        Assert.Equal(-(2L * Chunk - 1), log[log.End - 1]);

        // The view frozen at the start still reads every item it had, though its chunks were dropped since.
        Assert.Equal((0L, 3L * Chunk + 5), (frozen.Start, frozen.End));
        for (var p = frozen.Start; p < frozen.End; p++) Assert.Equal(p * 10, frozen[p]);
    }

    [Fact]
    public void Dropping_everything_at_a_chunk_boundary_then_adding_starts_a_new_chunk()
    {
        var log = new ChunkedLog<int>();
        for (var i = 0; i < 2 * Chunk; i++) log.Add(i);
        log.DropBefore(2L * Chunk);
        log.Add(7);
        Assert.Equal(2L * Chunk, log.Start);
        Assert.Equal(7, log[2L * Chunk]);
        Assert.Throws<Keel.Core.InvariantViolationException>(() => log.DropBefore(log.End + 1));
    }

    [Fact]
    public void A_capture_of_thousands_of_revisions_with_a_wide_delete_spanning_chunks_encodes_the_store_at_its_capture()
    {
        // More revisions and changes than fit in a chunk, one revision whose 1,500 changes straddle chunk boundaries,
        // and compactions that drop whole and partial chunks after the capture.
        var store = new MvccStore();
        for (var i = 0; i < 1_500; i++) store.Put($"k{i:D4}", $"v{i}");
        store.Delete("k", "l"); // one revision, 1,500 delete events
        for (var i = 0; i < 2_500; i++) store.Put($"k{i % 700:D4}", $"w{i}");
        store.Compact(700);
        var expected = store.Snapshot();
        var image = store.CaptureImage();
        var events = store.Events(1_000, Y("k"), Y("l"));

        for (var i = 0; i < 3_000; i++) store.Put($"k{i % 900:D4}", $"x{i}");
        store.Compact(store.CurrentRevision - 5);
        store.AssertInvariants();

        Assert.Equal(expected, image.ToArray());
        Assert.Equal(expected, MvccStore.Restore(image.ToArray()).Snapshot());
        var restored = MvccStore.Restore(expected);
        restored.AssertInvariants();
        Assert.Equal(events, restored.Events(1_000, Y("k"), Y("l")));
        Assert.Equal(1_500, restored.Events(1_502, Y("k"), Y("l"), endRevision: 1_502).Count);
    }
}
