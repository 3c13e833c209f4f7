using System.Buffers.Binary;
using Keel.Core;
using Keel.Core.Storage;

namespace Keel.Storage;

// Reading entries back (issue 11: a bounded in-memory log). Raft's storage keeps only the newest applied entries'
// payloads in memory; an older entry a lagging follower needs is read from its record here. The WAL knows where every
// durable entry's record is (segment and byte offset, 16 bytes an entry), from recovery and from each sync.
public sealed partial class WriteAheadLog
{
    private readonly record struct EntryLocation(ulong Sequence, long OffsetBytes);

    // Locations of the entries [_locationsFirstIndex, _locationsFirstIndex + _locations.Count), all durable.
    private readonly List<EntryLocation> _locations = [];
    private ulong _locationsFirstIndex;

    // Entries buffered since the last sync: their index and where their record starts in the pending buffer.
    private readonly List<(ulong Index, int PendingOffset)> _pendingEntries = [];

    /// <summary>
    /// True when the entry at <paramref name="index"/> is durable and its record can be read back with
    /// <see cref="OpenReader"/> (it was written or recovered by this instance and its segment is not compacted).
    /// </summary>
    public bool CanRead(ulong index) =>
        index >= _locationsFirstIndex && index - _locationsFirstIndex < (ulong)_locations.Count && index <= _durableLastIndex;

    /// <summary>The lowest entry index that can be read back (meaningful when <see cref="CanRead"/> holds for it).</summary>
    public ulong FirstReadableIndex => _locationsFirstIndex;

    /// <summary>
    /// A reader of durable entries' records, for one batch of reads on this thread; dispose it before the WAL writes,
    /// compacts or is disposed again.
    /// </summary>
    public WalEntryReader OpenReader()
    {
        ThrowIfFailed();
        return new WalEntryReader(this);
    }

    private void AddRecoveredLocations(List<EntryLocation> locations, ulong firstIndex)
    {
        _locations.AddRange(locations);
        _locationsFirstIndex = firstIndex;
    }

    private void NoteBufferedEntry(ulong index, int pendingOffset) => _pendingEntries.Add((index, pendingOffset));

    // After a sync made the first syncedBytes of the pending buffer durable at baseOffset of the active segment: the
    // entries in them are durable there; the later ones stay pending, their offsets now from the new start.
    private void OnPendingSynced(long baseOffset, int syncedBytes)
    {
        var sequence = _segments[^1].Sequence;
        var synced = 0;
        foreach (var (index, pendingOffset) in _pendingEntries)
        {
            if (pendingOffset >= syncedBytes) break;
            synced++;
            var count = (ulong)_locations.Count;
            if (count > 0 && index >= _locationsFirstIndex && index < _locationsFirstIndex + count)
                // Raft replaced an uncommitted suffix: the later record wins, as at recovery.
                _locations.RemoveRange((int)(index - _locationsFirstIndex), (int)(count - (index - _locationsFirstIndex)));
            if (_locations.Count == 0 || index != _locationsFirstIndex + (ulong)_locations.Count)
            {
                // The first entry, or the first after a snapshot marker moved the log past the older ones.
                _locations.Clear();
                _locationsFirstIndex = index;
            }
            _locations.Add(new EntryLocation(sequence, baseOffset + pendingOffset));
        }
        if (synced == _pendingEntries.Count)
        {
            _pendingEntries.Clear();
            return;
        }
        _pendingEntries.RemoveRange(0, synced);
        for (var i = 0; i < _pendingEntries.Count; i++)
            _pendingEntries[i] = (_pendingEntries[i].Index, _pendingEntries[i].PendingOffset - syncedBytes);
    }

    // After Compact deleted segments: their entries cannot be read back any more.
    private void TrimLocations()
    {
        var oldest = _segments[0].Sequence;
        var drop = 0;
        while (drop < _locations.Count && _locations[drop].Sequence < oldest) drop++;
        if (drop == 0) return;
        _locations.RemoveRange(0, drop);
        _locationsFirstIndex += (ulong)drop;
    }

