using Keel.Raft;

namespace Keel.Node;

/// <summary>
/// What a <see cref="KeelNode"/> produced for its driver: messages to peers and answers to clients. The driver drains
/// it after every call into the node (<see cref="DrainTo"/>), so the node never performs I/O itself.
/// </summary>
public sealed class Outbox
{
    private readonly List<Message> _messages = [];
    private readonly List<KvResult> _responses = [];

    /// <summary>Peer messages waiting to be sent, in order.</summary>
    public IReadOnlyList<Message> Messages => _messages;

    /// <summary>Client answers waiting to be delivered, in order.</summary>
    public IReadOnlyList<KvResult> Responses => _responses;

    /// <summary>
    /// A state snapshot the driver must write durably and then report with <see cref="KeelNode.OnSnapshotPersisted"/>
    /// (only with <see cref="KeelNodeOptions.PersistSnapshotsInBackground"/>); null when there is none. Take it with
    /// <see cref="TakeSnapshotToPersist"/>.
    /// </summary>
    public SnapshotToPersist? SnapshotToPersist { get; private set; }

    /// <summary>Returns the snapshot to write, if any, and clears it.</summary>
    public SnapshotToPersist? TakeSnapshotToPersist()
    {
        var snapshot = SnapshotToPersist;
        SnapshotToPersist = null;
        return snapshot;
    }

    internal void SetSnapshotToPersist(SnapshotToPersist snapshot) => SnapshotToPersist = snapshot;

    /// <summary>True when there is nothing to drain.</summary>
    public bool IsEmpty => _messages.Count == 0 && _responses.Count == 0;

    /// <summary>
    /// Moves everything into the caller's lists and empties the outbox, so the driver may call back into the node
    /// while it delivers (a client answered may issue its next request at once).
    /// </summary>
    public void DrainTo(List<Message> messages, List<KvResult> responses)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentNullException.ThrowIfNull(responses);
        messages.AddRange(_messages);
        responses.AddRange(_responses);
        _messages.Clear();
        _responses.Clear();
    }

    internal void AddMessages(IReadOnlyList<Message> messages)
    {
        foreach (var message in messages) _messages.Add(message);
    }

    internal void AddResponse(KvResult result) => _responses.Add(result);
}

/// <summary>
/// A state image at (<paramref name="Index"/>, <paramref name="Term"/>) for the driver to encode and write durably,
/// both off the node's thread: <see cref="Data"/> encodes the captured <paramref name="Image"/> on first use.
/// </summary>
/// <param name="Index">The log index the image reflects.</param>
/// <param name="Term">The term of that entry.</param>
/// <param name="Image">The captured node state.</param>
public sealed record SnapshotToPersist(ulong Index, ulong Term, NodeImage Image)
{
    /// <summary>
    /// Older snapshot files at these indexes must survive this write's retention: the leader is streaming them to
    /// followers (Raft's <c>StreamedSnapshotIndexes</c> when the image was captured). A transfer that starts later
    /// streams a snapshot at least as new as the newest at capture, which retention keeps anyway.
    /// </summary>
    public IReadOnlyList<ulong> StreamedSnapshotIndexes { get; init; } = [];

    /// <summary>The encoded node state (encoded on the first call, by the calling thread).</summary>
    public ReadOnlyMemory<byte> Data => Image.Encode();
}
