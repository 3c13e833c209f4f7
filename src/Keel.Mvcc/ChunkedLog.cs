using System.Diagnostics;

namespace Keel.Mvcc;

/// <summary>
/// An append-only sequence in fixed-size chunks, addressed by absolute position (counted from the first item ever
/// added), that drops a prefix and freezes in O(chunks): the storage of the watch history (<see cref="RevisionLog"/>).
/// </summary>
/// <remarks>
/// <para>Why chunks and not a <see cref="List{T}"/>: a list of a million revisions grows by copying itself into an array
/// twice its size on the large-object heap (a 24 MB copy on the node loop, and up to half of it unused), compaction
/// shifts it in place, and a snapshot had to copy all of it to get a view that stays still. Chunks of
/// <see cref="ChunkSize"/> items stay on the small-object heap, growth allocates one chunk, and compaction drops whole
/// chunks.</para>
/// <para>A slot, once written, is never written again (items go only at <see cref="End"/>, dropped slots are not cleared),
/// so <see cref="Freeze"/> hands out the chunk references as they are and the frozen view never changes while the log
/// goes on. The price: a dropped prefix stays reachable until its whole chunk goes (fewer than
/// <see cref="ChunkSize"/> items).</para>
/// </remarks>
internal sealed class ChunkedLog<T>
{
    private const int ChunkShift = 10;

    /// <summary>Items per chunk: 1,024 (a chunk of 24-byte changes is 24 KB, well below the large-object heap's 85 KB).</summary>
    internal const int ChunkSize = 1 << ChunkShift;

    private const long ChunkMask = ChunkSize - 1;

    private readonly List<T[]> _chunks = [];

    // The absolute position of _chunks[0][0].
    private long _firstChunkStart;

    /// <summary>Absolute position of the first retained item.</summary>
    public long Start { get; private set; }

    /// <summary>Absolute position one past the last item.</summary>
    public long End { get; private set; }

    /// <summary>Number of retained items.</summary>
    public long Count => End - Start;

    /// <summary>The item at absolute <paramref name="position"/> (retained: <see cref="Start"/> to <see cref="End"/>).</summary>
    public T this[long position]
    {
        get
        {
            Debug.Assert(position >= Start && position < End, "a retained position");
            var offset = position - _firstChunkStart;
            return _chunks[(int)(offset >> ChunkShift)][offset & ChunkMask];
        }
    }

    /// <summary>Appends an item at <see cref="End"/>.</summary>
    public void Add(T item)
    {
        var offset = End - _firstChunkStart;
        var chunk = (int)(offset >> ChunkShift);
        if (chunk == _chunks.Count) _chunks.Add(new T[ChunkSize]);
        _chunks[chunk][offset & ChunkMask] = item;
        End++;
    }

    /// <summary>Drops every item before absolute <paramref name="position"/> (at most <see cref="End"/>).</summary>
    public void DropBefore(long position)
    {
        Keel.Core.Invariant.Check(position >= Start && position <= End, "a log drops a prefix of what it holds");
        Start = position;
        var wholeChunks = (int)((position - _firstChunkStart) >> ChunkShift);
        if (wholeChunks == 0) return;
        _chunks.RemoveRange(0, wholeChunks);
        _firstChunkStart += (long)wholeChunks << ChunkShift;
    }

    /// <summary>
    /// Replaces retained items by <paramref name="map"/>'s answer where it says they changed. A chunk with a change is
    /// copied first and the copy takes its place, so a <see cref="Frozen"/> view keeps the items it froze (the rule that
    /// a written slot never changes holds for every chunk a view can reach).
    /// </summary>
    public void MapRetained(Func<T, (bool Changed, T Item)> map)
    {
        for (var chunk = 0; chunk < _chunks.Count; chunk++)
        {
            var chunkStart = _firstChunkStart + ((long)chunk << ChunkShift);
            var from = (int)Math.Max(0, Start - chunkStart);
            var to = (int)Math.Min(ChunkSize, End - chunkStart);
            T[]? copy = null;
            for (var i = from; i < to; i++)
            {
                var (changed, item) = map(_chunks[chunk][i]);
                if (!changed) continue;
                copy ??= (T[])_chunks[chunk].Clone();
                copy[i] = item;
            }
            if (copy is not null) _chunks[chunk] = copy;
        }
    }

    /// <summary>The retained items as they are now, immutable from here on (the chunk references, not the items).</summary>
    public Frozen Freeze() => new([.. _chunks], _firstChunkStart, Start, End);

    /// <summary>A <see cref="ChunkedLog{T}"/> frozen by <see cref="Freeze"/>: safe to read on any thread.</summary>
    internal readonly struct Frozen(T[][] chunks, long firstChunkStart, long start, long end)
    {
        public long Start => start;

        public long End => end;

        public T this[long position]
        {
            get
            {
                Debug.Assert(position >= start && position < end, "a frozen position");
                var offset = position - firstChunkStart;
                return chunks[(int)(offset >> ChunkShift)][offset & ChunkMask];
            }
        }
    }
}
