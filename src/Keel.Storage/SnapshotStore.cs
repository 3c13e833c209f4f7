using System.Buffers.Binary;
using System.Globalization;
using Keel.Core.Storage;

namespace Keel.Storage;

/// <summary>A snapshot read back from disk.</summary>
/// <param name="Index">The last log index the snapshot covers.</param>
/// <param name="Term">The term of that entry.</param>
/// <param name="Data">The opaque state-machine image.</param>
public sealed record StoredSnapshot(ulong Index, ulong Term, ReadOnlyMemory<byte> Data);

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

    /// <summary>Durably saves a snapshot, then deletes all but the newest <see cref="Retain"/>.</summary>
    /// <exception cref="DiskFullException">No space: the temporary file is removed and the existing snapshots are untouched.</exception>
    public void Save(ulong index, ulong term, ReadOnlySpan<byte> data)
    {
        var name = FileName(index, term);
        var temp = name[..^Suffix.Length] + TempSuffix;
        if (_directory.Exists(temp)) _directory.Delete(temp);
        var header = new byte[HeaderBytes];
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(4), index);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(12), term);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(20), (ulong)data.Length);
        var crc = Crc32C.Finish(Crc32C.Append(Crc32C.Append(Crc32C.Start, header.AsSpan(4, 24)), data));
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(28), crc);
        try
        {
            using (var file = _directory.Create(temp))
            {
                file.Write(0, header);
                file.Write(HeaderBytes, data);
                file.Sync();
            }
            _directory.Rename(temp, name);
            _directory.SyncDirectory();
        }
        catch (DiskFullException)
        {
            try { _directory.Delete(temp); } catch (IOException) { /* recovery ignores a leftover temporary file */ }
            throw;
        }
        var all = ListSnapshots();
        if (all.Count <= Retain) return;
        foreach (var old in all.Take(all.Count - Retain)) _directory.Delete(old);
        _directory.SyncDirectory();
    }

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

    /// <summary>Checks that no more than <see cref="Retain"/> snapshots are kept (for tests and the simulator; call between saves).</summary>
    public void AssertInvariants() =>
        Keel.Core.Invariant.Check(ListSnapshots().Count <= Retain, "more snapshots are kept than the retention allows");

    private List<string> ListSnapshots() =>
        _directory.ListFiles().Where(n => n.EndsWith(Suffix, StringComparison.Ordinal)).ToList(); // ListFiles is ordinal, and names sort by index.

    private StoredSnapshot? TryRead(string name, out string problem)
    {
        using var file = _directory.Open(name);
        var length = file.LengthBytes;
        problem = "";
        if (length < HeaderBytes)
        {
            problem = "it is shorter than its header";
            return null;
        }
        var header = new byte[HeaderBytes];
        file.Read(0, header);
        var dataLength = BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(20));
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Magic || dataLength != (ulong)(length - HeaderBytes))
        {
            problem = "its header is damaged or the file is truncated";
            return null;
        }
        var data = new byte[dataLength];
        file.Read(HeaderBytes, data);
        var crc = Crc32C.Finish(Crc32C.Append(Crc32C.Append(Crc32C.Start, header.AsSpan(4, 24)), data));
        if (crc != BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(28)))
        {
            problem = "CRC32C mismatch";
            return null;
        }
        return new StoredSnapshot(BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(4)), BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(12)), data);
    }
}
