namespace Keel.Raft;

/// <summary>
/// Checks a <see cref="Message"/> received from the network against what a correct peer can send, before it is
/// stepped: the shape Raft relies on without checking (contiguous entries, terms in order, a snapshot chunk inside
/// its snapshot). Raft assumes crash-stop peers, not malicious ones, so this cannot catch a well-formed lie; it keeps a
/// corrupt, truncated or stray message from reaching an <see cref="Keel.Core.InvariantViolationException"/> in
/// <see cref="RaftNode.Step"/>, which fail-stops the process.
/// </summary>
public static class MessageValidator
{
    /// <summary>
    /// The largest snapshot a chunk may announce: the follower allocates a buffer of that size when the first chunk
    /// arrives, so an absurd total must not get that far.
    /// </summary>
    public const ulong MaxSnapshotBytes = int.MaxValue - 64;

    /// <summary>Returns null when <paramref name="m"/> is well formed, else the reason it is not.</summary>
    /// <param name="m">The received message.</param>
    /// <param name="self">When non-zero, the only recipient accepted.</param>
    public static string? Validate(Message m, ulong self = 0)
    {
        ArgumentNullException.ThrowIfNull(m);
        if (!Enum.IsDefined(m.Type)) return $"unknown message type {(int)m.Type}";
        if (m.From == 0 || m.To == 0) return "sender or recipient is 0 (none)";
        if (m.From == m.To) return "message from a node to itself";
        if (self != 0 && m.To != self) return $"addressed to {m.To}, not {self}";
        if (m.LogTerm > m.Term && m.Type is not (MessageType.Propose or MessageType.ReadIndex))
            return $"log term {m.LogTerm} above message term {m.Term}";
        if (m.Entries.Count > 0 && m.Type is not (MessageType.Append or MessageType.Propose))
            return $"{m.Type} carries entries";
        if (m.Snapshot is not null && m.Type != MessageType.Snapshot) return $"{m.Type} carries a snapshot";
        // Only a leader or a candidate sends these, and neither exists in term 0.
        if (m.Term == 0 && m.Type is MessageType.Append or MessageType.Heartbeat or MessageType.Snapshot
                or MessageType.Vote or MessageType.PreVote or MessageType.TimeoutNow)
            return $"{m.Type} in term 0";
        return m.Type switch
        {
            MessageType.Append => ValidateAppend(m),
            MessageType.Propose => ValidateProposal(m),
            MessageType.Snapshot => ValidateSnapshot(m),
            _ => null,
        };
    }

    private static string? ValidateAppend(Message m)
    {
        var entries = m.Entries;
        if (entries.Count == 0) return null;
        if ((ulong)entries.Count > ulong.MaxValue - m.Index) return "entry indexes overflow";
        var previousTerm = m.LogTerm;
        for (var i = 0; i < entries.Count; i++)
        {
            var entry = entries[i];
            // Raft's log append assumes both; a gap or a reordered batch would otherwise fail its invariant checks.
            if (entry.Index != m.Index + 1 + (ulong)i)
                return $"entry {i} has index {entry.Index}, expected {m.Index + 1 + (ulong)i} (entries must follow {m.Index} contiguously)";
            if (entry.Term < previousTerm) return $"entry {entry.Index} has term {entry.Term} below its predecessor's {previousTerm}";
            if (entry.Term > m.Term) return $"entry {entry.Index} has term {entry.Term} above the leader's term {m.Term}";
            var reason = ValidateEntryType(entry);
            if (reason is not null) return reason;
            previousTerm = entry.Term;
        }
        return null;
    }

    private static string? ValidateProposal(Message m)
    {
        if (m.Entries.Count == 0) return "proposal without entries";
        foreach (var entry in m.Entries)
        {
            var reason = ValidateEntryType(entry);
            if (reason is not null) return reason;
        }
        return null;
    }

    private static string? ValidateEntryType(Entry entry)
    {
        if (!Enum.IsDefined(entry.Type)) return $"entry {entry.Index} has unknown type {(byte)entry.Type}";
        if (entry.Type != EntryType.ConfChange) return null;
        try
        {
            ConfChangeV2.Decode(entry.Data.Span);
            return null;
        }
        catch (FormatException exception)
        {
            return $"entry {entry.Index}: {exception.Message}";
        }
    }

    private static string? ValidateSnapshot(Message m)
    {
        if (m.Snapshot is not { } chunk) return "snapshot message without a chunk";
        var metadata = chunk.Metadata;
        if (metadata.Index == 0 || metadata.Term == 0) return "snapshot at index or term 0";
        if (metadata.Term > m.Term) return $"snapshot term {metadata.Term} above the leader's term {m.Term}";
        if (metadata.Membership.Voters.AllVoters.Count == 0) return "snapshot configuration without voters";
        if (chunk.TotalBytes > MaxSnapshotBytes) return $"snapshot of {chunk.TotalBytes} bytes is beyond the {MaxSnapshotBytes} limit";
        if (chunk.Offset > chunk.TotalBytes || (ulong)chunk.Data.Length > chunk.TotalBytes - chunk.Offset)
            return $"chunk [{chunk.Offset}, +{chunk.Data.Length}) outside the snapshot's {chunk.TotalBytes} bytes";
        return null;
    }
}
