using Keel.Core;

namespace Keel.Quorum;

/// <summary>
/// Joint consensus: decisions need a majority of BOTH the incoming and the outgoing configuration, so that while a
/// membership change is in flight neither the old nor the new voters can decide alone (Raft thesis ch. 4.3;
/// etcd-io/raft <c>quorum/joint.go</c>). When not joint, <see cref="Outgoing"/> is <see cref="MajorityConfig.Empty"/>,
/// which always agrees, so the incoming half decides alone.
/// </summary>
public sealed class JointConfig : IEquatable<JointConfig>
{
    private readonly ulong[] _allVoters;

    /// <summary>Creates a joint configuration; pass <see cref="MajorityConfig.Empty"/> as <paramref name="outgoing"/> when not joint.</summary>
    /// <exception cref="ArgumentNullException">Either half is null.</exception>
    public JointConfig(MajorityConfig incoming, MajorityConfig outgoing)
    {
        ArgumentNullException.ThrowIfNull(incoming);
        ArgumentNullException.ThrowIfNull(outgoing);
        Incoming = incoming;
        Outgoing = outgoing;
        _allVoters = MergeSortedDistinct(incoming.Voters, outgoing.Voters);
        AllVoters = Array.AsReadOnly(_allVoters);
        AssertInvariants();
    }

    /// <summary>A non-joint configuration of <paramref name="voters"/>.</summary>
    public JointConfig(MajorityConfig voters) : this(voters, MajorityConfig.Empty) { }

    /// <summary>The configuration being moved to (etcd <c>Voters[0]</c>).</summary>
    public MajorityConfig Incoming { get; }

    /// <summary>The configuration being left (etcd <c>Voters[1]</c>); empty when not joint.</summary>
    public MajorityConfig Outgoing { get; }

    /// <summary>Whether a membership change is in flight (the outgoing half has voters).</summary>
    public bool IsJoint => Outgoing.Count > 0;

    /// <summary>Every voter of either half, sorted ascending, without duplicates.</summary>
    public IReadOnlyList<ulong> AllVoters { get; }

    /// <summary>Whether <paramref name="id"/> votes in either half.</summary>
    public bool Contains(ulong id) => Incoming.Contains(id) || Outgoing.Contains(id);

    /// <summary>
    /// The highest index acknowledged by a majority of each half: the minimum of the halves' committed indexes.
    /// With both halves empty this is <see cref="ulong.MaxValue"/> (etcd); callers treat an empty configuration specially.
    /// </summary>
    public ulong CommittedIndex<TAcked>(TAcked acked) where TAcked : IAckedIndexer
    {
        var incoming = Incoming.CommittedIndex(acked);
        var outgoing = Outgoing.CommittedIndex(acked);
        return Math.Min(incoming, outgoing);
    }

    /// <summary><see cref="VoteResult.Won"/> only if both halves won; <see cref="VoteResult.Lost"/> if either lost; otherwise pending.</summary>
    public VoteResult Vote<TVotes>(TVotes votes) where TVotes : IVoteLookup
    {
        var incoming = Incoming.Vote(votes);
        var outgoing = Outgoing.Vote(votes);
        if (incoming == outgoing) return incoming;
        if (incoming == VoteResult.Lost || outgoing == VoteResult.Lost) return VoteResult.Lost;
        return VoteResult.Pending;
    }

    /// <summary>Checks both halves and that <see cref="AllVoters"/> is their sorted union. Throws <see cref="InvariantViolationException"/> otherwise.</summary>
    public void AssertInvariants()
    {
        Incoming.AssertInvariants();
        Outgoing.AssertInvariants();
        for (var i = 1; i < _allVoters.Length; i++)
        {
            Invariant.Check(_allVoters[i - 1] < _allVoters[i], "JointConfig.AllVoters must be strictly ascending");
        }
        foreach (var voter in _allVoters)
        {
            Invariant.Check(Incoming.Contains(voter) || Outgoing.Contains(voter), "AllVoters holds only voters of a half");
        }
        Invariant.Check(_allVoters.Length >= Math.Max(Incoming.Count, Outgoing.Count)
                        && _allVoters.Length <= Incoming.Count + Outgoing.Count, "AllVoters must be the union of both halves");
    }

    /// <summary>Same halves.</summary>
    public bool Equals(JointConfig? other) =>
        other is not null && Incoming.Equals(other.Incoming) && Outgoing.Equals(other.Outgoing);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as JointConfig);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Incoming, Outgoing);

    /// <summary>etcd's notation: <c>(1 2 3)</c> or <c>(1 2 3)&amp;&amp;(1 2)</c> when joint.</summary>
    public override string ToString() => IsJoint ? $"{Incoming}&&{Outgoing}" : Incoming.ToString();

    private static ulong[] MergeSortedDistinct(ReadOnlySpan<ulong> a, ReadOnlySpan<ulong> b)
    {
        var merged = new List<ulong>(a.Length + b.Length);
        int i = 0, j = 0;
        while (i < a.Length || j < b.Length)
        {
            ulong next;
            if (j >= b.Length || (i < a.Length && a[i] < b[j])) next = a[i++];
            else if (i >= a.Length || b[j] < a[i]) next = b[j++];
            else { next = a[i]; i++; j++; }
            merged.Add(next);
        }
        return merged.ToArray();
    }
}
