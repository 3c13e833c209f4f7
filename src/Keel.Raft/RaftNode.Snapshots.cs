using Keel.Core;

namespace Keel.Raft;

// Snapshots: chunked InstallSnapshot to followers behind the log start, restore on the follower, and the compaction
// policy (Raft section 7; etcd raft.go sendSnapshot/handleSnapshot/restore; hashicorp/raft TrailingLogs).
public sealed partial class RaftNode
{
    private IncomingSnapshot? _incomingSnapshot;

    /// <summary>
    /// The index up to which the log may be compacted now, for a requested <paramref name="index"/>: never beyond the
    /// latest snapshot (low watermark: older entries are in no snapshot), never beyond the applied index (high
    /// watermark), and keeping <see cref="RaftOptions.TrailingEntries"/> entries before the commit index so that
    /// slightly lagging followers catch up from the log rather than a full snapshot.
    /// </summary>
    public ulong CompactionIndex(ulong index)
    {
        var limit = Math.Min(index, _log.Storage.Snapshot.Metadata.Index);
        limit = Math.Min(limit, _log.Applied);
        var trailingLimit = _log.Committed > _options.TrailingEntries ? _log.Committed - _options.TrailingEntries : 0;
        return Math.Min(limit, trailingLimit);
    }

    /// <summary>
    /// Compacts the stored log up to <see cref="CompactionIndex"/>(<paramref name="index"/>), after the application
    /// has saved a snapshot in storage. Returns the index actually compacted to (0 when nothing could go).
    /// </summary>
    public ulong Compact(ulong index)
    {
        var limit = CompactionIndex(index);
        if (limit >= _log.Storage.FirstIndex) _log.Storage.Compact(limit);
        return limit;
    }

    private bool MaybeSendSnapshot(ulong to, Progress pr)
    {
        // A follower we have not heard from may be down: do not start streaming a large image into the void.
        if (!pr.RecentActive) return false;
        var snapshot = _log.Snapshot;
        if (snapshot.IsEmpty) return false;
        pr.BecomeSnapshot(snapshot.Metadata.Index);
        pr.Transfer = new SnapshotTransfer(snapshot);
        return SendSnapshotChunk(to, pr);
    }

    // Sends the chunk after what the follower confirmed; false when the stored image is gone (the application saved a
    // newer snapshot and deleted this one while the transfer was slow): the transfer is abandoned and the follower is
    // probed again, which sends the newest snapshot. Throwing here would stop the leader over a routine race.
    private bool SendSnapshotChunk(ulong to, Progress pr)
    {
        var transfer = pr.Transfer!;
        var total = (ulong)transfer.Snapshot.LengthBytes;
        var offset = Math.Min(transfer.AckedOffset, total);
        var length = (int)Math.Min((ulong)_options.SnapshotChunkBytes, total - offset);
        if (!transfer.Reader.TryRead((long)offset, length, out var data))
        {
            SnapshotTransfersAbandoned++;
            pr.AbandonSnapshot();
            return false;
        }
        Send(NewMessage(MessageType.Snapshot, to) with { Snapshot = new SnapshotChunk(transfer.Snapshot.Metadata, offset, total, data) });
        transfer.ChunkSentAtTick = _tickCount;
        return true;
    }

    /// <summary>
    /// The indexes of the stored snapshots that transfers are streaming to followers now (empty when none, and on a
    /// node that is not the leader): the application's snapshot retention must keep those files until the transfers
    /// end, or they would be abandoned (<see cref="SnapshotTransfersAbandoned"/>) and restarted from the newest
    /// snapshot, which a follower behind a slow link might never finish before it too is replaced. At most one per
    /// follower, so what retention keeps beyond its count stays bounded even when a transfer stalls.
    /// </summary>
    public IReadOnlyList<ulong> StreamedSnapshotIndexes()
    {
        if (Role != RaftRole.Leader) return [];
        List<ulong>? streamed = null;
        foreach (var (_, progress) in _tracker.Members)
            if (progress.Transfer is { Snapshot: { Stored: not null } stored })
                (streamed ??= []).Add(stored.Metadata.Index);
        return streamed is null ? [] : streamed;
    }

    /// <summary>
    /// Snapshot transfers this node abandoned as leader because the stored image they streamed was deleted (a newer
    /// snapshot replaced it); each follower concerned was then sent the newest one.
    /// </summary>
    public long SnapshotTransfersAbandoned { get; private set; }

