using Keel.Core.Storage;
using Keel.Simulation;
using Sim = Keel.Simulation.Simulation;

namespace Keel.Storage.Tests;

/// <summary>A plain in-memory directory (no crash semantics) for byte-level surgery on files.</summary>
internal sealed class MemoryDirectory : IStorageDirectory
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

    private sealed class File(MemoryDirectory directory, string name) : IStorageFile
    {
        public string Name => name;
        public long LengthBytes => directory.Files[name].Length;

        public void Write(long offsetBytes, ReadOnlySpan<byte> data)
        {
            var bytes = directory.Files[name];
            Assert.True(offsetBytes <= bytes.Length);
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

/// <summary>Thrown by <see cref="CrashingDirectory"/> to stop the code under test at a chosen disk operation.</summary>
internal sealed class SimulatedCrash : Exception;

/// <summary>
/// Wraps a directory and "crashes" (throws <see cref="SimulatedCrash"/>) just before its N-th mutating operation, so
/// tests can stop the WAL between a write and its fsync, in the middle of a roll, or between a rename and a directory sync.
/// </summary>
internal sealed class CrashingDirectory(IStorageDirectory inner) : IStorageDirectory
{
    public long CrashAtOperation { get; set; } = long.MaxValue;
    public long Operations { get; private set; }

    private void Step()
    {
        if (Operations++ == CrashAtOperation) throw new SimulatedCrash();
    }

    public IReadOnlyList<string> ListFiles() => inner.ListFiles();
    public bool Exists(string name) => inner.Exists(name);
    public IStorageFile Create(string name) { Step(); return new File(this, inner.Create(name)); }
    public IStorageFile Open(string name) => new File(this, inner.Open(name));
    public void Rename(string from, string to) { Step(); inner.Rename(from, to); }
    public void Delete(string name) { Step(); inner.Delete(name); }
    public void SyncDirectory() { Step(); inner.SyncDirectory(); }

    private sealed class File(CrashingDirectory directory, IStorageFile inner) : IStorageFile
    {
        public string Name => inner.Name;
        public long LengthBytes => inner.LengthBytes;
        public void Write(long offsetBytes, ReadOnlySpan<byte> data) { directory.Step(); inner.Write(offsetBytes, data); }
        public int Read(long offsetBytes, Span<byte> buffer) => inner.Read(offsetBytes, buffer);
        public void Truncate(long lengthBytes) { directory.Step(); inner.Truncate(lengthBytes); }
        public void Preallocate(long lengthBytes) { directory.Step(); inner.Preallocate(lengthBytes); }
        public void Sync() { directory.Step(); inner.Sync(); }
        public void Dispose() => inner.Dispose();
    }
}

internal sealed class IdleProcess : ISimProcess
{
    public void Start(NodeContext context) { }
    public void OnMessage(NodeContext context, int from, object message) { }
    public void OnTimer(NodeContext context, long timerId, int tag) { }
}

internal static class TestDisks
{
    public static SimDisk NewSimDisk(ulong seed)
    {
        var simulation = new Sim(seed);
        return simulation.AddNode(_ => new IdleProcess()).Disk;
    }

    public static byte[] Payload(ulong index, int length)
    {
        var bytes = new byte[length];
        var random = new Keel.Core.DeterministicRandom(index);
        for (var i = 0; i < bytes.Length; i++) bytes[i] = (byte)random.NextUInt64();
        return bytes;
    }

    public static WalEntry Entry(ulong index, ulong term = 1, int length = 20) => new(index, term, Payload(index * 31 + term, length));

    public static void AssertSameEntries(IReadOnlyList<WalEntry> expected, IReadOnlyList<WalEntry> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Index, actual[i].Index);
            Assert.Equal(expected[i].Term, actual[i].Term);
            Assert.True(expected[i].Payload.Span.SequenceEqual(actual[i].Payload.Span), $"payload of entry {expected[i].Index} differs");
        }
    }
}
