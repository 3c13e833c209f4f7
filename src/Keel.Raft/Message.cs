namespace Keel.Raft;

/// <summary>The kinds of Raft messages (etcd <c>raftpb.MessageType</c>, less the local-only ones).</summary>
public enum MessageType
{
    /// <summary>A proposal forwarded by a follower to the leader.</summary>
    Propose,

    /// <summary>AppendEntries: entries after (<see cref="Message.Index"/>, <see cref="Message.LogTerm"/>), and the commit index.</summary>
    Append,

    /// <summary>Reply to <see cref="Append"/>: acks up to <see cref="Message.Index"/> or rejects with a conflict hint.</summary>
    AppendResponse,

    /// <summary>RequestVote.</summary>
    Vote,

    /// <summary>Reply to <see cref="Vote"/>.</summary>
    VoteResponse,

    /// <summary>Pre-vote (Raft thesis 9.6): a vote request for the next term that changes nobody's term.</summary>
    PreVote,

    /// <summary>Reply to <see cref="PreVote"/>.</summary>
    PreVoteResponse,

    /// <summary>Leader heartbeat; carries a safe commit index and the read-round sequence in <see cref="Message.Context"/>.</summary>
    Heartbeat,

    /// <summary>Reply to <see cref="Heartbeat"/>, echoing <see cref="Message.Context"/>.</summary>
    HeartbeatResponse,

    /// <summary>One chunk of an InstallSnapshot transfer.</summary>
    Snapshot,

    /// <summary>Ack of a snapshot chunk: <see cref="Message.Context"/> is the next byte offset the follower expects.</summary>
    SnapshotResponse,

    /// <summary>Asks the leader to hand leadership to <see cref="Message.From"/> (the transferee).</summary>
    TransferLeader,

    /// <summary>Tells the transferee to campaign at once, skipping pre-vote and the leader lease.</summary>
    TimeoutNow,

    /// <summary>A follower forwards a ReadIndex request (id in <see cref="Message.Context"/>) to the leader.</summary>
    ReadIndex,

    /// <summary>The leader's answer to <see cref="ReadIndex"/>: the read may be served once <see cref="Message.Index"/> is applied.</summary>
    ReadIndexResponse,
}

/// <summary>
/// A Raft message between two nodes (etcd <c>raftpb.Message</c>). Immutable; the driver serializes and sends it and
/// hands received ones to <see cref="RaftNode.Step"/>.
/// </summary>
public sealed record Message
{
    /// <summary>The kind of message.</summary>
    public required MessageType Type { get; init; }

    /// <summary>Sender id.</summary>
    public required ulong From { get; init; }

    /// <summary>Recipient id.</summary>
    public required ulong To { get; init; }

    /// <summary>Sender's term (for <see cref="MessageType.PreVote"/>: the term it would campaign in).</summary>
    public ulong Term { get; init; }

    /// <summary>Term of the entry at <see cref="Index"/> (append, vote) or the conflict hint term (rejection).</summary>
    public ulong LogTerm { get; init; }

    /// <summary>Log index: the entry preceding <see cref="Entries"/>, the acked index, or the candidate's last index.</summary>
    public ulong Index { get; init; }

    /// <summary>Entries to append or the proposed entries.</summary>
    public IReadOnlyList<Entry> Entries { get; init; } = [];

    /// <summary>Leader's commit index (append, heartbeat).</summary>
    public ulong Commit { get; init; }

    /// <summary>True when an append or a vote is refused.</summary>
    public bool Reject { get; init; }

    /// <summary>On a rejected append: the follower's hint for the next index to probe (etcd RejectHint).</summary>
    public ulong RejectHint { get; init; }

    /// <summary>Request id of a read, read-round sequence of a heartbeat, or the next offset of a snapshot transfer.</summary>
    public ulong Context { get; init; }

    /// <summary>True on a vote request caused by a leadership transfer: it bypasses the receivers' leader lease.</summary>
    public bool LeaderTransfer { get; init; }

    /// <summary>The snapshot chunk of a <see cref="MessageType.Snapshot"/> message.</summary>
    public SnapshotChunk? Snapshot { get; init; }

    /// <summary>Payload bytes of <see cref="Entries"/>.</summary>
    public long PayloadBytes
    {
        get
        {
            long total = 0;
            foreach (var entry in Entries) total += entry.PayloadBytes;
            return total;
        }
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        var text = $"{From}->{To} {Type} Term:{Term}";
        switch (Type)
        {
            case MessageType.Append:
                text += $" Log:{LogTerm}/{Index} Commit:{Commit}";
                if (Entries.Count > 0) text += $" Entries:[{Entries[0].Index}..{Entries[^1].Index}]";
                break;
            case MessageType.AppendResponse:
                text += Reject ? $" Rejected (Hint: {RejectHint}/{LogTerm}) Index:{Index}" : $" Index:{Index}";
                break;
            case MessageType.Vote or MessageType.PreVote:
                text += $" Log:{LogTerm}/{Index}" + (LeaderTransfer ? " Transfer" : "");
                break;
            case MessageType.VoteResponse or MessageType.PreVoteResponse:
                text += Reject ? " Rejected" : " Granted";
                break;
            case MessageType.Heartbeat:
                text += $" Commit:{Commit} Round:{Context}";
                break;
            case MessageType.HeartbeatResponse:
                text += $" Round:{Context}";
                break;
            case MessageType.Snapshot:
                text += $" {Snapshot}";
                break;
            case MessageType.SnapshotResponse:
                text += $" Snapshot:{Index} Next:{Context}";
                break;
            case MessageType.Propose:
                text += $" Entries:{Entries.Count}";
                break;
            case MessageType.ReadIndex:
                text += $" Request:{Context}";
                break;
            case MessageType.ReadIndexResponse:
                text += $" Request:{Context} Index:{Index}";
                break;
        }
        return text;
    }
}
