using System.Buffers.Binary;
using System.Globalization;
using Keel.Core;
using Keel.Core.Encoding;
using Keel.Core.Storage;

namespace Keel.Storage;

/// <summary>A snapshot read back from disk.</summary>
/// <param name="Index">The last log index the snapshot covers.</param>
/// <param name="Term">The term of that entry.</param>
/// <param name="Data">The opaque state-machine image.</param>
public sealed record StoredSnapshot(ulong Index, ulong Term, ReadOnlyMemory<byte> Data) : IDisposable
{
    /// <summary>The file mapping <see cref="Data"/> lies in, when the directory mapped the file instead of reading it.</summary>
    internal IDisposable? Mapping { get; init; }

    /// <summary>Unmaps the file when it was mapped (<see cref="Data"/> must not be used after); nothing otherwise.</summary>
    public void Dispose() => Mapping?.Dispose();
}

/// <summary>
/// Durable, checksummed snapshots: each is written to a temporary file, fsynced, renamed into place and the directory
/// fsynced (the classic atomic-replace recipe; etcd <c>server/etcdserver/api/snap/snapshotter.go</c> and
/// <c>fileutil.WriteAndSyncFile</c>), so a crash leaves either the old set or the new one, never a half file under a
/// final name. The newest <see cref="Retain"/> are kept; on load a leftover temporary file or a snapshot that fails its
/// checksum is skipped with a warning and the next newest is used.
/// </summary>
/// <remarks>
/// File format: <c>magic "KSNP" u32 | index u64 | term u64 | length u64 | crc32c u32 | data</c>, the CRC covering the
/// index, term, length and data. Order with the WAL: save the snapshot, then <see cref="WriteAheadLog.SaveSnapshotMarker"/>
/// and sync, then <see cref="WriteAheadLog.Compact(ulong)"/>: the WAL never refers to a snapshot that is not durable.
/// </remarks>
public sealed class SnapshotStore
{
    private const string Suffix = ".snap";
    private const string TempSuffix = ".snap.tmp";
    private const uint Magic = 0x504E534B; // "KSNP"
    private const int HeaderBytes = 4 + 8 + 8 + 8 + 4;

    /// <summary>A large snapshot is written and synced in pieces of this size.</summary>
    internal const int SyncEveryBytes = 8 << 20;

    private readonly IStorageDirectory _directory;

