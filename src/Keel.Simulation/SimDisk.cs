using System.Runtime.InteropServices;
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
        file.Record(new WriteOp(offset, data.ToArray()));
        BytesWritten += data.Length;
    }

    /// <summary>Appends <paramref name="data"/> at the end of the file.</summary>
    public void Append(string name, ReadOnlySpan<byte> data) => Write(name, Length(name), data);

    /// <summary>Cuts the file to <paramref name="length"/> bytes.</summary>
    public void Truncate(string name, long length) => File(name).Record(new WriteOp(length, null));

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>; returns bytes read.</summary>
    public int Read(string name, long offset, Span<byte> buffer)
    {
        var content = CollectionsMarshal.AsSpan(File(name).Current);
        if (offset >= content.Length) return 0;
        var count = (int)Math.Min(buffer.Length, content.Length - offset);
        content.Slice((int)offset, count).CopyTo(buffer);
        return count;
    }

    /// <summary>Reads the whole file.</summary>
    public byte[] ReadAll(string name) => [.. File(name).Current];

    /// <summary>Makes a file's content durable (fsync / fdatasync).</summary>
    public void Sync(string name)
    {
        // Durable content is the visible content minus the unsynced writes, which the undo log can take back: a sync
        // only forgets the undo log, so it costs nothing however large the file is.
        File(name).Unsynced.Clear();
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
            var unsynced = file.Unsynced.ToList();
            file.RollBackUnsynced();
            var kept = unsynced.Count == 0 ? 0 : _random.NextInt32(unsynced.Count + 1);
            for (var i = 0; i < kept; i++)
            {
                var op = unsynced[i].Op;
                var torn = i == kept - 1 && op.Data is { Length: > 1 } && _random.Chance(TornWriteProbability);
                file.Record(torn ? op with { Data = op.Data![.._random.NextInt32(op.Data.Length)] } : op);
            }
            // What survived the crash is on the platter now: durable.
            file.Unsynced.Clear();
            _files[name] = file;
        }
    }

    /// <summary>Flips one bit of a file's durable and visible content (a test of checksums).</summary>
    public void CorruptBit(string name, long offset, int bit)
    {
        var file = File(name);
        Invariant.Check(file.Unsynced.Count == 0, "corrupt synced files only: the bit must be on the platter");
        file.Current[(int)offset] ^= (byte)(1 << bit);
    }

    private SimFile File(string name) =>
        _files.TryGetValue(name, out var file) ? file : throw new FileNotFoundException($"simulated disk has no file '{name}'", name);

    private sealed record WriteOp(long Offset, byte[]? Data);

    /// <summary>An applied write with what it replaced, so a crash can take it back.</summary>
    private sealed record UndoRecord(WriteOp Op, long LengthBefore, byte[] Replaced);

    private sealed class SimFile
    {
        public List<byte> Current = [];
        public readonly List<UndoRecord> Unsynced = [];

        /// <summary>Applies a write or truncation to the visible content and remembers how to undo it.</summary>
        public void Record(WriteOp op)
        {
            var lengthBefore = Current.Count;
            var content = CollectionsMarshal.AsSpan(Current);
            if (op.Data is null)
            {
                var cut = (int)Math.Min(op.Offset, lengthBefore);
                Unsynced.Add(new UndoRecord(op, lengthBefore, content[cut..].ToArray()));
                Current.RemoveRange(cut, lengthBefore - cut);
                return;
            }
            var offset = (int)op.Offset;
            var overlap = Math.Max(0, Math.Min(op.Data.Length, lengthBefore - offset));
            Unsynced.Add(new UndoRecord(op, lengthBefore, content.Slice(offset, overlap).ToArray()));
            op.Data.AsSpan(0, overlap).CopyTo(content[offset..]);
            Current.AddRange(op.Data.AsSpan(overlap));
        }

        /// <summary>Takes back every unsynced write, newest first: what is left is what the platter holds.</summary>
        public void RollBackUnsynced()
        {
            for (var i = Unsynced.Count - 1; i >= 0; i--)
            {
                var (op, lengthBefore, replaced) = Unsynced[i];
                if (op.Data is null)
                {
                    Current.AddRange(replaced);
                }
                else
                {
                    Current.RemoveRange((int)lengthBefore, Current.Count - (int)lengthBefore);
                    replaced.CopyTo(CollectionsMarshal.AsSpan(Current)[(int)op.Offset..]);
                }
                Invariant.Check(Current.Count == lengthBefore, "undo restores the length");
            }
            Unsynced.Clear();
        }
    }
}
