using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using Keel.Core.Storage;
using Microsoft.Win32.SafeHandles;

namespace Keel.Storage;

/// <summary>
/// <see cref="IStorageDirectory"/> on a real file-system directory: positional I/O through <see cref="RandomAccess"/>
/// and <see cref="SafeFileHandle"/>, <c>fdatasync</c> and <c>posix_fallocate</c> through libc on Linux (falling back to
/// a full flush and to <c>ftruncate</c> elsewhere), and a directory fsync by opening the directory read-only.
/// </summary>
/// <remarks>Follows etcd <c>client/pkg/fileutil</c> (<c>Fdatasync</c>, <c>Preallocate</c>, <c>Fsync</c> of the WAL directory).</remarks>
public sealed class FileSystemDirectory : IMappingStorageDirectory
{
    /// <summary>Opens (creating if needed) the directory at <paramref name="path"/>.</summary>
    public FileSystemDirectory(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(Path);
    }

    /// <summary>The absolute path of the directory.</summary>
    public string Path { get; }

    /// <summary>
    /// Takes an exclusive lock on the directory, so that two processes never run one WAL (etcd locks its WAL files the
    /// same way): a <c>LOCK</c> file held open with <see cref="FileShare.None"/>, which .NET maps to
    /// <c>flock(LOCK_EX | LOCK_NB)</c> on Unix. The kernel releases it when the process dies, even by SIGKILL.
    /// Dispose the result to release it.
    /// </summary>
    /// <exception cref="IOException">Another process (or another lock in this one) holds the directory.</exception>
    public IDisposable LockExclusive()
    {
        try
        {
            return new FileStream(FullPath("LOCK"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (!IsDiskFull(e))
        {
            throw new IOException($"the storage directory '{Path}' is locked by another process; two nodes must not share a data directory", e);
        }
    }

    /// <inheritdoc />
    public IReadOnlyList<string> ListFiles()
    {
        var names = Directory.EnumerateFiles(Path).Select(f => System.IO.Path.GetFileName(f)).ToList();
        names.Sort(StringComparer.Ordinal);
        return names;
    }

    /// <inheritdoc />
    public bool Exists(string name) => File.Exists(FullPath(name));

    /// <inheritdoc />
    public IReadOnlyFileMapping MapForRead(string name, long offsetBytes) => FileMapping.Open(FullPath(name), name, offsetBytes);

    /// <inheritdoc />
    public IStorageFile Create(string name) => Open(name, FileMode.CreateNew);

    /// <inheritdoc />
    public IStorageFile Open(string name) => Open(name, FileMode.Open);

    /// <inheritdoc />
    public void Rename(string from, string to) => File.Move(FullPath(from), FullPath(to), overwrite: true);

    /// <inheritdoc />
    public void Delete(string name) => File.Delete(FullPath(name));

    /// <inheritdoc />
    public void SyncDirectory()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD()) return; // Windows has no directory fsync; NTFS journals metadata.
        var fd = NativeMethods.open(Path, 0 /* O_RDONLY */);
        if (fd < 0) throw new IOException($"cannot open directory '{Path}' to fsync it (errno {Marshal.GetLastPInvokeError()})");
        try
        {
            if (NativeMethods.fsync(fd) != 0) throw new IOException($"fsync of directory '{Path}' failed (errno {Marshal.GetLastPInvokeError()})");
        }
        finally
        {
            _ = NativeMethods.close(fd);
        }
    }

    private string FullPath(string name)
    {
        if (name.Length == 0 || name.Contains('/') || name.Contains('\\') || name is "." or "..")
            throw new ArgumentException($"'{name}' is not a plain file name", nameof(name));
        return System.IO.Path.Combine(Path, name);
    }

    private FileSystemFile Open(string name, FileMode mode) =>
        new(name, File.OpenHandle(FullPath(name), mode, FileAccess.ReadWrite, FileShare.Read));

    /// <summary>True if <paramref name="exception"/> is ENOSPC (Unix errno 28) or ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL (Windows).</summary>
    internal static bool IsDiskFull(IOException exception)
    {
        var code = exception.HResult;
        return code == NativeMethods.ENOSPC || (code & 0xFFFF) is 0x70 or 0x27 && (code & 0xFFFF0000) == 0x80070000;
    }

    private sealed class FileSystemFile(string name, SafeFileHandle handle) : IStorageFile
    {
        public string Name { get; } = name;

        public long LengthBytes => RandomAccess.GetLength(handle);

        public void Write(long offsetBytes, ReadOnlySpan<byte> data)
        {
            try
            {
                RandomAccess.Write(handle, data, offsetBytes);
            }
            catch (IOException e) when (IsDiskFull(e))
            {
                throw new DiskFullException(Name, e);
            }
        }

        public int Read(long offsetBytes, Span<byte> buffer)
        {
            var total = 0;
            while (total < buffer.Length)
            {
                var read = RandomAccess.Read(handle, buffer[total..], offsetBytes + total);
                if (read == 0) break;
                total += read;
            }
            return total;
        }

        public void Truncate(long lengthBytes) => RandomAccess.SetLength(handle, lengthBytes);

        public void Preallocate(long lengthBytes)
        {
            var current = LengthBytes;
            if (current >= lengthBytes) return;
            if (OperatingSystem.IsLinux())
            {
                var added = false;
                handle.DangerousAddRef(ref added);
                try
                {
                    // posix_fallocate returns the error number instead of setting errno.
                    var error = NativeMethods.posix_fallocate((int)handle.DangerousGetHandle(), current, lengthBytes - current);
                    if (error == 0) return;
                    if (error == NativeMethods.ENOSPC) throw new DiskFullException(Name);
                    // EOPNOTSUPP and friends: fall through to a sparse extension, which still reads as zeros.
                }
                finally
                {
                    if (added) handle.DangerousRelease();
                }
            }
            try
            {
                RandomAccess.SetLength(handle, lengthBytes);
            }
            catch (IOException e) when (IsDiskFull(e))
            {
                throw new DiskFullException(Name, e);
            }
        }

        public void Sync()
        {
            if (Failpoints.FdatasyncFails())
                throw new IOException($"fdatasync of '{Name}' failed (errno 5, EIO, injected by {Failpoints.FdatasyncEioAfterVariable}); the file's durable state is unknown");
            if (OperatingSystem.IsLinux())
            {
                var added = false;
                handle.DangerousAddRef(ref added);
                try
                {
                    if (NativeMethods.fdatasync((int)handle.DangerousGetHandle()) == 0) return;
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == NativeMethods.ENOSPC) throw new DiskFullException(Name);
                    // A failed fdatasync must never be retried as if the data were safe (PostgreSQL "fsyncgate"): fail loudly.
                    throw new IOException($"fdatasync of '{Name}' failed (errno {errno}); the file's durable state is unknown");
                }
                finally
                {
                    if (added) handle.DangerousRelease();
                }
            }
            RandomAccess.FlushToDisk(handle);
        }

        public void Dispose() => handle.Dispose();
    }