    private void HandleSnapshotResponse(Message m, Progress pr)
    {
        MarkActive(pr);
        var transfer = pr.Transfer;
        if (pr.State != ProgressState.Snapshot || transfer is null || m.Index != transfer.Snapshot.Metadata.Index) return;
        var total = (ulong)transfer.Snapshot.LengthBytes;
        var next = Math.Min(m.Context, total);
        if (m.Reject)
        {
            // The follower refused a chunk that was not the one it expects and says what it holds: resume there, even
            // below what we took as acknowledged. It may have lost its partial copy (0), or acks of a copy it dropped
            // arrived late and moved us past it; ignoring a lower offset then resent the same chunk forever.
            if (next == transfer.AckedOffset && transfer.ChunkSentAtTick >= 0) return; // a duplicate refusal: the resend is under way
            transfer.AckedOffset = next;
        }
        else if (next > transfer.AckedOffset) transfer.AckedOffset = next;
        else return; // a duplicate or reordered ack
        if (transfer.AckedOffset < total) SendSnapshotChunk(m.From, pr);
        else transfer.ChunkSentAtTick = -1;
    }

    private void MaybeResendSnapshotChunk(ulong to, Progress pr)
    {
        var transfer = pr.Transfer;
        if (transfer is null) return;
        var resendAfterTicks = Math.Max(2, _options.ElectionTimeoutTicks / 2);
        if (transfer.ChunkSentAtTick >= 0 && _tickCount - transfer.ChunkSentAtTick < resendAfterTicks) return;
        SendSnapshotChunk(to, pr); // a chunk or its ack was lost
    }

    private void HandleSnapshotChunk(Message m)
    {
        if (m.Snapshot is not { } chunk) return;
        // The first chunk allocates the whole image: refuse a size no buffer can hold (MessageValidator's bound).
        if (chunk.TotalBytes > MessageValidator.MaxSnapshotBytes) return;
        var metadata = chunk.Metadata;
        if (metadata.Index <= _log.Committed)
        {
            // Already have it (or newer): tell the leader where we are (etcd handleSnapshot). A late chunk of an old
            // snapshot does not drop the partial copy of a newer one.
            if (_incomingSnapshot is { } partial && partial.Metadata.Index <= _log.Committed) _incomingSnapshot = null;
            Send(NewMessage(MessageType.AppendResponse, m.From) with { Index = _log.Committed });
            return;
        }
        var incoming = _incomingSnapshot;
        if (incoming is null || incoming.Metadata.Index != metadata.Index || incoming.Metadata.Term != metadata.Term)
        {
            if (chunk.Offset != 0)
            {
                Send(NewMessage(MessageType.SnapshotResponse, m.From) with { Index = metadata.Index, Context = 0, Reject = true });
                return;
            }
            incoming = _incomingSnapshot = new IncomingSnapshot(metadata, chunk.TotalBytes);
        }
        if (chunk.Offset != incoming.Received || chunk.TotalBytes != incoming.TotalBytes
            || chunk.Offset + (ulong)chunk.Data.Length > incoming.TotalBytes)
        {
            Send(NewMessage(MessageType.SnapshotResponse, m.From) with { Index = metadata.Index, Context = incoming.Received, Reject = true });
            return;
        }
        incoming.Append(chunk.Data.Span);
        if (incoming.Received < incoming.TotalBytes)
        {
            Send(NewMessage(MessageType.SnapshotResponse, m.From) with { Index = metadata.Index, Context = incoming.Received });
            return;
        }
        _incomingSnapshot = null;
        var snapshot = new Snapshot(metadata, incoming.Data);
        var index = Restore(snapshot) ? _log.LastIndex : _log.Committed;
        Send(NewMessage(MessageType.AppendResponse, m.From) with { Index = index });
    }

    /// <summary>Replaces the log and configuration with a snapshot from the leader (etcd <c>raft.restore</c>).</summary>
    private bool Restore(Snapshot snapshot)
    {
        var metadata = snapshot.Metadata;
        if (metadata.Index <= _log.Committed) return false;
        if (Role != RaftRole.Follower)
        {
            // Only a leader of this term sends snapshots, so we must already follow it; stay safe regardless.
            BecomeFollower(_term + 1, 0);
            return false;
        }
        if (_log.MatchTerm(metadata.Index, metadata.Term))
        {
            // We hold the snapshot's last entry: just fast-forward the commit index, keeping the log.
            _log.CommitTo(metadata.Index);
            return false;
        }
        _log.Restore(snapshot);
        _tracker.ApplyMembership(metadata.Membership, _log.LastIndex);
        Invariant.Check(_log.Committed == metadata.Index, "a restored log is committed up to the snapshot");
        return true;
    }

    private sealed class IncomingSnapshot(SnapshotMetadata metadata, ulong totalBytes)
    {
        private readonly byte[] _buffer = new byte[checked((int)totalBytes)];

        public SnapshotMetadata Metadata { get; } = metadata;

        public ulong TotalBytes { get; } = totalBytes;

        public ulong Received { get; private set; }

        public ReadOnlyMemory<byte> Data => _buffer;

        public void Append(ReadOnlySpan<byte> data)
        {
            data.CopyTo(_buffer.AsSpan((int)Received));
            Received += (ulong)data.Length;
        }
    }
}
