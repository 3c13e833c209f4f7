namespace Keel.Gossip;

/// <summary>
/// A member's SWIM state as this node believes it (Das, Gupta, Motivala, "SWIM", DSN 2002, section 4.2;
/// hashicorp/memberlist <c>state.go</c>). The numeric values are the rank used to order two claims that carry the same
/// incarnation: a later state in this list wins, so gossip of "suspect" overrides "alive" at the same incarnation and
/// only a higher incarnation (a refutation by the member itself) brings it back.
/// </summary>
public enum MemberStatus : byte
{
    /// <summary>Answering probes, or at least nobody has shown otherwise.</summary>
    Alive = 0,

    /// <summary>A probe failed; the member has until its suspicion timeout to refute by raising its incarnation.</summary>
    Suspect = 1,

    /// <summary>The suspicion timeout expired without a refutation.</summary>
    Dead = 2,

    /// <summary>The member announced that it left on purpose; no failure, so nobody needs to look for it.</summary>
    Left = 3,
}

/// <summary>
/// The ordering of SWIM claims about one member: a claim (incarnation, status) supersedes the current belief when its
/// incarnation is higher, or equal with a higher <see cref="MemberStatus"/> rank. This is memberlist's rule
/// (<c>aliveNode</c>/<c>suspectNode</c>/<c>deadNode</c>), made a total order on (incarnation, rank) so that digests and
/// merges agree on which version is newer.
/// </summary>
public static class IncarnationRules
{
    /// <summary>True when the claim (<paramref name="incarnation"/>, <paramref name="status"/>) replaces the current belief.</summary>
    public static bool Supersedes(long incarnation, MemberStatus status, long currentIncarnation, MemberStatus currentStatus) =>
        incarnation > currentIncarnation || (incarnation == currentIncarnation && status > currentStatus);

    /// <summary>
    /// The anti-entropy version of a claim: a single number that grows exactly when <see cref="Supersedes"/> says so
    /// (incarnation in the high bits, status rank in the low two).
    /// </summary>
    public static long Version(long incarnation, MemberStatus status) => (incarnation << 2) | (long)status;
}