    /// <summary>Creates a store over <paramref name="directory"/> keeping the newest <paramref name="retain"/> snapshots.</summary>
    public SnapshotStore(IStorageDirectory directory, int retain = 3)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentOutOfRangeException.ThrowIfLessThan(retain, 1);
        _directory = directory;
        Retain = retain;
    }

    /// <summary>How many snapshots are kept (older ones are deleted after each save).</summary>
    public int Retain { get; }

    /// <summary>The file name of the snapshot at (index, term); names sort by index.</summary>
    public static string FileName(ulong index, ulong term) =>
        string.Create(CultureInfo.InvariantCulture, $"{index:x16}-{term:x16}{Suffix}");

    /// <summary>
    /// Durably saves a snapshot of <paramref name="lengthBytes"/> bytes that <paramref name="encode"/> writes through a
    /// <see cref="ChunkedImageWriter"/>: the image is streamed into the file a chunk at a time (checksummed as it goes, the
    /// header written last), so no buffer of the image's size ever exists (issue 11: an image of 1.7 GB was encoded into
    /// one buffer before it was written, doubling a five-million-key member's memory while each snapshot was taken).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The length is negative or above the largest span (2 GiB), which is what a restore reads.</exception>
    /// <param name="index">The last log index the snapshot covers.</param>
    /// <param name="term">The term of that entry.</param>
    /// <param name="lengthBytes">The image's size.</param>
    /// <param name="encode">Writes the image, exactly <paramref name="lengthBytes"/> bytes.</param>
    /// <param name="streamed">See <see cref="Save(ulong, ulong, ReadOnlySpan{byte}, IReadOnlyCollection{ulong})"/>.</param>
    /// <exception cref="DiskFullException">No space: the temporary file is removed and the existing snapshots are untouched.</exception>
    public void Save(ulong index, ulong term, long lengthBytes, SnapshotEncoder encode, IReadOnlyCollection<ulong>? streamed = null)
    {
        ArgumentNullException.ThrowIfNull(encode);
        ArgumentOutOfRangeException.ThrowIfNegative(lengthBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(lengthBytes, (long)Array.MaxLength);
        Save(index, term, lengthBytes, encode, [], streamed);
    }

    /// <summary>
    /// Durably saves a snapshot, then deletes all but the newest <see cref="Retain"/>, except those whose index is in
    /// <paramref name="streamed"/>: a leader is still streaming them to followers (Raft's
    /// <c>StreamedSnapshotIndexes</c>), and a later save deletes them once that is done.
    /// </summary>
    /// <exception cref="DiskFullException">No space: the temporary file is removed and the existing snapshots are untouched.</exception>
    public void Save(ulong index, ulong term, ReadOnlySpan<byte> data, IReadOnlyCollection<ulong>? streamed = null) =>
        Save(index, term, data.Length, null, data, streamed);

    // Both saves: the image (written by `encode`, or `data` as it is) is streamed into a temporary file a chunk at a
    // time, checksummed as it goes, the header written last, then renamed into place.
    private void Save(ulong index, ulong term, long lengthBytes, SnapshotEncoder? encode, ReadOnlySpan<byte> data, IReadOnlyCollection<ulong>? streamed)
    {
        var header = Header(index, term, lengthBytes);
        var temp = BeginTemp(index, term);
        try
        {
            using (var file = _directory.Create(temp))
            {
                // A zero header until the checksum is known (writes may not leave holes); the file is a temporary one
                // until it is complete and synced anyway.
                file.Write(0, new byte[HeaderBytes]);
                var crc = CrcOfHeader(header);
                long offset = 0, unsynced = 0;
                var writer = new ChunkedImageWriter(lengthBytes, chunk =>
                {
                    file.Write(HeaderBytes + offset, chunk);
                    crc = Crc32C.Append(crc, chunk);
                    offset += chunk.Length;
                    unsynced += chunk.Length;
                    // Synced every SyncEveryBytes, not once at the end: a single fsync of hundreds of MB of dirty pages
                    // queues the node loop's own WAL fsync behind it on the same device (measured: loop batches of
                    // 50-120 ms while a 300-MB snapshot was flushed); small steps let the WAL's syncs through between
                    // them (RocksDB's bytes_per_sync).
                    if (unsynced >= SyncEveryBytes)
                    {
                        file.Sync();
                        unsynced = 0;
                    }
                });
                if (encode is null) writer.Bytes(data);
                else encode(writer);
                writer.Complete();
                BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(28), Crc32C.Finish(crc));
                file.Write(0, header);
                file.Sync();
            }
            _directory.Rename(temp, FileName(index, term));
            _directory.SyncDirectory();
        }
        catch
        {
            // A full disk, or an encoder that failed (a bug, or an image too large), leaves no half file behind.
            try { _directory.Delete(temp); } catch (IOException) { /* recovery ignores a leftover temporary file */ }
            throw;
        }
        ApplyRetention(streamed);
    }

    private static byte[] Header(ulong index, ulong term, long lengthBytes)
    {
        var header = new byte[HeaderBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(4), index);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(12), term);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(20), (ulong)lengthBytes);
        return header;
    }

    private string BeginTemp(ulong index, ulong term)
    {
        var name = FileName(index, term);
        var temp = name[..^Suffix.Length] + TempSuffix;
        if (_directory.Exists(temp)) _directory.Delete(temp);
        return temp;
    }

    private void ApplyRetention(IReadOnlyCollection<ulong>? streamed)
    {
        var all = ListSnapshots();
        if (all.Count <= Retain) return;
        var deleted = false;
        foreach (var old in all.Take(all.Count - Retain))
        {
            if (streamed is not null && streamed.Contains(IndexOf(old))) continue;
            _directory.Delete(old);
            deleted = true;
        }
        if (deleted) _directory.SyncDirectory();
    }

    // Names are "{index:x16}-{term:x16}.snap".
    private static ulong IndexOf(string name) =>
        ulong.TryParse(name.AsSpan(0, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var index) ? index : 0;

    /// <summary>
    /// Loads the newest snapshot whose checksum verifies, or null if there is none. Leftover temporary files are
    /// deleted and damaged snapshots skipped; each is reported in <paramref name="warnings"/>.
    /// </summary>
    public StoredSnapshot? LoadNewest(List<string> warnings)
    {
        ArgumentNullException.ThrowIfNull(warnings);
        foreach (var name in _directory.ListFiles())
        {
            if (!name.EndsWith(TempSuffix, StringComparison.Ordinal)) continue;
            _directory.Delete(name);
            warnings.Add($"deleted '{name}', a snapshot that was half written when the node stopped");
        }
        var all = ListSnapshots();
        for (var i = all.Count - 1; i >= 0; i--)
        {
            var snapshot = TryRead(all[i], out var problem);
            if (snapshot is not null) return snapshot;
            warnings.Add($"ignored snapshot '{all[i]}': {problem}; an older snapshot is used instead");
        }
        return null;
    }

    /// <summary>
    /// The durable snapshot at (<paramref name="index"/>, <paramref name="term"/>) as a file to read in chunks later,
    /// instead of an image in memory. Reads only the header now (its size and checksum).
    /// </summary>
    /// <exception cref="SnapshotFileException">The file is missing or its header is damaged.</exception>
    public SnapshotFile OpenFile(ulong index, ulong term)
    {
        var name = FileName(index, term);
        if (!_directory.Exists(name)) throw new SnapshotFileException(name, 0, "the file is missing");
        using var file = _directory.Open(name);
        var header = new byte[HeaderBytes];
        if (ReadHeader(file, header) is { } problem) throw new SnapshotFileException(name, 0, problem);
        if (BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(4)) != index || BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(12)) != term)
            throw new SnapshotFileException(name, 0, "its header names another snapshot");
        return new SnapshotFile(_directory, name, HeaderBytes, file.LengthBytes - HeaderBytes, CrcOfHeader(header), BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(28)));
    }

    /// <summary>
    /// Checks that no more than <see cref="Retain"/> snapshots are kept besides those in <paramref name="streamed"/>
    /// (for tests and the simulator; call between saves).
    /// </summary>
    public void AssertInvariants(IReadOnlyCollection<ulong>? streamed = null) =>
        Keel.Core.Invariant.Check(ListSnapshots().Count(n => streamed is null || !streamed.Contains(IndexOf(n))) <= Retain,
            "more snapshots are kept than the retention allows");

    private List<string> ListSnapshots() =>
        _directory.ListFiles().Where(n => n.EndsWith(Suffix, StringComparison.Ordinal)).ToList(); // ListFiles is ordinal, and names sort by index.

    /// <summary>Reads and checks a file's header (magic, and a data length that matches the file); returns the problem, or null.</summary>
    private static string? ReadHeader(IStorageFile file, Span<byte> header)
    {
        if (file.LengthBytes < HeaderBytes || file.Read(0, header) != HeaderBytes) return "it is shorter than its header";
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic
            || BinaryPrimitives.ReadUInt64LittleEndian(header[20..]) != (ulong)(file.LengthBytes - HeaderBytes))
            return "its header is damaged or the file is truncated";
        return null;
    }

    /// <summary>The CRC32C state after the header fields it covers (index, term, length), before the data.</summary>
    private static uint CrcOfHeader(ReadOnlySpan<byte> header) => Crc32C.Append(Crc32C.Start, header.Slice(4, 24));

    private StoredSnapshot? TryRead(string name, out string problem)
    {
        using var file = _directory.Open(name);
        var header = new byte[HeaderBytes];
        if (ReadHeader(file, header) is { } damaged)
        {
            problem = damaged;
            return null;
        }
        problem = "";
        // A directory that maps files hands out the page cache's pages (no copy into fresh memory, see
        // IMappingStorageDirectory); the simulator's disk is read into an array.
        var mapping = _directory is IMappingStorageDirectory mapper ? mapper.MapForRead(name, HeaderBytes) : null;
        try
        {
            ReadOnlyMemory<byte> data;
            if (mapping is not null) data = mapping.Memory;
            else
            {
                var copy = new byte[file.LengthBytes - HeaderBytes];
                file.Read(HeaderBytes, copy);
                data = copy;
            }
            Invariant.Check(data.Length == file.LengthBytes - HeaderBytes, "a snapshot is read whole");
            var crc = Crc32C.Finish(Crc32C.Append(CrcOfHeader(header), data.Span));
            if (crc != BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(28)))
            {
                problem = "CRC32C mismatch";
                mapping?.Dispose();
                return null;
            }
            return new StoredSnapshot(BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(4)), BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(12)), data)
            {
                Mapping = mapping,
            };
        }
        catch
        {
            mapping?.Dispose();
            throw;
        }
    }
}

