using Keel.Core;
using Keel.Core.Storage;

namespace Keel.Storage;

// Pipelined syncs (issue 12 item 1, etcd-io/raft's asynchronous storage writes): the owner's thread writes the buffered
// records to the file (BeginSync) and goes on appending while another thread runs the fdatasync (WalSyncTicket.Sync);
// back on the owner's thread, CompleteSync makes exactly the ticket's bytes durable. fdatasync covers every write to
// the file made before it started, so tickets complete in order, and a later ticket covers the earlier ones.
public sealed partial class WriteAheadLog
{
    private SyncTarget _activeTarget;
    private long _recordsBuffered;   // records ever buffered
    private long _recordsDurable;    // the first this many of them are durable
    private long _syncEpoch;         // bumped when a pipelined sync fails: tickets from before prove nothing

    /// <summary>
    /// Writes every buffered record to the file without syncing it and returns the ticket whose
    /// <see cref="WalSyncTicket.Sync"/> (on any thread) makes them durable; report it with <see cref="CompleteSync"/> on
    /// this log's thread. Appends may go on meanwhile. Returns null when the records cannot be written ahead now (the
    /// active segment is full while earlier pipelined writes are unsynced, or the device is full): call <see cref="Sync"/>.
    /// </summary>
    public WalSyncTicket? BeginSync()
    {
        ThrowIfUnusable();
        if (_durableOffsetBytes >= _options.SegmentSizeBytes)
        {
            // The next records belong to a new segment; a roll needs every byte in the old one synced first.
            if (_flushedBytes > 0) return null;
            try
            {
                Roll();
            }
            catch (DiskFullException)
            {
                return null;
            }
            catch
            {
                _failed = true;
                throw;
            }
        }
        if (_pendingBytes > _flushedBytes)
        {
            try
            {
                WriteUnflushed();
            }
            catch (DiskFullException)
            {
                // Left pending: Sync writes the same bytes at the same place and raises the alarm.
                return null;
            }
            catch
            {
                _failed = true;
                throw;
            }
            _flushedBytes = _pendingBytes;
        }
        return new WalSyncTicket(_activeTarget, _segments[^1].Sequence, _durableOffsetBytes + _pendingBytes, _recordsBuffered,
            _lastIndex, _hardState, _snapshot, _syncEpoch);
    }

    /// <summary>True when everything <paramref name="ticket"/> covers is durable (its sync completed, or a later sync covered it).</summary>
    public bool IsDurable(WalSyncTicket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        return ticket.Records <= _recordsDurable;
    }

    /// <summary>
    /// The ticket's <see cref="WalSyncTicket.Sync"/> returned without an error: the records it covers are durable. A
    /// ticket already covered by a later sync changes nothing. Call on this log's thread.
    /// </summary>
    public void CompleteSync(WalSyncTicket ticket)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        ThrowIfFailed();
        // After a failed sync, a later fdatasync of the same file may succeed although the pages the failed one covered
        // were dropped (Linux reports a writeback error once): only the rewrite that Sync does proves anything.
        if (IsDurable(ticket) || ticket.Epoch != _syncEpoch) return;
        // A roll happens only once every record before it is durable, so an undurable ticket is of the active segment.
        Invariant.Check(ticket.Sequence == _segments[^1].Sequence, "an unsynced pipelined write lies in the active segment");
        var syncedBytes = ticket.EndOffsetBytes - _durableOffsetBytes;
        Invariant.Check(syncedBytes > 0 && syncedBytes <= _flushedBytes, "a pipelined sync covers only bytes written to the file");
        var synced = (int)syncedBytes;
        OnPendingSynced(_durableOffsetBytes, synced);
        _durableOffsetBytes = ticket.EndOffsetBytes;
        _pending.AsSpan(synced, _pendingBytes - synced).CopyTo(_pending);
        _pendingBytes -= synced;
        _flushedBytes -= synced;
        _pendingRecords -= (int)(ticket.Records - _recordsDurable);
        _recordsDurable = ticket.Records;
        _durableLastIndex = ticket.LastIndex;
        _durableHardState = ticket.HardState;
        _durableSnapshot = ticket.Snapshot;
    }

    /// <summary>
    /// A pipelined sync failed for lack of space: what it covered may not be on the device (Linux may drop dirty pages a
    /// failed fdatasync reported), so the next <see cref="Sync"/> writes every pending record again, at the same place.
    /// </summary>
    public void ForgetUnsyncedWrites()
    {
        ThrowIfFailed();
        _flushedBytes = 0;
        _syncEpoch++;
    }

    /// <summary>One segment file as pipelined syncs see it: retired once the log moved on to another segment.</summary>
    internal sealed class SyncTarget(IStorageFile file)
    {
        private volatile bool _retired;

        public IStorageFile File => file;

        public bool Retired => _retired;

        public void Retire() => _retired = true;
    }
}

/// <summary>
/// The bytes a <see cref="WriteAheadLog.BeginSync"/> wrote to the active segment, to be made durable by
/// <see cref="Sync"/> on another thread (or later, in the simulator) while the log's owner goes on; the owner then calls
/// <see cref="WriteAheadLog.CompleteSync"/>. Carries the log's state at that point, which becomes its durable state.
/// </summary>
public sealed class WalSyncTicket
{
    private readonly WriteAheadLog.SyncTarget _target;

    internal WalSyncTicket(WriteAheadLog.SyncTarget target, ulong sequence, long endOffsetBytes, long records, ulong lastIndex,
        WalHardState hardState, WalSnapshotMarker snapshot, long epoch)
    {
        Epoch = epoch;
        _target = target;
        Sequence = sequence;
        EndOffsetBytes = endOffsetBytes;
        Records = records;
        LastIndex = lastIndex;
        HardState = hardState;
        Snapshot = snapshot;
    }

    internal ulong Sequence { get; }

    internal long Epoch { get; }

    internal long EndOffsetBytes { get; }

    internal long Records { get; }

    internal ulong LastIndex { get; }

    internal WalHardState HardState { get; }

    internal WalSnapshotMarker Snapshot { get; }

    /// <summary>
    /// Syncs every ticket of <paramref name="tickets"/> (in the order they were begun) with one fdatasync per segment
    /// file: the last ticket of a run on one file covers the run. What a WAL sync thread does with its queue.
    /// </summary>
    public static void SyncAll(IReadOnlyList<WalSyncTicket> tickets)
    {
        ArgumentNullException.ThrowIfNull(tickets);
        for (var i = 0; i < tickets.Count; i++)
            if (i == tickets.Count - 1 || tickets[i + 1]._target != tickets[i]._target) tickets[i].Sync();
    }

    /// <summary>
    /// Makes the ticket's bytes durable (fdatasync of its segment); safe on any thread. A segment the log rolled away
    /// from (or closed) was synced before, so there is nothing to do.
    /// </summary>
    /// <exception cref="DiskFullException">The device is full; call <see cref="WriteAheadLog.ForgetUnsyncedWrites"/> and then <see cref="WriteAheadLog.Sync"/>.</exception>
    /// <exception cref="IOException">The sync failed; the file's durable state is unknown and the log must not go on.</exception>
    public void Sync()
    {
        if (_target.Retired) return;
        try
        {
            _target.File.Sync();
        }
        catch (ObjectDisposedException) when (_target.Retired)
        {
            // Rolled (or closed) while this sync was on its way: the roll synced these bytes first.
        }
    }
}
