using Keel.Core;

namespace Keel.Simulation;

/// <summary>
/// A simulated disk with the failure semantics of a real one under a crash: writes land in a volatile cache and become
/// durable only at <see cref="Sync(string)"/>; creations, deletions and renames become durable only at
/// <see cref="SyncDirectory"/>. At a crash each file keeps its synced content plus a random prefix of its unsynced
/// writes, the last of which may be torn (only some of its bytes reach the platter). Reads see the cache, as on Linux.
/// </summary>
public sealed class SimDisk
{
    private readonly DeterministicRandom _random;
    private readonly SortedDictionary<string, SimFile> _files = new(StringComparer.Ordinal);
    private SortedDictionary<string, SimFile> _durableDirectory = new(StringComparer.Ordinal);

    internal SimDisk(DeterministicRandom random) => _random = random;

    /// <summary>Probability that the last surviving unsynced write of a file is torn at a crash.</summary>
    public double TornWriteProbability { get; set; } = 0.5;

    /// <summary>Bytes written since start.</summary>
    public long BytesWritten { get; private set; }

    /// <summary>Syncs performed.</summary>
    public long SyncCount { get; private set; }

    /// <summary>The file names currently visible, in ordinal order.</summary>
    public IEnumerable<string> FileNames => _files.Keys;

    /// <summary>True if the file exists (as the cache sees it).</summary>
    public bool Exists(string name) => _files.ContainsKey(name);

    /// <summary>The visible length of a file.</summary>
    public long Length(string name) => File(name).Current.Count;

    /// <summary>Creates an empty file (durable once the directory is synced); an existing one is kept.</summary>
    public void Create(string name)
    {
        if (!_files.ContainsKey(name)) _files[name] = new SimFile();
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> (extending the file if needed).</summary>
    public void Write(string name, long offset, ReadOnlySpan<byte> data)
    {
        var file = File(name);
        Invariant.Check(offset >= 0 && offset <= file.Current.Count, "write beyond the end of the file leaves a hole");
        var op = new WriteOp(offset, data.ToArray());
        file.Apply(op, file.Current);
        file.Unsynced.Add(op);
        BytesWritten += data.Length;
    }

    /// <summary>Appends <paramref name="data"/> at the end of the file.</summary>
    public void Append(string name, ReadOnlySpan<byte> data) => Write(name, Length(name), data);

    /// <summary>Cuts the file to <paramref name="length"/> bytes.</summary>
    public void Truncate(string name, long length)
    {
        var file = File(name);
        var op = new WriteOp(length, null);
        file.Apply(op, file.Current);
        file.Unsynced.Add(op);
    }

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>; returns bytes read.</summary>
    public int Read(string name, long offset, Span<byte> buffer)
    {
        var content = File(name).Current;
        if (offset >= content.Count) return 0;
        var count = (int)Math.Min(buffer.Length, content.Count - offset);
        for (var i = 0; i < count; i++) buffer[i] = content[(int)offset + i];
        return count;
    }

    /// <summary>Reads the whole file.</summary>
    public byte[] ReadAll(string name) => [.. File(name).Current];

    /// <summary>Makes a file's content durable (fsync / fdatasync).</summary>
    public void Sync(string name)
    {
        var file = File(name);
        file.Durable = [.. file.Current];
        file.Unsynced.Clear();
        SyncCount++;
    }

    /// <summary>Deletes a file (durable once the directory is synced).</summary>
    public void Delete(string name) => _files.Remove(name);

    /// <summary>Renames a file, replacing any target (durable once the directory is synced).</summary>
    public void Rename(string from, string to)
    {
        var file = File(from);
        _files.Remove(from);
        _files[to] = file;
    }

    /// <summary>Makes creations, deletions and renames durable (fsync of the directory).</summary>
    public void SyncDirectory()
    {
        _durableDirectory = new SortedDictionary<string, SimFile>(_files, StringComparer.Ordinal);
        SyncCount++;
    }

    /// <summary>Applies a crash: unsynced directory changes vanish; each file keeps a random, possibly torn, prefix of its unsynced writes.</summary>
    public void Crash()
    {
        _files.Clear();
        foreach (var (name, file) in _durableDirectory)
        {
            var survivor = new List<byte>(file.Durable);
            var kept = file.Unsynced.Count == 0 ? 0 : _random.NextInt32(file.Unsynced.Count + 1);
            for (var i = 0; i < kept; i++)
            {
                var op = file.Unsynced[i];
                var torn = i == kept - 1 && op.Data is { Length: > 1 } && _random.Chance(TornWriteProbability);
                file.Apply(torn ? op with { Data = op.Data![.._random.NextInt32(op.Data.Length)] } : op, survivor);
            }
            file.Durable = [.. survivor];
            file.Current = survivor;
            file.Unsynced.Clear();
            _files[name] = file;
        }
    }

    /// <summary>Flips one bit of a file's durable and visible content (a test of checksums).</summary>
    public void CorruptBit(string name, long offset, int bit)
    {
        var file = File(name);
        file.Current[(int)offset] ^= (byte)(1 << bit);
        if (offset < file.Durable.Length) file.Durable[offset] ^= (byte)(1 << bit);
    }

    private SimFile File(string name) =>
        _files.TryGetValue(name, out var file) ? file : throw new FileNotFoundException($"simulated disk has no file '{name}'", name);

    private sealed record WriteOp(long Offset, byte[]? Data);

    private sealed class SimFile
    {
        public byte[] Durable = [];
        public List<byte> Current = [];
        public readonly List<WriteOp> Unsynced = [];

        public void Apply(WriteOp op, List<byte> content)
        {
            if (op.Data is null)
            {
                if (op.Offset < content.Count) content.RemoveRange((int)op.Offset, content.Count - (int)op.Offset);
                return;
            }
            for (var i = 0; i < op.Data.Length; i++)
            {
                var at = (int)op.Offset + i;
                if (at < content.Count) content[at] = op.Data[i];
                else content.Add(op.Data[i]);
            }
        }
    }
}
