using Keel.Core.Storage;
using static Keel.Storage.Tests.TestDisks;

namespace Keel.Storage.Tests;

public sealed class FileSystemDirectoryTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "keel-storage-tests", Path.GetRandomFileName());

    public void Dispose()
    {
        if (Directory.Exists(_path)) Directory.Delete(_path, recursive: true);
    }

    [Fact]
    public void A_mapped_file_reads_its_bytes_in_place_and_stays_readable_after_the_file_is_deleted()
    {
        var directory = new FileSystemDirectory(_path);
        var content = Enumerable.Range(0, 100_000).Select(i => (byte)(i * 7)).ToArray();
        using (var file = directory.Create("s")) file.Write(0, content);
        using var mapping = directory.MapForRead("s", 32);
        Assert.False(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(mapping.Memory, out _), "mapped, not copied into an array");
        Assert.Equal(content.AsSpan(32).ToArray(), mapping.Memory.ToArray());
        directory.Delete("s");
        Assert.Equal(content[^1], mapping.Memory.Span[^1]);
        using (var empty = directory.Create("e")) { }
        using var emptyMapping = directory.MapForRead("e", 0);
        Assert.True(emptyMapping.Memory.IsEmpty);
        Assert.Throws<FileNotFoundException>(() => directory.MapForRead("missing", 0));
    }

    [Fact]
    public void A_wal_recovered_from_mapped_segments_hands_out_entries_of_their_own_and_cuts_a_torn_tail()
    {
        var directory = new FileSystemDirectory(_path);
        var options = new WalOptions { SegmentSizeBytes = 4096 };
        var payloads = Enumerable.Range(1, 60).Select(i => Enumerable.Range(0, 100 + i).Select(b => (byte)(b * i)).ToArray()).ToList();
        using (var wal = WriteAheadLog.Open(directory, options, out _))
        {
            // A full segment rolls at the next sync.
            for (var i = 0; i < payloads.Count; i++)
            {
                wal.Append(new WalEntry((ulong)i + 1, 1, payloads[i]));
                wal.Sync();
            }
        }
        var segmentNames = directory.ListFiles().Where(n => n.EndsWith(".wal", StringComparison.Ordinal)).ToList();
        Assert.True(segmentNames.Count >= 3, $"the entries span several segments ({segmentNames.Count})");
        // A torn record at the end of the newest segment (a write the crash cut short).
        var newest = Path.Combine(_path, segmentNames[^1]);
        var bytes = File.ReadAllBytes(newest);
        var end = Array.FindLastIndex(bytes, b => b != 0) + 1;
        bytes[end] = 0x7f;
        bytes[end + 1] = 0x01;
        File.WriteAllBytes(newest, bytes);

        using (var recovered = WriteAheadLog.Open(directory, options, out var recovery))
        {
            Assert.Equal(segmentNames[^1], recovery.TornTailFile);
            Assert.Equal(payloads.Count, recovery.Entries.Count);
            for (var i = 0; i < payloads.Count; i++)
            {
                Assert.Equal(payloads[i], recovery.Entries[i].Payload.ToArray());
                // Its own array, whole: not a view of a (now unmapped) segment.
                Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(recovery.Entries[i].Payload, out var segment));
                Assert.Equal((0, payloads[i].Length), (segment.Offset, segment.Array!.Length));
            }
            recovered.Append(new WalEntry(61, 1, new byte[] { 1, 2, 3 }));
            recovered.Sync();
        }
        using var again = WriteAheadLog.Open(directory, options, out var second);
        Assert.Null(second.TornTailFile);
        Assert.Equal(61, second.Entries.Count);
        Assert.Equal(new byte[] { 1, 2, 3 }, second.Entries[^1].Payload.ToArray());
    }

    [Fact]
    public void The_newest_snapshot_is_loaded_from_a_mapping_and_a_damaged_one_is_still_refused()
    {
        var directory = new FileSystemDirectory(_path);
        var store = new SnapshotStore(directory, retain: 3);
        var older = Enumerable.Range(0, 300_000).Select(i => (byte)i).ToArray();
        var newer = Enumerable.Range(0, 300_000).Select(i => (byte)(i * 3)).ToArray();
        store.Save(100, 1, older);
        store.Save(200, 1, newer);
        using (var loaded = store.LoadNewest([]))
        {
            Assert.Equal(200UL, loaded!.Index);
            Assert.False(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(loaded.Data, out _), "the image is the file's mapping");
            Assert.Equal(newer, loaded.Data.ToArray());
        }
        // One flipped bit in the newest file: the mapped bytes fail the checksum and the older snapshot is used.
        var path = Path.Combine(_path, SnapshotStore.FileName(200, 1));
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x04;
        File.WriteAllBytes(path, bytes);
        var warnings = new List<string>();
        using var fallback = new SnapshotStore(directory, retain: 3).LoadNewest(warnings);
        Assert.Equal(100UL, fallback!.Index);
        Assert.Equal(older, fallback.Data.ToArray());
        Assert.Contains(warnings, w => w.Contains("CRC32C mismatch", StringComparison.Ordinal) && w.Contains(SnapshotStore.FileName(200, 1), StringComparison.Ordinal));
    }

    [Fact]
    public void The_file_operations_do_what_the_seam_promises()
    {
        var directory = new FileSystemDirectory(_path);
        using (var file = directory.Create("b"))
        {
            file.Write(0, "hello"u8);
            file.Write(5, " world"u8);
            file.Sync();
            file.Preallocate(4096);
            Assert.Equal(4096, file.LengthBytes);
            var buffer = new byte[11];
            Assert.Equal(11, file.Read(0, buffer));
            Assert.Equal("hello world"u8.ToArray(), buffer);
            Assert.Equal(0, file.Read(4096, buffer));
            file.Truncate(5);
            Assert.Equal(5, file.LengthBytes);
        }
        Assert.Throws<IOException>(() => directory.Create("b"));
        Assert.Throws<FileNotFoundException>(() => directory.Open("missing"));
        using (directory.Create("a")) { }
        Assert.Equal(["a", "b"], directory.ListFiles());
        directory.Rename("b", "a");
        directory.SyncDirectory();
        Assert.Equal(["a"], directory.ListFiles());
        directory.Delete("a");
        directory.Delete("a");
        Assert.Empty(directory.ListFiles());
        Assert.Throws<ArgumentException>(() => directory.Open("../x"));
    }

    [Fact]
    public void A_locked_directory_cannot_be_locked_again_until_released()
    {
        var directory = new FileSystemDirectory(_path);
        var held = directory.LockExclusive();
        var error = Assert.Throws<IOException>(() => new FileSystemDirectory(_path).LockExclusive());
        Assert.Contains("locked by another process", error.Message, StringComparison.Ordinal);
        held.Dispose();
        directory.LockExclusive().Dispose();
    }

    [Fact]
    public void The_wal_recovers_from_a_real_directory_and_cuts_a_torn_tail()
    {
        var options = new WalOptions { SegmentSizeBytes = 64 * 1024 };
        var expected = new List<WalEntry>();
        string segment;
        long cut;
        using (var wal = WriteAheadLog.Open(new FileSystemDirectory(_path), options, out _))
        {
            for (ulong i = 1; i <= 200; i++)
            {
                var entry = Entry(i, length: 256);
                wal.Append(entry);
                if (i % 10 == 0) wal.Sync();
                if (i <= 195) expected.Add(entry);
                if (i == 195) { wal.Sync(); }
            }
            wal.Sync();
            segment = wal.ActiveSegmentName;
            cut = wal.DurableOffsetBytes - 3 * 270 - 100; // inside entry 197
        }
        // Tear the tail: zero everything from inside entry 197 onwards, as a lost page would.
        using (var raw = File.Open(Path.Combine(_path, segment), FileMode.Open))
        {
            raw.Position = cut;
            raw.Write(new byte[raw.Length - cut]);
        }
        using var reopened = WriteAheadLog.Open(new FileSystemDirectory(_path), options, out var recovery);
        Assert.Equal(segment, recovery.TornTailFile);
        AssertSameEntries(expected.Concat([Entry(196, length: 256)]).ToList(), recovery.Entries);
    }

    [Fact]
    public void ENOSPC_from_the_operating_system_is_recognised_as_a_full_disk()
    {
        if (!OperatingSystem.IsLinux() || !File.Exists("/dev/full")) return;
        using var handle = File.OpenHandle("/dev/full", FileMode.Open, FileAccess.Write);
        var error = Assert.ThrowsAny<IOException>(() => RandomAccess.Write(handle, new byte[16], 0));
        Assert.True(FileSystemDirectory.IsDiskFull(error), $"HResult {error.HResult}: {error.Message}");
        Assert.False(FileSystemDirectory.IsDiskFull(new IOException("other", 5)));
        _ = new DiskFullException("x", error);
    }
}
