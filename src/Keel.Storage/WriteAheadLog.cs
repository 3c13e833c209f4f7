using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using Keel.Core;
using Keel.Core.Storage;

namespace Keel.Storage;

/// <summary>
/// A write-ahead log of opaque entries plus Raft hard state and snapshot markers, in preallocated segment files, with
/// group commit: many proposals' records share one fdatasync.
/// </summary>
/// <remarks>
/// <para>Shape (sans-I/O in spirit: synchronous, no threads, no clock): <see cref="Append(in WalEntry)"/>,
/// <see cref="SetHardState"/> and <see cref="SaveSnapshotMarker"/> only buffer records in memory; <see cref="Sync"/>
/// writes everything buffered with one write and one fdatasync. A caller acknowledges a proposal, grants a vote or
/// answers an AppendEntries only after the <see cref="Sync"/> that covered it has returned: that is the whole
/// durability contract. Group commit is the caller appending many proposals between two syncs (etcd's raft Ready loop
/// does exactly this: one <c>wal.Save</c> per Ready, <c>server/storage/wal/wal.go</c>).</para>
/// <para>Layout follows etcd's WAL: segment files named <c>{sequence:x16}-{firstIndex:x16}.wal</c>, each starting with a
/// header record followed by the current hard state and snapshot marker (so deleting old segments never loses them),
/// preallocated to <see cref="WalOptions.SegmentSizeBytes"/> so fdatasync need not update the file size. Recovery (see
/// <see cref="Open"/>) cuts a torn tail and refuses to start on damage anywhere else.</para>
/// </remarks>
public sealed partial class WriteAheadLog : IDisposable
{
    private const string SegmentSuffix = ".wal";

    private readonly IStorageDirectory _directory;
    private readonly WalOptions _options;
    private readonly List<Segment> _segments;
    private IStorageFile _active;
    private long _durableOffsetBytes;

    private byte[] _pending = new byte[64 * 1024];
    private int _pendingBytes;
    private int _pendingRecords;
    private int _flushedBytes;   // the first pending bytes already written to the file by Flush (not synced)

    private ulong _lastIndex;
    private ulong _durableLastIndex;
    private WalHardState _hardState;
    private WalHardState _durableHardState;
    private WalSnapshotMarker _snapshot;
    private WalSnapshotMarker _durableSnapshot;

    private DiskFullException? _noSpace;
    private bool _failed;
    private bool _disposed;

    private readonly record struct Segment(ulong Sequence, ulong FirstIndex, string Name);

    private WriteAheadLog(IStorageDirectory directory, WalOptions options, List<Segment> segments, IStorageFile active,
        long durableOffsetBytes, ulong lastIndex, WalHardState hardState, WalSnapshotMarker snapshot)
    {
        _directory = directory;
        _options = options;
        _segments = segments;
        _active = active;
        _activeTarget = new SyncTarget(active);
        _durableOffsetBytes = durableOffsetBytes;
        _lastIndex = _durableLastIndex = lastIndex;
        _hardState = _durableHardState = hardState;
        _snapshot = _durableSnapshot = snapshot;
    }

    /// <summary>Index of the last entry appended, including buffered ones (the snapshot index if there are none).</summary>
    public ulong LastIndex => _lastIndex;

    /// <summary>Index of the last entry made durable by <see cref="Sync"/>.</summary>
    public ulong DurableLastIndex => _durableLastIndex;

    /// <summary>The latest hard state set (durable once <see cref="PendingRecordCount"/> is 0).</summary>
    public WalHardState HardState => _hardState;

    /// <summary>The hard state made durable by the last <see cref="Sync"/>.</summary>
    public WalHardState DurableHardState => _durableHardState;

    /// <summary>The latest durable snapshot marker.</summary>
    public WalSnapshotMarker DurableSnapshot => _durableSnapshot;

    /// <summary>Records buffered and not yet durable.</summary>
    public int PendingRecordCount => _pendingRecords;

