using System.Collections;
using System.Runtime.CompilerServices;
using Keel.Core;

namespace Keel.Quorum;

/// <summary>
/// A set of voter ids, sorted ascending and immutable, whose decisions need a strict majority:
/// <c>floor(n/2)+1</c> voters. Two majorities of the same set always share a voter, which is what stops two leaders
/// (or two conflicting commits) in one term: the Majority Quorum pattern.
/// </summary>
/// <remarks>
/// Port of etcd-io/raft <c>quorum/majority.go</c> (<c>MajorityConfig</c>, <c>CommittedIndex</c>, <c>VoteResult</c>).
/// Like etcd, the empty configuration is "won" for votes and reports <see cref="ulong.MaxValue"/> as its committed index,
/// so that the empty outgoing half of a non-joint <see cref="JointConfig"/> never holds anything back.
/// Duplicate ids in the constructor's input collapse (it is a set).
/// </remarks>
public sealed class MajorityConfig : IReadOnlyCollection<ulong>, IEquatable<MajorityConfig>
{
    // Above this many voters CommittedIndex falls back to a heap buffer; Raft groups are 3-7 voters in practice.
    private const int StackallocVoterLimit = 64;

    private readonly ulong[] _voters;

    /// <summary>Creates a configuration of the given voters (duplicates collapse; order does not matter).</summary>
    /// <exception cref="ArgumentNullException"><paramref name="voters"/> is null.</exception>
    public MajorityConfig(IEnumerable<ulong> voters)
    {
        ArgumentNullException.ThrowIfNull(voters);
        var sorted = voters.ToArray();
        Array.Sort(sorted);
        var distinct = 0;
        for (var i = 0; i < sorted.Length; i++)
        {
            if (distinct == 0 || sorted[distinct - 1] != sorted[i]) sorted[distinct++] = sorted[i];
        }
        _voters = distinct == sorted.Length ? sorted : sorted[..distinct];
        AssertInvariants();
    }

    private MajorityConfig(ulong[] sortedDistinctVoters) => _voters = sortedDistinctVoters;

    /// <summary>The configuration without voters (the outgoing half of a non-joint <see cref="JointConfig"/>).</summary>
    public static MajorityConfig Empty { get; } = new([]);

    /// <summary>Number of voters.</summary>
    public int Count => _voters.Length;

    /// <summary>Voters needed for a decision: <c>floor(n/2)+1</c>, the smallest size at which any two quorums intersect; 0 for the empty configuration.</summary>
    public int QuorumSize => _voters.Length == 0 ? 0 : _voters.Length / 2 + 1;

    /// <summary>Voter failures this configuration survives while still forming a quorum: <c>n - QuorumSize</c>.</summary>
    public int FailuresTolerated => _voters.Length - QuorumSize;

    /// <summary>The voters, sorted ascending, without allocating.</summary>
    public ReadOnlySpan<ulong> Voters => _voters;

    /// <summary>The voter at <paramref name="index"/> in ascending order.</summary>
    public ulong this[int index] => _voters[index];

    /// <summary>Whether <paramref name="id"/> is a voter (binary search).</summary>
    public bool Contains(ulong id) => Array.BinarySearch(_voters, id) >= 0;

    /// <summary>
    /// The highest log index acknowledged by a quorum of voters: sort the voters' acknowledged indexes and take the
    /// <see cref="QuorumSize"/>-th largest. Voters without an acknowledgement count as 0. The empty configuration
    /// returns <see cref="ulong.MaxValue"/>, as etcd, so a joint configuration with an empty half is decided by the other.
    /// </summary>
    /// <remarks>Does not allocate for up to 64 voters (the indexes live in a stack buffer).</remarks>
    public ulong CommittedIndex<TAcked>(TAcked acked) where TAcked : IAckedIndexer
    {
        var n = _voters.Length;
        if (n == 0) return ulong.MaxValue;
        Span<ulong> indexes = n <= StackallocVoterLimit ? stackalloc ulong[n] : new ulong[n];
        for (var i = 0; i < n; i++)
        {
            indexes[i] = acked.TryGetAckedIndex(_voters[i], out var index) ? index : 0;
        }
        SortAscending(indexes);
        // Ascending order: the quorum-th largest sits at n - quorum. Everything at or above it has been acked by
        // QuorumSize voters, and no larger index has been.
        return indexes[n - (n / 2 + 1)];
    }