    private static class NativeMethods
    {
        public const int ENOSPC = 28;

#pragma warning disable SYSLIB1054 // DllImport keeps the project free of AllowUnsafeBlocks; these signatures are blittable.
        [DllImport("libc", SetLastError = true)]
        public static extern int fdatasync(int fd);

        [DllImport("libc", SetLastError = true)]
        public static extern int fsync(int fd);

        [DllImport("libc", SetLastError = true)]
        public static extern int posix_fallocate(int fd, long offset, long length);

        [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi, BestFitMapping = false)]
        public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

        [DllImport("libc", SetLastError = true)]
        public static extern int close(int fd);
#pragma warning restore SYSLIB1054
    }
}

/// <summary>
/// A read-only memory mapping of part of a file, exposed as <see cref="ReadOnlyMemory{T}"/> through a
/// <see cref="System.Buffers.MemoryManager{T}"/>; the pages are the page cache's own, so reading them allocates no process memory.
/// </summary>
internal sealed unsafe class FileMapping : System.Buffers.MemoryManager<byte>, IReadOnlyFileMapping
{
    private readonly MemoryMappedFile? _file;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _start;
    private readonly int _length;
    private bool _disposed;

    private FileMapping(MemoryMappedFile? file, MemoryMappedViewAccessor? view, byte* start, int length)
    {
        _file = file;
        _view = view;
        _start = start;
        _length = length;
    }

    public static FileMapping Open(string path, string name, long offsetBytes)
    {
        var lengthBytes = new FileInfo(path) is { Exists: true } info ? info.Length : throw new FileNotFoundException($"'{name}' does not exist", path);
        ArgumentOutOfRangeException.ThrowIfNegative(offsetBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offsetBytes, lengthBytes);
        var mappedBytes = lengthBytes - offsetBytes;
        if (mappedBytes > int.MaxValue) throw new IOException($"'{name}' has {mappedBytes} bytes after offset {offsetBytes}, more than one mapping can address (2 GiB)");
        // An empty file cannot be mapped; there is nothing to map either.
        if (mappedBytes == 0) return new FileMapping(null, null, null, 0);
        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            var view = file.CreateViewAccessor(0, lengthBytes, MemoryMappedFileAccess.Read);
            byte* start = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
            return new FileMapping(file, view, start + view.PointerOffset + offsetBytes, (int)mappedBytes);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    ReadOnlyMemory<byte> IReadOnlyFileMapping.Memory => _disposed ? throw new ObjectDisposedException(nameof(FileMapping)) : CreateMemory(_length);

    public override Span<byte> GetSpan() => _disposed ? throw new ObjectDisposedException(nameof(FileMapping)) : new(_start, _length);

    public override System.Buffers.MemoryHandle Pin(int elementIndex = 0) => new(_start + elementIndex);

    public override void Unpin() { }

    protected override void Dispose(bool disposing)
    {
        if (_disposed) return;
        _disposed = true;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _file?.Dispose();
    }
}