    /// <summary>Bytes buffered and not yet durable.</summary>
    public int PendingBytes => _pendingBytes;

    /// <summary>Segment files currently making up the log.</summary>
    public int SegmentCount => _segments.Count;

    /// <summary>Name of the segment being appended to.</summary>
    public string ActiveSegmentName => _segments[^1].Name;

    /// <summary>Byte offset in the active segment up to which records are durable.</summary>
    internal long DurableOffsetBytes => _durableOffsetBytes;

    /// <summary>True while the NOSPACE alarm is raised: appends are refused until a <see cref="Sync"/> succeeds.</summary>
    public bool NoSpaceAlarm => _noSpace is not null;

    /// <summary>Buffers one entry. Its index must be at most <see cref="LastIndex"/> + 1; a lower index replaces the uncommitted suffix from there (Raft log truncation).</summary>
    /// <exception cref="WalNoSpaceException">The NOSPACE alarm is raised.</exception>
    public void Append(in WalEntry entry) => AppendEntry(entry.Index, entry.Term, [], entry.Payload.Span);

    /// <summary>
    /// As <see cref="Append(in WalEntry)"/> for a payload of <paramref name="payloadPrefix"/> followed by
    /// <paramref name="payloadRest"/>, framed straight from the caller's buffer: the same bytes on disk as a payload
    /// built first, without building it (one copy of the value fewer on every member for every entry).
    /// </summary>
    /// <exception cref="WalNoSpaceException">The NOSPACE alarm is raised.</exception>
    public void Append(ulong index, ulong term, byte payloadPrefix, ReadOnlySpan<byte> payloadRest) =>
        AppendEntry(index, term, new ReadOnlySpan<byte>(in payloadPrefix), payloadRest);

    // An entry's payload is payloadHead (at most one byte, framed with the index and term) followed by payloadRest.
    private void AppendEntry(ulong index, ulong term, ReadOnlySpan<byte> payloadHead, ReadOnlySpan<byte> payloadRest)
    {
        ThrowIfUnusable();
        Invariant.Check(index > _snapshot.Index, "an entry at or below the snapshot index cannot be appended");
        Invariant.Check(index <= _lastIndex + 1, "appending with a gap in the log indexes");
        Invariant.Check(index > _hardState.Commit, "overwriting a committed entry");
        Debug.Assert(payloadHead.Length <= 1, "a payload head of at most one byte");
        Span<byte> fixedPart = stackalloc byte[17];
        BinaryPrimitives.WriteUInt64LittleEndian(fixedPart, index);
        BinaryPrimitives.WriteUInt64LittleEndian(fixedPart[8..], term);
        payloadHead.CopyTo(fixedPart[16..]);
        var recordOffset = _pendingBytes;
        Buffer(WalRecordType.Entry, fixedPart[..(16 + payloadHead.Length)], payloadRest);
        // Only once buffered: a record refused as too large must leave no location behind.
        NoteBufferedEntry(index, recordOffset);
        _lastIndex = index;
    }

    /// <summary>Buffers a batch of entries (group commit: the whole batch becomes durable at the next <see cref="Sync"/>).</summary>
    /// <exception cref="WalNoSpaceException">The NOSPACE alarm is raised.</exception>
    public void Append(ReadOnlySpan<WalEntry> batch)
    {
        foreach (ref readonly var entry in batch) Append(in entry);
    }

    /// <summary>Buffers a new hard state; a vote or term may be acted on only after the next <see cref="Sync"/>.</summary>
    /// <exception cref="WalNoSpaceException">The NOSPACE alarm is raised.</exception>
    public void SetHardState(WalHardState hardState)
    {
        ThrowIfUnusable();
        Invariant.Check(hardState.Term >= _hardState.Term, "the term moved backwards");
        Invariant.Check(hardState.Term != _hardState.Term || _hardState.Vote == 0 || hardState.Vote == _hardState.Vote,
            "the vote changed within a term");
        Invariant.Check(hardState.Commit >= _hardState.Commit, "the commit index moved backwards");
        Span<byte> fixedPart = stackalloc byte[24];
        WriteHardState(fixedPart, hardState);
        Buffer(WalRecordType.HardState, fixedPart, []);
        _hardState = hardState;
    }

