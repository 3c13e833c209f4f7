using Keel.Mvcc;
using Keel.Storage;

namespace Keel.Server.Hosting;

/// <summary>
/// The store's value segments as files in the data directory's <c>values/</c> folder, mapped into memory: values live
/// in the page cache, as etcd's do in bbolt's file, and count in the process's resident memory only while they are
/// read (issue 11: a million values were 280 MB of the GC heap, which the kernel can never page out).
/// </summary>
/// <remarks>
/// The files are scratch: the store is rebuilt from the snapshot and the WAL at every start, so nothing is synced and
/// the folder is emptied when it is opened. A segment's file is deleted once nothing refers to the segment any more.
/// Pages are dropped from the process as writing moves on (every 4 MiB), when a segment is sealed, and after a snapshot
/// has read every value; reads bring them back.
/// </remarks>
public sealed class FileValueSegmentSource : ValueSegmentSource
{
    /// <summary>The default segment size: 64 MiB.</summary>
    public const int DefaultSegmentBytes = 64 * 1024 * 1024;

    /// <summary>The name of the folder in the data directory.</summary>
    public const string FolderName = "values";

    private const string Extension = ".values";

    // Numbers segment files across every source of the process, so a member restarted in the same process never makes
    // a file under the name a previous store's segment (deleted when it is finalized, later) still has.
    private static long s_lastNumber;

    private readonly string _directory;
    private long _created;

    /// <summary>Opens <paramref name="directory"/> (made if missing) and deletes the segments a previous run left behind.</summary>
    public FileValueSegmentSource(string directory, int segmentBytes = DefaultSegmentBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(segmentBytes);
        _directory = directory;
        SegmentBytes = segmentBytes;
        Directory.CreateDirectory(directory);
        foreach (var stale in Directory.EnumerateFiles(directory, "*" + Extension)) File.Delete(stale);
    }

    /// <inheritdoc/>
    public override int SegmentBytes { get; }

    /// <summary>Segment files made so far.</summary>
    public long SegmentsCreated => Interlocked.Read(ref _created);

    /// <inheritdoc/>
    public override ValueSegment Create(int capacityBytes)
    {
        Interlocked.Increment(ref _created);
        var number = Interlocked.Increment(ref s_lastNumber);
        var path = Path.Combine(_directory, $"segment-{Environment.ProcessId:x}-{number:D8}{Extension}");
        return new FileValueSegment(ScratchFileMapping.Create(path, capacityBytes));
    }

    private sealed class FileValueSegment(ScratchFileMapping mapping) : ValueSegment(mapping.LengthBytes)
    {
        // Written pages leave the process in steps of this size, so the segment being written is not resident whole.
        private const int DropStepBytes = 4 * 1024 * 1024;
        private long _droppedThrough;

        public override ReadOnlySpan<byte> Read(int offset, int length) => mapping.Span.Slice(offset, length);

        public override void Write(int offset, ReadOnlySpan<byte> bytes)
        {
            bytes.CopyTo(mapping.Span[offset..]);
            var end = (long)offset + bytes.Length;
            if (end - _droppedThrough < DropStepBytes) return;
            mapping.DropResidentPages(_droppedThrough, end - _droppedThrough);
            _droppedThrough = end / Environment.SystemPageSize * Environment.SystemPageSize;
        }

        public override void Seal() => mapping.DropResidentPages(0, CapacityBytes);

        public override void ReleaseResidentPages() => mapping.DropResidentPages(0, CapacityBytes);
    }
}
