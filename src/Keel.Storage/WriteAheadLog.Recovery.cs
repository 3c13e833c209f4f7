using System.Buffers.Binary;
using Keel.Core.Storage;

namespace Keel.Storage;

public sealed partial class WriteAheadLog
{
    /// <summary>
    /// Opens the WAL in <paramref name="directory"/> (creating a new one if it holds no segment) and recovers its
    /// content: segments are scanned in sequence order; a torn or half-written record at the tail of the last segment
    /// (never acknowledged, since acknowledgement waits for the sync) is cut off and the space zeroed; a damaged record
    /// anywhere else, a gap in indexes or a missing segment throws <see cref="WalCorruptionException"/>. Zero bytes
    /// after the last record are the preallocated clean end.
    /// </summary>
    /// <exception cref="WalCorruptionException">The log is damaged where acknowledged records may live.</exception>
    public static WriteAheadLog Open(IStorageDirectory directory, WalOptions options, out WalRecovery recovery)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(options);
        if (options.SegmentSizeBytes < 256) throw new ArgumentOutOfRangeException(nameof(options), "segments must be at least 256 bytes");
        var warnings = new List<string>();
        var segments = new List<Segment>();
        foreach (var name in directory.ListFiles())
        {
            if (!name.EndsWith(SegmentSuffix, StringComparison.Ordinal)) continue;
            if (!TryParseSegmentName(name, out var sequence, out var firstIndex))
                throw new WalCorruptionException(name, 0, "the file name is not '<sequence:x16>-<firstIndex:x16>.wal'");
            segments.Add(new Segment(sequence, firstIndex, name));
        }
        segments.Sort((a, b) => a.Sequence.CompareTo(b.Sequence));
        for (var i = 1; i < segments.Count; i++)
        {
            if (segments[i].Sequence != segments[i - 1].Sequence + 1)
                throw new WalCorruptionException(segments[i].Name, 0,
                    $"segment number {segments[i - 1].Sequence + 1} between '{segments[i - 1].Name}' and '{segments[i].Name}' is missing");
        }