    /// <summary>
    /// Buffers a snapshot marker. Save the snapshot itself (<see cref="SnapshotStore.Save(ulong, ulong, ReadOnlySpan{byte}, IReadOnlyCollection{ulong})"/>) first: a marker must never
    /// point at a snapshot that is not durable. A marker beyond <see cref="LastIndex"/> resets the log to start after it.
    /// </summary>
    /// <exception cref="WalNoSpaceException">The NOSPACE alarm is raised.</exception>
    public void SaveSnapshotMarker(WalSnapshotMarker marker)
    {
        ThrowIfUnusable();
        Invariant.Check(marker.Index >= _snapshot.Index, "the snapshot index moved backwards");
        Span<byte> fixedPart = stackalloc byte[16];
        WriteMarker(fixedPart, marker);
        Buffer(WalRecordType.SnapshotMarker, fixedPart, []);
        _snapshot = marker;
        if (marker.Index > _lastIndex) _lastIndex = marker.Index;
    }

    /// <summary>
    /// Makes every buffered record durable with one write and one fdatasync (rolling to a new segment first if the
    /// active one is full). Acknowledge only after this returns.
    /// </summary>
    /// <exception cref="WalNoSpaceException">The device is full: the NOSPACE alarm is raised, the buffered records are kept for a retry, and nothing synced before was touched.</exception>
    public void Sync()
    {
        ThrowIfFailed();
        if (_pendingBytes == 0) return;
        try
        {
            // A roll moves the pending bytes to a new segment: only when none of them went to the old one already (a
            // pipelined write, BeginSync); otherwise they are synced where they are and the next sync rolls.
            if (_durableOffsetBytes >= _options.SegmentSizeBytes && _flushedBytes == 0) Roll();
            // Only bytes past the durable offset are written, so a failure (even a partial write) cannot damage
            // acknowledged records; a retry writes the same bytes again at the same place.
            WriteUnflushed();
            _active.Sync();
        }
        catch (DiskFullException e)
        {
            _noSpace = e;
            throw new WalNoSpaceException(e);
        }
        catch
        {
            _failed = true;
            throw;
        }
        OnPendingSynced(_durableOffsetBytes, _pendingBytes);
        _durableOffsetBytes += _pendingBytes;
        _pendingBytes = 0;
        _flushedBytes = 0;
        _pendingRecords = 0;
        _recordsDurable = _recordsBuffered;
        _durableLastIndex = _lastIndex;
        _durableHardState = _hardState;
        _durableSnapshot = _snapshot;
        _noSpace = null;
    }

    /// <summary>
    /// Writes the buffered records to the file without syncing it: they survive the process (a SIGKILL, a crash of the
    /// member), not the machine (power loss, kernel crash). For records that need not be synced but should not be lost
    /// with the process, such as a hard state whose only change is the commit index: a member restarted after a kill
    /// then re-applies everything it had applied. The records stay pending: the next <see cref="Sync"/> makes them
    /// durable. Does nothing while a segment roll is due or the NOSPACE alarm is raised (the next sync does the work).
    /// </summary>
    public void Flush()
    {
        ThrowIfFailed();
        if (_pendingBytes == _flushedBytes || _noSpace is not null || _durableOffsetBytes >= _options.SegmentSizeBytes) return;
        try
        {
            WriteUnflushed();
        }
        catch (DiskFullException)
        {
            // Left pending: the next sync writes the same bytes at the same place and raises the alarm if it must.
            return;
        }
        catch
        {
            _failed = true;
            throw;
        }
        _flushedBytes = _pendingBytes;
    }