/// <summary>Writes a snapshot image through <paramref name="writer"/>, which streams it to the file in bounded chunks.</summary>
public delegate void SnapshotEncoder(ChunkedImageWriter writer);

/// <summary>
/// A durable snapshot left on disk (see <see cref="SnapshotStore.OpenFile"/>): its image is read in chunks when a
/// follower needs it, so a member does not keep its last image (hundreds of MB at a million keys) in memory.
/// </summary>
public sealed class SnapshotFile
{
    private readonly IStorageDirectory _directory;
    private readonly long _dataOffsetBytes;
    private readonly uint _crcOfHeader;
    private readonly uint _expectedCrc;

    internal SnapshotFile(IStorageDirectory directory, string name, long dataOffsetBytes, long lengthBytes, uint crcOfHeader, uint expectedCrc)
    {
        _directory = directory;
        Name = name;
        _dataOffsetBytes = dataOffsetBytes;
        LengthBytes = lengthBytes;
        _crcOfHeader = crcOfHeader;
        _expectedCrc = expectedCrc;
    }

    /// <summary>The file's name in its directory.</summary>
    public string Name { get; }

    /// <summary>Size of the image (the file without its header).</summary>
    public long LengthBytes { get; }

    /// <summary>A reader for one pass over the image.</summary>
    public Reader OpenReader() => new(this);