    private (string Name, long OffsetBytes) Locate(ulong index)
    {
        Invariant.Check(CanRead(index), "an entry read back from the WAL is durable and in a retained segment");
        var location = _locations[(int)(index - _locationsFirstIndex)];
        var ordinal = location.Sequence - _segments[0].Sequence;
        Invariant.Check(location.Sequence >= _segments[0].Sequence && ordinal < (ulong)_segments.Count,
            "an entry's location names a retained segment");
        return (_segments[(int)ordinal].Name, location.OffsetBytes);
    }

    /// <summary>
    /// Reads durable entries back from their records (<see cref="WriteAheadLog.OpenReader"/>): a window of the segment
    /// file is read at a time, so consecutive entries cost one read per 64 KiB; every record's checksum is verified,
    /// and a damaged one is a <see cref="WalCorruptionException"/> naming the file and offset (the member must stop).
    /// </summary>
    public sealed class WalEntryReader : IDisposable
    {
        private const int WindowBytes = 64 * 1024;
        private readonly WriteAheadLog _wal;
        private IStorageFile? _file;
        private bool _ownsFile;
        private byte[] _window = [];
        private long _windowOffset;
        private int _windowBytes;

        internal WalEntryReader(WriteAheadLog wal) => _wal = wal;

        /// <summary>The entry at <paramref name="index"/>, its payload in an array of its own.</summary>
        /// <exception cref="WalCorruptionException">The record is damaged or is not that entry's.</exception>
        public WalEntry Read(ulong index)
        {
            ObjectDisposedException.ThrowIf(_wal._disposed, _wal);
            var (name, offset) = _wal.Locate(index);
            var file = FileFor(name);
            var header = Window(file, offset, WalRecord.HeaderBytes);
            if (header.Length < WalRecord.HeaderBytes)
                throw new WalCorruptionException(name, offset, "an entry's record lies past the end of its segment");
            var length = BinaryPrimitives.ReadUInt32LittleEndian(header);
            if (length > (uint)_wal._options.MaxPayloadBytes)
                throw new WalCorruptionException(name, offset, $"the record length {length} exceeds the maximum payload of {_wal._options.MaxPayloadBytes} bytes");
            var frame = Window(file, offset, WalRecord.FrameBytes((int)length));
            var outcome = WalRecord.TryRead(frame, 0, _wal._options.MaxPayloadBytes, out var type, out var payloadOffset, out var payloadBytes, out var problem);
            if (outcome != WalRecord.Outcome.Record)
                throw new WalCorruptionException(name, offset, problem.Length > 0 ? problem : "an entry's record is missing");
            if (type != WalRecordType.Entry || payloadBytes < 16)
                throw new WalCorruptionException(name, offset, $"expected the record of entry {index}, found a {type} record");
            var payload = frame.Slice(payloadOffset, payloadBytes);
            var recordIndex = BinaryPrimitives.ReadUInt64LittleEndian(payload);
            if (recordIndex != index)
                throw new WalCorruptionException(name, offset, $"expected the record of entry {index}, found entry {recordIndex}");
            var term = BinaryPrimitives.ReadUInt64LittleEndian(payload[8..]);
            return new WalEntry(index, term, payload[16..].ToArray());
        }

        private IStorageFile FileFor(string name)
        {
            if (_file?.Name == name) return _file;
            ReleaseFile();
            _windowBytes = 0;
            // The active segment is read through the WAL's own handle (a second writable handle is refused).
            if (_wal._active.Name == name) _file = _wal._active;
            else
            {
                _file = _wal._directory.Open(name);
                _ownsFile = true;
            }
            return _file;
        }

        // At least `bytes` bytes of the file from `offset` (fewer only at the end of the file).
        private ReadOnlySpan<byte> Window(IStorageFile file, long offset, int bytes)
        {
            if (offset >= _windowOffset && offset + bytes <= _windowOffset + _windowBytes)
                return _window.AsSpan((int)(offset - _windowOffset), bytes);
            var size = Math.Max(bytes, WindowBytes);
            if (_window.Length < size) _window = new byte[size];
            _windowOffset = offset;
            _windowBytes = file.Read(offset, _window.AsSpan(0, size));
            return _window.AsSpan(0, Math.Min(bytes, _windowBytes));
        }

        private void ReleaseFile()
        {
            if (_ownsFile) _file?.Dispose();
            _file = null;
            _ownsFile = false;
        }

        /// <inheritdoc/>
        public void Dispose() => ReleaseFile();
    }
}