    /// <summary>
    /// Counts votes: <see cref="VoteResult.Won"/> once a quorum granted, <see cref="VoteResult.Lost"/> once so many
    /// rejected that a quorum of grants is impossible, otherwise <see cref="VoteResult.Pending"/>. Votes of non-voters
    /// are never asked for. The empty configuration wins (etcd convention, for joint configurations).
    /// </summary>
    public VoteResult Vote<TVotes>(TVotes votes) where TVotes : IVoteLookup
    {
        var n = _voters.Length;
        if (n == 0) return VoteResult.Won;
        int granted = 0, missing = 0;
        foreach (var voter in _voters)
        {
            switch (votes.GetVote(voter))
            {
                case true: granted++; break;
                case null: missing++; break;
            }
        }
        var quorum = n / 2 + 1;
        if (granted >= quorum) return VoteResult.Won;
        return granted + missing >= quorum ? VoteResult.Pending : VoteResult.Lost;
    }

    /// <summary>Checks the representation: voters strictly ascending (sorted, no duplicates). Throws <see cref="InvariantViolationException"/> otherwise.</summary>
    public void AssertInvariants()
    {
        for (var i = 1; i < _voters.Length; i++)
        {
            Invariant.Check(_voters[i - 1] < _voters[i], "MajorityConfig voters must be strictly ascending");
        }
        Invariant.Check(QuorumSize * 2 > Count || Count == 0, "a majority quorum must exceed half of the voters");
    }

    /// <summary>A configuration with <paramref name="id"/> added (this one if already present).</summary>
    public MajorityConfig With(ulong id) => Contains(id) ? this : new MajorityConfig(_voters.Append(id));

    /// <summary>A configuration with <paramref name="id"/> removed (this one if absent).</summary>
    public MajorityConfig Without(ulong id) =>
        Contains(id) ? new MajorityConfig(Array.FindAll(_voters, v => v != id)) : this;

    /// <summary>Allocation-free enumeration in ascending order.</summary>
    public Enumerator GetEnumerator() => new(_voters);

    IEnumerator<ulong> IEnumerable<ulong>.GetEnumerator() => ((IEnumerable<ulong>)_voters).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _voters.GetEnumerator();

    /// <summary>Same voters.</summary>
    public bool Equals(MajorityConfig? other) =>
        other is not null && (ReferenceEquals(this, other) || _voters.AsSpan().SequenceEqual(other._voters));

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as MajorityConfig);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var voter in _voters) hash.Add(voter);
        return hash.ToHashCode();
    }

    /// <summary>The voters in etcd's notation, e.g. <c>(1 2 3)</c>.</summary>
    public override string ToString() => "(" + string.Join(' ', _voters) + ")";

    /// <summary>Allocation-free enumerator over the voters in ascending order (usable inside iterators, unlike a span's).</summary>
    public struct Enumerator
    {
        private readonly ulong[] _voters;
        private int _index;

        internal Enumerator(ulong[] voters)
        {
            _voters = voters;
            _index = -1;
        }

        /// <summary>The current voter.</summary>
        public readonly ulong Current => _voters[_index];

        /// <summary>Advances to the next voter; false at the end.</summary>
        public bool MoveNext() => ++_index < _voters.Length;
    }

    // Insertion sort: the spans are a handful of elements, where it beats introsort (etcd does the same).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SortAscending(Span<ulong> values)
    {
        if (values.Length > 16)
        {
            values.Sort();
            return;
        }
        for (var i = 1; i < values.Length; i++)
        {
            var value = values[i];
            var j = i - 1;
            while (j >= 0 && values[j] > value)
            {
                values[j + 1] = values[j];
                j--;
            }
            values[j + 1] = value;
        }
    }
}
