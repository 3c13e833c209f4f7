using Keel.Core.Storage;

namespace Keel.Fuzz.Tests;

/// <summary>A plain in-memory directory (no crash semantics) for byte-level surgery on files (as in Keel.Storage.Tests).</summary>
public sealed class MemoryDirectory : IStorageDirectory
{
    public readonly SortedDictionary<string, byte[]> Files = new(StringComparer.Ordinal);

    public IReadOnlyList<string> ListFiles() => [.. Files.Keys];
    public bool Exists(string name) => Files.ContainsKey(name);

    public IStorageFile Create(string name)
    {
        if (Files.ContainsKey(name)) throw new IOException("exists");
        Files[name] = [];
        return new File(this, name);
    }

    public IStorageFile Open(string name) => Files.ContainsKey(name) ? new File(this, name) : throw new FileNotFoundException(name);
    public void Rename(string from, string to) { Files[to] = Files[from]; Files.Remove(from); }
    public void Delete(string name) => Files.Remove(name);
    public void SyncDirectory() { }

    public MemoryDirectory Clone()
    {
        var copy = new MemoryDirectory();
        foreach (var (name, bytes) in Files) copy.Files[name] = (byte[])bytes.Clone();
        return copy;
    }

    public int TotalBytes => Files.Values.Sum(b => b.Length);

    private sealed class File(MemoryDirectory directory, string name) : IStorageFile
    {
        public string Name => name;
        public long LengthBytes => directory.Files[name].Length;

        public void Write(long offsetBytes, ReadOnlySpan<byte> data)
        {
            var bytes = directory.Files[name];
            if (offsetBytes > bytes.Length) throw new IOException("write past the end");
            if (offsetBytes + data.Length > bytes.Length) Array.Resize(ref bytes, (int)offsetBytes + data.Length);
            data.CopyTo(bytes.AsSpan((int)offsetBytes));
            directory.Files[name] = bytes;
        }

        public int Read(long offsetBytes, Span<byte> buffer)
        {
            var bytes = directory.Files[name];
            if (offsetBytes >= bytes.Length) return 0;
            var count = Math.Min(buffer.Length, bytes.Length - (int)offsetBytes);
            bytes.AsSpan((int)offsetBytes, count).CopyTo(buffer);
            return count;
        }

        public void Truncate(long lengthBytes)
        {
            var bytes = directory.Files[name];
            Array.Resize(ref bytes, (int)lengthBytes);
            directory.Files[name] = bytes;
        }

        public void Preallocate(long lengthBytes)
        {
            if (lengthBytes > LengthBytes) Truncate(lengthBytes);
        }

        public void Sync() { }
        public void Dispose() { }
    }
}
