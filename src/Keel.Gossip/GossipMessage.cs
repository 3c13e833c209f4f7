namespace Keel.Gossip;

/// <summary>One claim about one member, piggybacked on protocol messages (memberlist's alive/suspect/dead messages).</summary>
/// <param name="Member">The member the claim is about.</param>
/// <param name="Status">The claimed state.</param>
/// <param name="Incarnation">The member's incarnation the claim refers to.</param>
/// <param name="From">Who made the claim (the suspector for suspect and dead; the member itself for alive and left).
/// Lifeguard counts distinct <c>From</c> values as independent confirmations.</param>
/// <param name="Tags">The member's metadata; only on alive claims, else null.</param>
public readonly record struct MemberUpdate(ulong Member, MemberStatus Status, long Incarnation, ulong From, MemberTags? Tags = null);

/// <summary>A scuttlebutt digest entry: the version of one member's state that the sender holds.</summary>
/// <param name="Member">The member.</param>
/// <param name="Version">See <see cref="IncarnationRules.Version"/>.</param>
public readonly record struct DigestEntry(ulong Member, long Version);

/// <summary>The kinds of gossip message.</summary>
public enum GossipMessageKind : byte
{
    /// <summary>Direct probe; answered with <see cref="Ack"/>.</summary>
    Ping = 1,

    /// <summary>Answer to a probe (direct, or forwarded by an indirect prober).</summary>
    Ack = 2,

    /// <summary>Ask the receiver to probe <see cref="GossipMessage.Target"/> on the sender's behalf (SWIM ping-req).</summary>
    PingReq = 3,

    /// <summary>Lifeguard: the indirect prober did not hear from the target in time (it, at least, is alive).</summary>
    Nack = 4,

    /// <summary>A gossip round: piggybacked updates only.</summary>
    Gossip = 5,

    /// <summary>Anti-entropy (digest mode): root and bucket hashes; on reply the (member, version) digest of the differing buckets.</summary>
    PushPullDigest = 6,

    /// <summary>Anti-entropy (digest mode): the states the other side lacks, and the members whose states this side wants.</summary>
    PushPullDelta = 7,

    /// <summary>Anti-entropy (full-state mode, memberlist's push-pull): every member's state.</summary>
    PushPullFull = 8,

    /// <summary>A joiner announces itself (its own state in <see cref="GossipMessage.States"/>) and asks for the seed's view.</summary>
    JoinRequest = 9,

    /// <summary>The seed's whole view, sent once to a joiner (join cost, not anti-entropy).</summary>
    JoinReply = 10,
}

/// <summary>
/// A decoded gossip protocol message. One class with optional sections rather than a type per kind: the codec writes
/// only the sections that are present (flag bits), so a ping is a few bytes.
/// </summary>
public sealed class GossipMessage
{
    /// <summary>Creates a message of <paramref name="kind"/>.</summary>
    public GossipMessage(GossipMessageKind kind) => Kind = kind;

    /// <summary>The message kind.</summary>
    public GossipMessageKind Kind { get; }

    /// <summary>Probe sequence number (ping, ack, ping-req, nack), matching answers to questions.</summary>
    public uint ProbeSequence { get; init; }

    /// <summary>The probed member (ping, ping-req), so a misrouted ping is not acknowledged.</summary>
    public ulong Target { get; init; }

    /// <summary>True on the answering half of an anti-entropy exchange (it is not answered again).</summary>
    public bool IsReply { get; init; }

    /// <summary>Order-independent hash of the sender's whole (member, version) set (digest mode).</summary>
    public ulong RootHash { get; init; }

    /// <summary>Piggybacked updates (memberlist's compound messages).</summary>
    public List<MemberUpdate> Updates { get; } = [];

    /// <summary>Digest entries (anti-entropy).</summary>
    public List<DigestEntry> Digest { get; } = [];

    /// <summary>Member states (anti-entropy).</summary>
    public List<MemberUpdate> States { get; } = [];

    /// <summary>Members whose states the sender wants (digest mode).</summary>
    public List<ulong> Wants { get; } = [];

    /// <summary>Per-bucket hashes of the sender's view (digest request); the count is the bucket count.</summary>
    public List<ulong> BucketHashes { get; } = [];

    /// <summary>The bucket count the <see cref="Buckets"/> of a digest reply refer to.</summary>
    public int BucketCount { get; init; }

    /// <summary>The buckets a digest reply covers (those whose hashes differed).</summary>
    public List<int> Buckets { get; } = [];

    /// <summary>Anti-entropy messages travel over a stream in memberlist (TCP), so the packet size limit does not apply.</summary>
    public bool IsStream => IsAntiEntropy || IsJoin;

    /// <summary>Periodic anti-entropy (push-pull) traffic.</summary>
    public bool IsAntiEntropy => Kind is GossipMessageKind.PushPullDigest or GossipMessageKind.PushPullDelta or GossipMessageKind.PushPullFull;

    /// <summary>Join traffic (a joiner's one full-state pull).</summary>
    public bool IsJoin => Kind is GossipMessageKind.JoinRequest or GossipMessageKind.JoinReply;

    /// <inheritdoc />
    public override string ToString() =>
        $"{Kind} seq={ProbeSequence} target={Target} updates={Updates.Count} digest={Digest.Count} states={States.Count} wants={Wants.Count} buckets={BucketHashes.Count}/{Buckets.Count}";
}

/// <summary>A message the core wants sent; the host encodes, seals and sends it.</summary>
/// <param name="To">The destination member.</param>
/// <param name="Message">The message.</param>
public readonly record struct OutboundMessage(ulong To, GossipMessage Message);

/// <summary>A change of a member's state in this node's view.</summary>
/// <param name="Member">The member.</param>
/// <param name="From">The previous state, or null when the member was unknown.</param>
/// <param name="To">The new state.</param>
/// <param name="Incarnation">The incarnation of the new state.</param>
/// <param name="AtMs">When this node learnt it.</param>
public readonly record struct MembershipEvent(ulong Member, MemberStatus? From, MemberStatus To, long Incarnation, long AtMs);
