namespace Keel.Node;

/// <summary>
/// One cluster member as etcd's Cluster API shows it (etcdserverpb.Member): the Raft id, the name and client URLs it
/// published after starting, its peer URLs, and whether it is a non-voting learner.
/// </summary>
/// <param name="Id">The member's Raft id (never 0).</param>
/// <param name="Name">The name it published (empty until it publishes, as in etcd).</param>
/// <param name="PeerUrls">Where peers reach it.</param>
/// <param name="ClientUrls">Where clients reach it (empty until it publishes).</param>
/// <param name="IsLearner">True for a learner: it receives the log but does not vote.</param>
public sealed record MemberInfo(ulong Id, string Name, IReadOnlyList<string> PeerUrls, IReadOnlyList<string> ClientUrls, bool IsLearner)
{
    /// <inheritdoc />
    public bool Equals(MemberInfo? other) => other is not null && Id == other.Id && Name == other.Name &&
        PeerUrls.SequenceEqual(other.PeerUrls) && ClientUrls.SequenceEqual(other.ClientUrls) && IsLearner == other.IsLearner;

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Id, Name, IsLearner);
}

/// <summary>A member of the initial cluster (etcd's <c>--initial-cluster name=peerUrl,...</c>).</summary>
/// <param name="Id">Its Raft id.</param>
/// <param name="Name">Its name.</param>
/// <param name="PeerUrls">Its peer URLs.</param>
public sealed record InitialMember(ulong Id, string Name, IReadOnlyList<string> PeerUrls);

/// <summary>What a member publishes about itself once it has started (etcd's <c>publish</c>: name and client URLs).</summary>
/// <param name="MemberId">The member publishing (its Raft id).</param>
/// <param name="Name">Its name.</param>
/// <param name="ClientUrls">Its client URLs.</param>
public sealed record MemberAttributes(ulong MemberId, string Name, IReadOnlyList<string> ClientUrls);

/// <summary>Which membership change a <see cref="MemberChange"/> is.</summary>
public enum MemberChangeKind : byte
{
    /// <summary>etcd MemberAdd (as a voter or a learner).</summary>
    Add = 1,

    /// <summary>etcd MemberRemove.</summary>
    Remove = 2,

    /// <summary>etcd MemberPromote: a learner becomes a voter.</summary>
    Promote = 3,

    /// <summary>etcd MemberUpdate: new peer URLs.</summary>
    Update = 4,
}

/// <summary>A membership change of etcd's Cluster API, carried out through a Raft joint configuration change.</summary>
public sealed record MemberChange
{
    private MemberChange() { }

    /// <summary>Which change.</summary>
    public MemberChangeKind Kind { get; private init; }

    /// <summary>The member (0 for Add: the node picks the id).</summary>
    public ulong MemberId { get; private init; }

    /// <summary>The peer URLs, for Add and Update.</summary>
    public IReadOnlyList<string> PeerUrls { get; private init; } = [];

    /// <summary>For Add: join as a learner.</summary>
    public bool IsLearner { get; private init; }

    /// <summary>Adds a member with <paramref name="peerUrls"/>; the node picks its id deterministically.</summary>
    public static MemberChange Add(IReadOnlyList<string> peerUrls, bool isLearner)
    {
        ArgumentNullException.ThrowIfNull(peerUrls);
        return new() { Kind = MemberChangeKind.Add, PeerUrls = [.. peerUrls], IsLearner = isLearner };
    }

    /// <summary>Removes member <paramref name="id"/>.</summary>
    public static MemberChange Remove(ulong id) => new() { Kind = MemberChangeKind.Remove, MemberId = id };

    /// <summary>Promotes learner <paramref name="id"/> to a voter.</summary>
    public static MemberChange Promote(ulong id) => new() { Kind = MemberChangeKind.Promote, MemberId = id };

    internal MemberChange WithMemberId(ulong id) => this with { MemberId = id };

    internal static MemberChange Decoded(MemberChangeKind kind, ulong id, IReadOnlyList<string> peerUrls, bool isLearner) =>
        new() { Kind = kind, MemberId = id, PeerUrls = peerUrls, IsLearner = isLearner };

    /// <summary>Replaces the peer URLs of member <paramref name="id"/>.</summary>
    public static MemberChange Update(ulong id, IReadOnlyList<string> peerUrls)
    {
        ArgumentNullException.ThrowIfNull(peerUrls);
        return new() { Kind = MemberChangeKind.Update, MemberId = id, PeerUrls = [.. peerUrls] };
    }
}
