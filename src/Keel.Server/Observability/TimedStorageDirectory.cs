using System.Diagnostics;
using Keel.Core.Storage;

namespace Keel.Server.Observability;

/// <summary>
/// Wraps the data directory handed to the node so that every file sync is timed (etcd's
/// <c>etcd_disk_wal_fsync_duration_seconds</c>). Timing lives here, in the server shell, so the I/O-free node core
/// never reads a clock of its own.
/// </summary>
internal class TimedStorageDirectory(IStorageDirectory inner, NodeHostStatistics statistics) : IStorageDirectory
{
    /// <summary>Wraps <paramref name="inner"/>, keeping its ability to map files if it has it.</summary>
    public static TimedStorageDirectory Wrap(IStorageDirectory inner, NodeHostStatistics statistics) =>
        inner is IMappingStorageDirectory mapping ? new Mapping(mapping, statistics) : new TimedStorageDirectory(inner, statistics);

    // Mapping reads no sync: nothing to time.
    private sealed class Mapping(IMappingStorageDirectory inner, NodeHostStatistics statistics)
        : TimedStorageDirectory(inner, statistics), IMappingStorageDirectory
    {
        public IReadOnlyFileMapping MapForRead(string name, long offsetBytes) => inner.MapForRead(name, offsetBytes);
    }

    public IReadOnlyList<string> ListFiles() => inner.ListFiles();

    public bool Exists(string name) => inner.Exists(name);

    public IStorageFile Create(string name) => new TimedFile(inner.Create(name), statistics);

    public IStorageFile Open(string name) => new TimedFile(inner.Open(name), statistics);

    public void Rename(string from, string to) => inner.Rename(from, to);

    public void Delete(string name) => inner.Delete(name);

    public void SyncDirectory()
    {
        var started = Stopwatch.GetTimestamp();
        inner.SyncDirectory();
        statistics.RecordFsync(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    private sealed class TimedFile(IStorageFile inner, NodeHostStatistics statistics) : IStorageFile
    {
        public string Name => inner.Name;

        public long LengthBytes => inner.LengthBytes;

        public void Write(long offsetBytes, ReadOnlySpan<byte> data) => inner.Write(offsetBytes, data);

        public int Read(long offsetBytes, Span<byte> buffer) => inner.Read(offsetBytes, buffer);

        public void Truncate(long lengthBytes) => inner.Truncate(lengthBytes);

        public void Preallocate(long lengthBytes) => inner.Preallocate(lengthBytes);

        public void Sync()
        {
            var started = Stopwatch.GetTimestamp();
            inner.Sync();
            statistics.RecordFsync(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }

        public void Dispose() => inner.Dispose();
    }
}
