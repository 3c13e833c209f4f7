using Keel.Core.Storage;

namespace Keel.Simulation;

/// <summary>
/// The simulator's <see cref="IStorageDirectory"/>: a view of a <see cref="SimDisk"/> (optionally under a name
/// prefix), so storage code runs unchanged in simulation and a <see cref="SimDisk.Crash"/> loses exactly what a real
/// crash could: unsynced writes (possibly torn) and unsynced directory changes.
/// </summary>
/// <remarks>
/// <see cref="CapacityBytes"/> adds ENOSPC: a write or preallocation that would make this directory's files exceed it
/// writes what fits (as a real short write does) and throws <see cref="DiskFullException"/>.
/// </remarks>
public sealed class SimStorageDirectory : IStorageDirectory
{
    private readonly SimDisk _disk;
    private readonly string _prefix;

    /// <summary>Views the files of <paramref name="disk"/> whose names start with <paramref name="prefix"/>.</summary>
    public SimStorageDirectory(SimDisk disk, string prefix = "")
    {
        ArgumentNullException.ThrowIfNull(disk);
        _disk = disk;
        _prefix = prefix;
    }

    /// <summary>The most bytes this directory's files may hold together (null: unlimited); lower it to simulate a full disk.</summary>
    public long? CapacityBytes { get; set; }

    /// <summary>The bytes this directory's files hold now.</summary>
    public long UsedBytes => _disk.FileNames.Where(n => n.StartsWith(_prefix, StringComparison.Ordinal)).Sum(_disk.Length);

    /// <inheritdoc />
    public IReadOnlyList<string> ListFiles() =>
        _disk.FileNames.Where(n => n.StartsWith(_prefix, StringComparison.Ordinal)).Select(n => n[_prefix.Length..]).ToList();

    /// <inheritdoc />
    public bool Exists(string name) => _disk.Exists(_prefix + name);

    /// <inheritdoc />
    public IStorageFile Create(string name)
    {
        if (_disk.Exists(_prefix + name)) throw new IOException($"simulated file '{name}' already exists");
        _disk.Create(_prefix + name);
        return new SimStorageFile(this, name);
    }

    /// <inheritdoc />
    public IStorageFile Open(string name)
    {
        if (!_disk.Exists(_prefix + name)) throw new FileNotFoundException($"simulated disk has no file '{name}'", name);
        return new SimStorageFile(this, name);
    }

    /// <inheritdoc />
    public void Rename(string from, string to) => _disk.Rename(_prefix + from, _prefix + to);

    /// <inheritdoc />
    public void Delete(string name)
    {
        if (_disk.Exists(_prefix + name)) _disk.Delete(_prefix + name);
    }

    /// <inheritdoc />
    public void SyncDirectory() => _disk.SyncDirectory();

    private long FreeBytes => CapacityBytes is { } capacity ? Math.Max(0, capacity - UsedBytes) : long.MaxValue;

    private sealed class SimStorageFile(SimStorageDirectory directory, string name) : IStorageFile
    {
        private readonly string _path = directory._prefix + name;

        public string Name => name;

        public long LengthBytes => directory._disk.Length(_path);

        public void Write(long offsetBytes, ReadOnlySpan<byte> data)
        {
            var growth = Math.Max(0, offsetBytes + data.Length - LengthBytes);
            var free = directory.FreeBytes;
            if (growth <= free)
            {
                directory._disk.Write(_path, offsetBytes, data);
                return;
            }
            var fits = (int)(data.Length - (growth - free));
            if (fits > 0) directory._disk.Write(_path, offsetBytes, data[..fits]);
            throw new DiskFullException(name);
        }

        public int Read(long offsetBytes, Span<byte> buffer) => directory._disk.Read(_path, offsetBytes, buffer);

        public void Truncate(long lengthBytes)
        {
            var length = LengthBytes;
            if (lengthBytes < length) directory._disk.Truncate(_path, lengthBytes);
            else if (lengthBytes > length) Preallocate(lengthBytes);
        }

        public void Preallocate(long lengthBytes)
        {
            var length = LengthBytes;
            if (lengthBytes <= length) return;
            if (lengthBytes - length > directory.FreeBytes) throw new DiskFullException(name);
            directory._disk.Write(_path, length, new byte[lengthBytes - length]);
        }

        public void Sync() => directory._disk.Sync(_path);

        public void Dispose()
        {
            // The simulated disk has no descriptors to release.
        }
    }
}