    /// <summary>
    /// Deletes the segments whose entries all lie at or below <paramref name="index"/>, which must be covered by the
    /// durable snapshot marker. The active segment is never deleted. Returns the number of segments deleted.
    /// </summary>
    public int Compact(ulong index)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (index > _durableSnapshot.Index)
            throw new ArgumentOutOfRangeException(nameof(index), index,
                $"cannot compact beyond the durable snapshot index {_durableSnapshot.Index}");
        var deletable = 0;
        // Segment i holds no live entry above (first index of segment i+1) - 1.
        while (deletable < _segments.Count - 1 && _segments[deletable + 1].FirstIndex - 1 <= index) deletable++;
        if (deletable == 0) return 0;
        // Oldest first, so a crash part-way leaves a contiguous run of segments.
        for (var i = 0; i < deletable; i++) _directory.Delete(_segments[i].Name);
        _directory.SyncDirectory();
        _segments.RemoveRange(0, deletable);
        TrimLocations();
        return deletable;
    }

    /// <summary>Checks the WAL's internal consistency (for tests and the simulator).</summary>
    public void AssertInvariants()
    {
        Invariant.Check(_segments.Count >= 1, "a WAL always has an active segment");
        for (var i = 1; i < _segments.Count; i++)
        {
            Invariant.Check(_segments[i].Sequence == _segments[i - 1].Sequence + 1, "segment sequence numbers are contiguous");
            // First indexes may decrease: Raft may replace an uncommitted suffix that began in an earlier segment.
        }
        Invariant.Check(_active.Name == _segments[^1].Name, "the active file is the last segment");
        Invariant.Check(_durableOffsetBytes <= _active.LengthBytes, "the durable offset lies inside the active segment");
        Invariant.Check(_pendingBytes >= 0 && _pendingBytes <= _pending.Length, "the pending buffer is consistent");
        Invariant.Check(_flushedBytes >= 0 && _flushedBytes <= _pendingBytes, "only pending bytes are flushed, each once");
        Invariant.Check((_pendingRecords == 0) == (_pendingBytes == 0), "pending records and bytes agree");
        Invariant.Check(_pendingRecords == _recordsBuffered - _recordsDurable, "pending records are those buffered and not yet durable");
        Invariant.Check(_pendingRecords != 0 || (_durableLastIndex == _lastIndex && _durableHardState == _hardState && _durableSnapshot == _snapshot),
            "with nothing pending, the durable state is the current state");
        Invariant.Check(_snapshot.Index <= _lastIndex, "the snapshot lies within the log");
        Invariant.Check(_locations.Count == 0 || _locations[0].Sequence >= _segments[0].Sequence,
            "every entry that can be read back lies in a retained segment");
        Invariant.Check(_pendingEntries.Count <= _pendingRecords, "every buffered entry is a pending record");
    }

    /// <summary>Closes the active segment (buffered records that were not synced are dropped, as a crash would).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _active.Dispose();
    }

    private void ThrowIfUnusable()
    {
        ThrowIfFailed();
        if (_noSpace is not null) throw new WalNoSpaceException(_noSpace);
    }

    private void ThrowIfFailed()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_failed) throw new InvalidOperationException("the WAL failed an earlier write or sync and must be reopened (recovery decides what is durable)");
    }

    // The pending bytes that no Flush wrote yet, at their place after the durable ones.
    private void WriteUnflushed() =>
        _active.Write(_durableOffsetBytes + _flushedBytes, _pending.AsSpan(_flushedBytes, _pendingBytes - _flushedBytes));

    private void Buffer(WalRecordType type, ReadOnlySpan<byte> fixedPart, ReadOnlySpan<byte> data)
    {
        var payloadBytes = fixedPart.Length + data.Length;
        if (payloadBytes > _options.MaxPayloadBytes)
            throw new ArgumentException($"record payload of {payloadBytes} bytes exceeds the maximum of {_options.MaxPayloadBytes}");
        var frameBytes = WalRecord.FrameBytes(payloadBytes);
        if (_pendingBytes + frameBytes > _pending.Length)
            Array.Resize(ref _pending, Math.Max(_pending.Length * 2, _pendingBytes + frameBytes));
        var written = WalRecord.Write(_pending.AsSpan(_pendingBytes), type, fixedPart, data);
        Debug.Assert(written == frameBytes, "the frame is as long as computed");
        _pendingBytes += written;
        _pendingRecords++;
        _recordsBuffered++;
    }

    private void Roll()
    {
        var previous = _segments[^1];
        var segment = new Segment(previous.Sequence + 1, _durableLastIndex + 1, SegmentName(previous.Sequence + 1, _durableLastIndex + 1));
        // A roll that failed for lack of space may have left the file behind; it holds nothing acknowledged.
        if (_directory.Exists(segment.Name)) _directory.Delete(segment.Name);
        var file = _directory.Create(segment.Name);
        try
        {
            file.Preallocate(_options.SegmentSizeBytes);
            var headerBytes = WriteSegmentStart(file, segment, _durableHardState, _durableSnapshot);
            // The caller writes the pending batch after these bytes and syncs the file; the directory entry must be
            // durable too, or a crash could drop the whole segment with acknowledged records in it.
            _directory.SyncDirectory();
            // A pipelined sync still queued for the old segment has nothing left to do: its bytes were synced before
            // a roll is allowed (BeginSync, Sync).
            _activeTarget.Retire();
            _active.Dispose();
            _active = file;
            _activeTarget = new SyncTarget(file);
            _durableOffsetBytes = headerBytes;
            _segments.Add(segment);
        }
        catch
        {
            file.Dispose();
            TryDelete(segment.Name);
            throw;
        }
    }

    private void TryDelete(string name)
    {
        try
        {
            _directory.Delete(name);
        }
        catch (IOException)
        {
            // Best effort: recovery deletes a segment whose header never became durable.
        }
    }

    private static long WriteSegmentStart(IStorageFile file, Segment segment, WalHardState hardState, WalSnapshotMarker snapshot)
    {
        Span<byte> buffer = stackalloc byte[3 * WalRecord.FrameOverheadBytes + 16 + 24 + 16];
        Span<byte> fixedPart = stackalloc byte[24];
        BinaryPrimitives.WriteUInt64LittleEndian(fixedPart, segment.Sequence);
        BinaryPrimitives.WriteUInt64LittleEndian(fixedPart[8..], segment.FirstIndex);
        var length = WalRecord.Write(buffer, WalRecordType.SegmentHeader, fixedPart[..16], []);
        WriteHardState(fixedPart, hardState);
        length += WalRecord.Write(buffer[length..], WalRecordType.HardState, fixedPart, []);
        WriteMarker(fixedPart, snapshot);
        length += WalRecord.Write(buffer[length..], WalRecordType.SnapshotMarker, fixedPart[..16], []);
        file.Write(0, buffer[..length]);
        return length;
    }

    private static void WriteHardState(Span<byte> destination, WalHardState hardState)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, hardState.Term);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], hardState.Vote);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[16..], hardState.Commit);
    }

    private static void WriteMarker(Span<byte> destination, WalSnapshotMarker marker)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, marker.Index);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], marker.Term);
    }

    internal static string SegmentName(ulong sequence, ulong firstIndex) =>
        string.Create(CultureInfo.InvariantCulture, $"{sequence:x16}-{firstIndex:x16}{SegmentSuffix}");

    internal static bool TryParseSegmentName(string name, out ulong sequence, out ulong firstIndex)
    {
        sequence = firstIndex = 0;
        return name.Length == 16 + 1 + 16 + SegmentSuffix.Length && name.EndsWith(SegmentSuffix, StringComparison.Ordinal) && name[16] == '-'
            && ulong.TryParse(name.AsSpan(0, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out sequence)
            && ulong.TryParse(name.AsSpan(17, 16), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out firstIndex);
    }
}