    /// <summary>
    /// Reads chunks of the image and checks its CRC32C as they go by: when the last chunk is asked for, every byte
    /// before it has been checked (read in order, or read again now for a pass that was not in order), and a damaged
    /// image throws instead of returning it. Reopens the file per chunk, so a snapshot deleted by retention during a
    /// slow transfer is seen as gone (<see cref="TryRead"/> returns false) rather than read from another file's bytes.
    /// </summary>
    public sealed class Reader
    {
        private readonly SnapshotFile _file;
        private uint _crc;
        private long _checkedBytes;

        internal Reader(SnapshotFile file)
        {
            _file = file;
            _crc = file._crcOfHeader;
        }

        /// <summary>The <paramref name="countBytes"/> bytes at <paramref name="offsetBytes"/> of the image.</summary>
        /// <exception cref="ArgumentOutOfRangeException">The range is outside the image.</exception>
        /// <exception cref="SnapshotFileException">The file is gone, short, or fails its checksum.</exception>
        public byte[] Read(long offsetBytes, int countBytes) => TryRead(offsetBytes, countBytes, out var chunk)
            ? chunk
            : throw new SnapshotFileException(_file.Name, _file._dataOffsetBytes + offsetBytes, "it is gone from the directory (a newer snapshot replaced it)");

