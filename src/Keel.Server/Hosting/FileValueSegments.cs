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
/// Values are written with positional writes (never through the mapping, so writing maps nothing in); pages that
/// reads mapped in are dropped from the process when a segment is sealed and after a snapshot has read every value.
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

    /// <summary>
    /// The free space a new segment must leave on the device: 256 MiB. The segments are scratch and the WAL is not, so a
    /// segment is never made where it would take the room the WAL needs for its next 64 MiB segment; values then stay on
    /// the heap (counted by <c>keel_values_outside_segments_total</c>) until there is room again.
    /// </summary>
    public const long DefaultMinFreeBytes = 256L * 1024 * 1024;

    private readonly long _minFreeBytes;

    /// <summary>Opens <paramref name="directory"/> (made if missing) and deletes the segments a previous run left behind.</summary>
    public FileValueSegmentSource(string directory, int segmentBytes = DefaultSegmentBytes, long minFreeBytes = DefaultMinFreeBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(segmentBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(minFreeBytes);
        _directory = directory;
        _minFreeBytes = minFreeBytes;
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
        if (_minFreeBytes > 0)
        {
            long free;
            try
            {
                free = new DriveInfo(_directory).AvailableFreeSpace;
            }
            catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or ArgumentException)
            {
                // The free space is unknown: the reservation below still refuses a segment the device cannot hold.
                free = long.MaxValue;
            }
            if (free - capacityBytes < _minFreeBytes)
                throw new IOException($"a {capacityBytes}-byte value segment would leave {free - capacityBytes} bytes free on the device of {_directory}, " +
                    $"below the {_minFreeBytes} kept for the WAL");
        }
        Interlocked.Increment(ref _created);
        var number = Interlocked.Increment(ref s_lastNumber);
        var path = Path.Combine(_directory, $"segment-{Environment.ProcessId:x}-{number:D8}{Extension}");
        try
        {
            return new FileValueSegment(ScratchFileMapping.Create(path, capacityBytes));
        }
        catch (UnauthorizedAccessException exception)
        {
            // The contract's "could not be made": the store keeps the value on the heap, as for a full disk.
            throw new IOException($"cannot make value segment {path}: {exception.Message}", exception);
        }
    }

    /// <summary>
    /// A segment written with positional writes (in 64 KiB batches staged in memory) and read through its mapping.
    /// Writing through the mapping itself was tried first: at five million keys the node loop and the garbage collector
    /// stalled for up to 2.9 s, because a thread whose write faults a page in while the kernel throttles dirty pages waits
    /// in managed code, and every GC waits for it; a <c>pwrite</c> waits in a system call instead (docs/performance.md).
    /// </summary>
    private sealed class FileValueSegment(ScratchFileMapping mapping) : ValueSegment(mapping.LengthBytes)
    {
        // Below the large-object heap's 85 KB: a new one per flush is an ordinary short-lived allocation.
        private const int StagingBytes = 64 * 1024;

        // The bytes from Start on are in Bytes, not yet in the file. A flush writes them, then publishes a new staging
        // buffer: a reader holding the old one still finds its bytes there (it is never written again), and a reader of
        // the new one finds everything before its Start in the file.
        private sealed class Staging(int start, byte[] bytes)
        {
            public int Start { get; } = start;

            public byte[] Bytes { get; } = bytes;
        }

        private volatile Staging _staging = new(0, new byte[Math.Min(StagingBytes, mapping.LengthBytes)]);
        private int _stagedBytes;

        public override ReadOnlySpan<byte> Read(int offset, int length)
        {
            var staging = _staging;
            return offset >= staging.Start ? staging.Bytes.AsSpan(offset - staging.Start, length) : mapping.Span.Slice(offset, length);
        }

        public override void Write(int offset, ReadOnlySpan<byte> bytes)
        {
            var staging = _staging;
            Keel.Core.Invariant.Check(offset == staging.Start + _stagedBytes, "a value segment is written in order");
            if (_stagedBytes + bytes.Length > staging.Bytes.Length)
            {
                Flush();
                staging = _staging;
                if (bytes.Length > staging.Bytes.Length)
                {
                    // Larger than a staging buffer: straight to the file, and the next buffer starts after it.
                    mapping.Write(offset, bytes);
                    _staging = NewStaging(offset + bytes.Length);
                    return;
                }
            }
            bytes.CopyTo(staging.Bytes.AsSpan(_stagedBytes));
            _stagedBytes += bytes.Length;
        }

        public override void Seal()
        {
            Flush();
            mapping.DropResidentPages(0, CapacityBytes);
        }

        public override void ReleaseResidentPages() => mapping.DropResidentPages(0, CapacityBytes);

        private void Flush()
        {
            var staging = _staging;
            if (_stagedBytes == 0) return;
            mapping.Write(staging.Start, staging.Bytes.AsSpan(0, _stagedBytes));
            _staging = NewStaging(staging.Start + _stagedBytes);
        }

        private Staging NewStaging(int start)
        {
            _stagedBytes = 0;
            return new Staging(start, new byte[Math.Min(StagingBytes, CapacityBytes - start)]);
        }
    }
}
