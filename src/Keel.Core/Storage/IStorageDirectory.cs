namespace Keel.Core.Storage;

/// <summary>
/// The disk seam: one flat directory of named files, with exactly the durability operations a write-ahead log needs.
/// A real implementation sits on the file system (<c>Keel.Storage.FileSystemDirectory</c>); the simulator's
/// implementation (<c>Keel.Simulation.SimStorageDirectory</c>) loses at a crash exactly what a real crash could lose,
/// so the same storage code runs under both.
/// </summary>
/// <remarks>
/// Durability contract (POSIX, as etcd's <c>client/pkg/fileutil</c> and <c>server/storage/wal</c> rely on): file
/// content is durable only after <see cref="IStorageFile.Sync"/>; creations, renames and deletions are durable only
/// after <see cref="SyncDirectory"/>. Any method that needs space may throw <see cref="DiskFullException"/>.
/// </remarks>
public interface IStorageDirectory
{
    /// <summary>The names of the files in the directory, sorted ordinally (so the order never depends on hashing).</summary>
    IReadOnlyList<string> ListFiles();

    /// <summary>True if a file named <paramref name="name"/> exists.</summary>
    bool Exists(string name);

    /// <summary>Creates a new empty file; throws <see cref="IOException"/> if it already exists.</summary>
    IStorageFile Create(string name);

    /// <summary>Opens an existing file for reading and writing; throws <see cref="FileNotFoundException"/> if absent.</summary>
    IStorageFile Open(string name);

    /// <summary>Renames <paramref name="from"/> to <paramref name="to"/>, atomically replacing any existing target.</summary>
    void Rename(string from, string to);

    /// <summary>Deletes a file; deleting a missing file is not an error.</summary>
    void Delete(string name);

    /// <summary>Makes creations, renames and deletions durable (fsync of the directory itself).</summary>
    void SyncDirectory();
}

/// <summary>An open file of an <see cref="IStorageDirectory"/>: positional reads and writes plus explicit syncs.</summary>
public interface IStorageFile : IDisposable
{
    /// <summary>The file's name inside its directory.</summary>
    string Name { get; }

    /// <summary>The current length of the file in bytes (as reads see it, synced or not).</summary>
    long LengthBytes { get; }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offsetBytes"/> (which must not exceed the length).</summary>
    /// <exception cref="DiskFullException">The device has no space; a prefix of the data may have been written.</exception>
    void Write(long offsetBytes, ReadOnlySpan<byte> data);

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes at <paramref name="offsetBytes"/>; returns the count read (0 at the end).</summary>
    int Read(long offsetBytes, Span<byte> buffer);

    /// <summary>Cuts (or extends with zeros) the file to <paramref name="lengthBytes"/>.</summary>
    void Truncate(long lengthBytes);

    /// <summary>
    /// Extends the file with zero bytes to at least <paramref name="lengthBytes"/>, reserving the space (fallocate) so
    /// that later writes inside it cannot fail for lack of space and fdatasync need not update the file size.
    /// </summary>
    /// <exception cref="DiskFullException">The space cannot be reserved.</exception>
    void Preallocate(long lengthBytes);

    /// <summary>Makes the file's content durable (fdatasync).</summary>
    void Sync();
}

/// <summary>
/// The device is out of space (ENOSPC). An expected failure that storage turns into an alarm, as etcd raises NOSPACE
/// ("etcdserver: mvcc: database space exceeded"): writes are refused until space returns, and nothing already written
/// is damaged.
/// </summary>
public sealed class DiskFullException : IOException
{
    /// <summary>Creates the exception for the file that could not be written.</summary>
    public DiskFullException(string fileName, Exception? inner = null)
        : base($"no space left on device while writing '{fileName}'", inner) => FileName = fileName;

    /// <summary>The file whose write or allocation failed.</summary>
    public string FileName { get; }
}

/// <summary>
/// A directory that can map a file into memory for reading (the real file system does; the simulator's disk need not).
/// A large file read once at start-up, the newest snapshot of hundreds of MB, is then read where it lies in the page
/// cache instead of being copied into fresh memory: on the 2-core machines Keel is measured on, the first touch of fresh
/// anonymous memory costs about 2.6 ms per MB, so copying a 318 MB image cost 1.1 s of a 6.5 s restart.
/// </summary>
public interface IMappingStorageDirectory : IStorageDirectory
{
    /// <summary>
    /// Maps the file <paramref name="name"/> read-only from <paramref name="offsetBytes"/> to its end. The file must not
    /// be truncated or rewritten while the mapping is open (deleting it is safe: the mapping keeps the content).
    /// </summary>
    /// <exception cref="FileNotFoundException">The file is absent.</exception>
    /// <exception cref="IOException">The mapped part is larger than one span can address (2 GiB).</exception>
    IReadOnlyFileMapping MapForRead(string name, long offsetBytes);
}

/// <summary>A read-only mapping of a file (see <see cref="IMappingStorageDirectory.MapForRead"/>); dispose it to unmap.</summary>
public interface IReadOnlyFileMapping : IDisposable
{
    /// <summary>The mapped bytes; not to be used after <see cref="IDisposable.Dispose"/>.</summary>
    ReadOnlyMemory<byte> Memory { get; }
}