        /// <summary>
        /// Reads the <paramref name="countBytes"/> bytes at <paramref name="offsetBytes"/> of the image into
        /// <paramref name="chunk"/>; false when the file is no longer in the directory (retention deleted it after a
        /// newer snapshot was saved).
        /// </summary>
        /// <exception cref="ArgumentOutOfRangeException">The range is outside the image.</exception>
        /// <exception cref="SnapshotFileException">The file cannot be opened though it exists, is short, or fails its checksum.</exception>
        public bool TryRead(long offsetBytes, int countBytes, out byte[] chunk)
        {
            if (offsetBytes < 0 || countBytes < 0 || offsetBytes > _file.LengthBytes - countBytes)
                throw new ArgumentOutOfRangeException(nameof(offsetBytes), $"[{offsetBytes}, +{countBytes}) is outside the image of {_file.LengthBytes} bytes");
            chunk = new byte[countBytes];
            if (!ReadExactly(offsetBytes, chunk))
            {
                chunk = [];
                return false;
            }
            if (offsetBytes == 0 && _checkedBytes > 0)
            {
                _crc = _file._crcOfHeader;
                _checkedBytes = 0;
            }
            if (offsetBytes == _checkedBytes)
            {
                _crc = Crc32C.Append(_crc, chunk);
                _checkedBytes += countBytes;
            }
            if (offsetBytes + countBytes == _file.LengthBytes && !CheckWhole())
            {
                chunk = [];
                return false;
            }
            return true;
        }

        // False when the file went away before the rest could be checked.
        private bool CheckWhole()
        {
            if (_checkedBytes < _file.LengthBytes)
            {
                // Not read in order: check the rest now, before the last chunk leaves.
                var buffer = new byte[64 * 1024];
                while (_checkedBytes < _file.LengthBytes)
                {
                    var count = (int)Math.Min(buffer.Length, _file.LengthBytes - _checkedBytes);
                    if (!ReadExactly(_checkedBytes, buffer.AsSpan(0, count))) return false;
                    _crc = Crc32C.Append(_crc, buffer.AsSpan(0, count));
                    _checkedBytes += count;
                }
            }
            if (Crc32C.Finish(_crc) != _file._expectedCrc)
                throw new SnapshotFileException(_file.Name, 0, "CRC32C mismatch: the image was damaged on disk after it was written");
            return true;
        }

        // False when the file is no longer in the directory.
        private bool ReadExactly(long offsetBytes, Span<byte> destination)
        {
            IStorageFile file;
            try
            {
                file = _file._directory.Open(_file.Name);
            }
            catch (IOException e)
            {
                if (!_file._directory.Exists(_file.Name)) return false;
                throw new SnapshotFileException(_file.Name, _file._dataOffsetBytes + offsetBytes, $"it cannot be opened ({e.Message})");
            }
            using (file)
            {
                var read = 0;
                while (read < destination.Length)
                {
                    var n = file.Read(_file._dataOffsetBytes + offsetBytes + read, destination[read..]);
                    if (n <= 0) throw new SnapshotFileException(_file.Name, _file._dataOffsetBytes + offsetBytes + read, "it ends before its header says");
                    read += n;
                }
            }
            return true;
        }
    }
}

/// <summary>A stored snapshot cannot be read back as it was written: the member must not send or use it.</summary>
public sealed class SnapshotFileException : IOException
{
    /// <summary>Creates the exception naming the file, the byte offset and the problem.</summary>
    public SnapshotFileException(string fileName, long offsetBytes, string problem)
        : base($"snapshot file '{fileName}' at byte offset {offsetBytes}: {problem}")
    {
        FileName = fileName;
        OffsetBytes = offsetBytes;
    }

    /// <summary>The file's name in the data directory.</summary>
    public string FileName { get; }

    /// <summary>Where in the file the problem is.</summary>
    public long OffsetBytes { get; }
}