        var state = new RecoveryState();
        // Segments are mapped where the directory can (the page cache's pages, no fresh copy of 64 MB per segment) and
        // stay mapped until the entries kept are copied out, below.
        var mappings = new List<IDisposable>();
        try
        {
            return Recover(directory, options, segments, state, mappings, warnings, out recovery);
        }
        finally
        {
            foreach (var mapping in mappings) mapping.Dispose();
        }
    }

    private static WriteAheadLog Recover(IStorageDirectory directory, WalOptions options, List<Segment> segments, RecoveryState state,
        List<IDisposable> mappings, List<string> warnings, out WalRecovery recovery)
    {
        IStorageFile? active = null;
        long activeOffset = 0;
        string? tornFile = null;
        long tornOffset = 0, tornBytes = 0;
        for (var i = 0; i < segments.Count; i++)
        {
            var segment = segments[i];
            var isLast = i == segments.Count - 1;
            var file = directory.Open(segment.Name);
            var keepOpen = false;
            try
            {
                var bytes = ReadOrMap(directory, file, mappings);
                var scan = ScanSegment(bytes, segment, isLast, i == 0, options, state);
                if (scan.HeaderMissing)
                {
                    // Only possible for the last segment: a roll that crashed before its opening records became
                    // durable, so nothing in it was ever acknowledged.
                    file.Dispose();
                    directory.Delete(segment.Name);
                    directory.SyncDirectory();
                    warnings.Add($"deleted segment '{segment.Name}', whose opening records were never completely written (a crash during a segment roll)");
                    segments.RemoveAt(i);
                    break;
                }
                if (scan.TornAtOffset is { } cut)
                {
                    tornFile = segment.Name;
                    tornOffset = cut;
                    tornBytes = bytes.Span.LastIndexOfAnyExcept((byte)0) + 1 - cut;
                    file.Truncate(cut);
                    file.Preallocate(options.SegmentSizeBytes);
                    file.Sync();
                    warnings.Add($"cut a torn tail of '{segment.Name}' at byte offset {cut} ({scan.TornReason}); it was never acknowledged");
                }
                if (isLast)
                {
                    active = file;
                    activeOffset = scan.EndOffset;
                    keepOpen = true;
                }
            }
            finally
            {
                if (!keepOpen) file.Dispose();
            }
        }

        if (segments.Count > 0 && segments[0].FirstIndex > 1 && state.Snapshot.Index < segments[0].FirstIndex - 1)
        {
            active?.Dispose();
            throw new WalCorruptionException(segments[0].Name, 0,
                $"entries before index {segments[0].FirstIndex} are missing: earlier segments are gone but the newest snapshot marker only covers index {state.Snapshot.Index}");
        }

        if (active is null)
        {
            if (segments.Count == 0)
            {
                // A new log, or one whose only segment was created by a crashed first open: start afresh.
                var first = new Segment(0, state.LastIndex + 1, SegmentName(0, state.LastIndex + 1));
                active = directory.Create(first.Name);
                active.Preallocate(options.SegmentSizeBytes);
                activeOffset = WriteSegmentStart(active, first, state.HardState, state.Snapshot);
                active.Sync();
                directory.SyncDirectory();
                segments.Add(first);
            }
            else
            {
                // The torn segment was the newest of several: append to the previous one, which rolls at the next sync.
                var previous = segments[^1];
                active = directory.Open(previous.Name);
                var bytes = ReadAll(active);
                var replay = new RecoveryState();
                activeOffset = ScanSegment(bytes, previous, isLast: true, isFirst: true, options, replay).EndOffset;
            }
        }

        var entries = state.Entries;
        var skip = 0;
        while (skip < entries.Count && entries[skip].Index <= state.Snapshot.Index) skip++;
        if (skip > 0)
        {
            entries.RemoveRange(0, skip);
            state.Locations.RemoveRange(0, skip);
        }
        // Each kept entry gets its own array: nothing handed out refers to a segment's mapping (unmapped on return) or
        // keeps a whole 64 MB segment array alive for one entry.
        for (var e = 0; e < entries.Count; e++) entries[e] = entries[e] with { Payload = entries[e].Payload.ToArray() };
        recovery = new WalRecovery(state.HardState, state.Snapshot, entries, tornFile, tornOffset, tornBytes, warnings);
        var wal = new WriteAheadLog(directory, options, segments, active, activeOffset, state.LastIndex, state.HardState, state.Snapshot);
        wal.AddRecoveredLocations(state.Locations, entries.Count > 0 ? entries[0].Index : 0);
        wal.AssertInvariants();
        return wal;
    }

    private sealed class RecoveryState
    {
        public readonly List<WalEntry> Entries = [];
        public readonly List<EntryLocation> Locations = [];
        public ulong LastIndex;
        public WalHardState HardState;
        public WalSnapshotMarker Snapshot;
    }

    private readonly record struct SegmentScan(long EndOffset, long? TornAtOffset, string? TornReason, bool HeaderMissing);

    private static SegmentScan ScanSegment(ReadOnlyMemory<byte> memory, Segment segment, bool isLast, bool isFirst, WalOptions options, RecoveryState state)
    {
        var bytes = memory.Span;
        var offset = 0;
        var outcome = WalRecord.TryRead(bytes, 0, options.MaxPayloadBytes, out var type, out var payloadOffset, out var payloadBytes, out var problem);
        if (outcome != WalRecord.Outcome.Record || type != WalRecordType.SegmentHeader || payloadBytes != 16)
        {
            if (isLast && outcome is WalRecord.Outcome.CleanEnd or WalRecord.Outcome.Torn)
                return new SegmentScan(0, null, null, HeaderMissing: true);
            throw new WalCorruptionException(segment.Name, 0,
                outcome == WalRecord.Outcome.Record ? "the segment does not start with a segment header" : $"the segment header is damaged: {problem}");
        }
        var sequence = BinaryPrimitives.ReadUInt64LittleEndian(bytes[payloadOffset..]);
        var firstIndex = BinaryPrimitives.ReadUInt64LittleEndian(bytes[(payloadOffset + 8)..]);
        if (sequence != segment.Sequence || firstIndex != segment.FirstIndex)
            throw new WalCorruptionException(segment.Name, 0,
                $"the header says sequence {sequence} and first index {firstIndex}, which does not match the file name");
        if (isFirst) state.LastIndex = firstIndex - 1;
        else if (firstIndex != state.LastIndex + 1)
            throw new WalCorruptionException(segment.Name, 0,
                $"the segment starts at index {firstIndex} but the previous segments end at index {state.LastIndex}: entries are missing");
        offset = payloadOffset + payloadBytes + 1;

        // The hard state and snapshot marker that open every segment are what lets compaction delete older segments
        // without forgetting a vote. They become durable with the segment's first batch (one fdatasync), so if they
        // are incomplete in the last segment nothing in it was acknowledged, and the segment is dropped whole: keeping
        // it would let a later compaction delete the only copy of the hard state.
        foreach (var expected in (ReadOnlySpan<WalRecordType>)[WalRecordType.HardState, WalRecordType.SnapshotMarker])
        {
            outcome = WalRecord.TryRead(bytes, offset, options.MaxPayloadBytes, out type, out payloadOffset, out payloadBytes, out problem);
            if (outcome is WalRecord.Outcome.Torn or WalRecord.Outcome.CleanEnd && isLast)
                return new SegmentScan(0, null, null, HeaderMissing: true);
            if (outcome != WalRecord.Outcome.Record)
                throw new WalCorruptionException(segment.Name, offset, outcome == WalRecord.Outcome.Corrupt ? problem : "the segment's opening hard state and snapshot marker are missing");
            if (type != expected)
                throw new WalCorruptionException(segment.Name, offset, $"the segment's opening records are out of order: found {type} where {expected} belongs");
            Apply(memory, segment, offset, type, payloadOffset, payloadBytes, state);
            offset = payloadOffset + payloadBytes + 1;
        }

        while (true)
        {
            outcome = WalRecord.TryRead(bytes, offset, options.MaxPayloadBytes, out type, out payloadOffset, out payloadBytes, out problem);
            switch (outcome)
            {
                case WalRecord.Outcome.Record:
                    Apply(memory, segment, offset, type, payloadOffset, payloadBytes, state);
                    offset = payloadOffset + payloadBytes + 1;
                    continue;
                case WalRecord.Outcome.CleanEnd:
                    if (!bytes[offset..].ContainsAnyExcept((byte)0)) return new SegmentScan(offset, null, null, false);
                    if (isLast) return new SegmentScan(offset, offset, "non-zero bytes after an empty record header", false);
                    throw new WalCorruptionException(segment.Name, offset, "non-zero bytes follow the end of the records in a segment that is not the last");
                case WalRecord.Outcome.Torn:
                    if (isLast) return new SegmentScan(offset, offset, problem, false);
                    throw new WalCorruptionException(segment.Name, offset, $"{problem}, in a segment that is not the last (it was synced before the next segment began)");
                default:
                    throw new WalCorruptionException(segment.Name, offset, problem);
            }
        }
    }

    private static void Apply(ReadOnlyMemory<byte> bytes, Segment segment, int recordOffset, WalRecordType type, int payloadOffset, int payloadBytes, RecoveryState state)
    {
        var payload = bytes.Span.Slice(payloadOffset, payloadBytes);
        switch (type)
        {
            case WalRecordType.Entry when payloadBytes >= 16:
            {
                var index = BinaryPrimitives.ReadUInt64LittleEndian(payload);
                var term = BinaryPrimitives.ReadUInt64LittleEndian(payload[8..]);
                if (index == 0 || index > state.LastIndex + 1)
                    throw new WalCorruptionException(segment.Name, recordOffset,
                        $"entry index {index} does not follow the last index {state.LastIndex}: entries are missing");
                var entries = state.Entries;
                if (entries.Count > 0 && index <= entries[^1].Index)
                {
                    // Raft replaced an uncommitted suffix: the later record wins, as in etcd's WAL ReadAll.
                    var keep = index <= entries[0].Index ? 0 : (int)(index - entries[0].Index);
                    entries.RemoveRange(keep, entries.Count - keep);
                    state.Locations.RemoveRange(keep, state.Locations.Count - keep);
                }
                entries.Add(new WalEntry(index, term, bytes.Slice(payloadOffset + 16, payloadBytes - 16)));
                state.Locations.Add(new EntryLocation(segment.Sequence, recordOffset));
                state.LastIndex = index;
                return;
            }
            case WalRecordType.HardState when payloadBytes == 24:
                state.HardState = new WalHardState(BinaryPrimitives.ReadUInt64LittleEndian(payload),
                    BinaryPrimitives.ReadUInt64LittleEndian(payload[8..]), BinaryPrimitives.ReadUInt64LittleEndian(payload[16..]));
                return;
            case WalRecordType.SnapshotMarker when payloadBytes == 16:
            {
                var marker = new WalSnapshotMarker(BinaryPrimitives.ReadUInt64LittleEndian(payload), BinaryPrimitives.ReadUInt64LittleEndian(payload[8..]));
                if (marker.Index < state.Snapshot.Index)
                    throw new WalCorruptionException(segment.Name, recordOffset,
                        $"snapshot marker index {marker.Index} is below the earlier marker {state.Snapshot.Index}");
                state.Snapshot = marker;
                if (marker.Index > state.LastIndex)
                {
                    state.LastIndex = marker.Index;
                    state.Entries.Clear();
                    state.Locations.Clear();
                }
                return;
            }
            default:
                throw new WalCorruptionException(segment.Name, recordOffset,
                    $"record of type {type} with a {payloadBytes}-byte payload is malformed or misplaced");
        }
    }

    private static byte[] ReadAll(IStorageFile file)
    {
        var length = file.LengthBytes;
        if (length > int.MaxValue) throw new IOException($"segment '{file.Name}' is larger than 2 GiB");
        var bytes = new byte[length];
        var read = file.Read(0, bytes);
        if (read != length) throw new IOException($"short read of '{file.Name}': {read} of {length} bytes");
        return bytes;
    }

    /// <summary>A segment's bytes: mapped when the directory maps files (the mapping is added to <paramref name="mappings"/>), read otherwise.</summary>
    private static ReadOnlyMemory<byte> ReadOrMap(IStorageDirectory directory, IStorageFile file, List<IDisposable> mappings)
    {
        if (directory is not IMappingStorageDirectory mapper) return ReadAll(file);
        var mapping = mapper.MapForRead(file.Name, 0);
        mappings.Add(mapping);
        return mapping.Memory;
    }
}
