using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace Keel.Storage;

/// <summary>
/// A file of fixed size, reserved on disk up front and mapped read-write, that holds data the process can rebuild
/// (nothing is synced, and a restart deletes it): the memory behind the store's value segments. Its pages belong to the
/// page cache, so they count in the process's resident memory only while mapped in, and <see cref="DropResidentPages"/>
/// (Linux <c>madvise(MADV_DONTNEED)</c>, which keeps a shared mapping's bytes in the file) maps them out again.
/// </summary>
/// <remarks>
/// The space is reserved with <c>posix_fallocate</c> when the file is made (<see cref="FileStreamOptions.PreallocationSize"/>),
/// so a full disk is an <see cref="IOException"/> here and never a <c>SIGBUS</c> on a later write through the mapping.
/// The mapping lives until the object is disposed or finalized; then the file is deleted. Reads and writes of disjoint
/// ranges may run on different threads.
/// </remarks>
public sealed unsafe class ScratchFileMapping : IDisposable
{
    private const int MadviseDontNeed = 4;
    private static readonly long PageBytes = Environment.SystemPageSize;

    private readonly Microsoft.Win32.SafeHandles.SafeFileHandle _handle;
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _start;
    private int _disposed;

    private ScratchFileMapping(string path, Microsoft.Win32.SafeHandles.SafeFileHandle handle, MemoryMappedFile file, MemoryMappedViewAccessor view,
        byte* start, int lengthBytes)
    {
        Path = path;
        _handle = handle;
        _file = file;
        _view = view;
        _start = start;
        LengthBytes = lengthBytes;
    }

    /// <summary>The file's path.</summary>
    public string Path { get; }

    /// <summary>The file's (and the mapping's) length.</summary>
    public int LengthBytes { get; }

    /// <summary>Makes <paramref name="path"/> (which must not exist) with <paramref name="lengthBytes"/> reserved, and maps it.</summary>
    /// <exception cref="IOException">The file exists, or the disk has no room for it.</exception>
    public static ScratchFileMapping Create(string path, int lengthBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(lengthBytes);
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.None, lengthBytes);
        MemoryMappedFile? file = null;
        try
        {
            file = MemoryMappedFile.CreateFromFile(handle, null, lengthBytes, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: true);
            var view = file.CreateViewAccessor(0, lengthBytes, MemoryMappedFileAccess.ReadWrite);
            byte* start = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
            return new ScratchFileMapping(path, handle, file, view, start + view.PointerOffset, lengthBytes);
        }
        catch
        {
            file?.Dispose();
            handle.Dispose();
            TryDelete(path);
            throw;
        }
    }

    /// <summary>The mapped bytes (valid until the object is disposed or finalized).</summary>
    public Span<byte> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            return new Span<byte>(_start, LengthBytes);
        }
    }

    /// <summary>
    /// Writes <paramref name="bytes"/> at <paramref name="offsetBytes"/> with a positional write (<c>pwrite</c>), not
    /// through the mapping: the pages go to the page cache without being mapped into the process, and a write the kernel
    /// throttles (dirty-page writeback) waits in a system call, where the .NET garbage collector does not have to wait
    /// for the thread, rather than in a page fault of managed code, where it does. The mapping sees the bytes at once.
    /// </summary>
    /// <exception cref="IOException">The write failed.</exception>
    public void Write(long offsetBytes, ReadOnlySpan<byte> bytes)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        ArgumentOutOfRangeException.ThrowIfNegative(offsetBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offsetBytes + bytes.Length, LengthBytes);
        RandomAccess.Write(_handle, bytes, offsetBytes);
    }

    /// <summary>
    /// Maps the pages of <c>[offsetBytes, offsetBytes + lengthBytes)</c> out of the process (whole pages inside the range;
    /// their bytes stay in the file and come back on the next read). Does nothing off Linux.
    /// </summary>
    public void DropResidentPages(long offsetBytes, long lengthBytes)
    {
        if (!OperatingSystem.IsLinux() || _disposed != 0) return;
        ArgumentOutOfRangeException.ThrowIfNegative(offsetBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offsetBytes + lengthBytes, LengthBytes);
        var first = (offsetBytes + PageBytes - 1) / PageBytes * PageBytes;
        var end = offsetBytes + lengthBytes == LengthBytes ? LengthBytes : (offsetBytes + lengthBytes) / PageBytes * PageBytes;
        if (end <= first) return;
        // The mapping starts on a page boundary, so page-aligned offsets are page-aligned addresses. A failure only
        // means the pages stay resident, which costs memory and nothing else.
        _ = madvise((nint)(_start + first), (nuint)(end - first), MadviseDontNeed);
    }

    /// <summary>Unmaps the file and deletes it.</summary>
    public void Dispose()
    {
        Release();
        GC.SuppressFinalize(this);
    }

    /// <summary>Unmapped and deleted once nothing refers to it any more (the value segments' lifetime).</summary>
    ~ScratchFileMapping() => Release();

    private void Release()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        // The view's handle is a critical finalizer object, finalized after this one: still valid here.
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
        _handle.Dispose();
        TryDelete(Path);
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // A file left behind is deleted when the directory is next opened for scratch files.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

#pragma warning disable SYSLIB1054 // DllImport as in FileSystemDirectory; the signature is blittable.
    [DllImport("libc", SetLastError = true)]
    private static extern int madvise(nint address, nuint length, int advice);
#pragma warning restore SYSLIB1054
}
