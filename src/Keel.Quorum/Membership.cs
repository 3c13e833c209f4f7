using Keel.Core;

namespace Keel.Quorum;

/// <summary>
/// The full membership of a Raft group: the voters (possibly joint) and the learners, as etcd <c>tracker.Config</c>
/// (etcd-io/raft <c>tracker/tracker.go</c>). Learners receive the log but never vote. While joint, a voter being
/// demoted to learner is parked in <see cref="LearnersNext"/> because it must keep voting in the outgoing half until
/// the joint configuration is left. Instances are always valid; build new ones through <see cref="ConfigurationChange"/>.
/// </summary>
public sealed class Membership : IEquatable<Membership>
{
    private readonly ulong[] _learners;
    private readonly ulong[] _learnersNext;

    /// <summary>Creates and validates a membership.</summary>
    /// <param name="voters">The voter configuration (joint or not).</param>
    /// <param name="learners">Non-voting members; none may be a voter of either half.</param>
    /// <param name="learnersNext">Outgoing voters that become learners when the joint configuration is left; empty unless joint.</param>
    /// <param name="autoLeave">Whether the joint configuration should be left automatically once committed; false unless joint.</param>
    /// <exception cref="ConfigurationChangeException">The combination breaks a membership rule; the message says which.</exception>
    public Membership(JointConfig voters, IEnumerable<ulong> learners, IEnumerable<ulong> learnersNext, bool autoLeave = false)
    {
        ArgumentNullException.ThrowIfNull(voters);
        Voters = voters;
        _learners = SortedDistinct(learners);
        _learnersNext = SortedDistinct(learnersNext);
        Learners = Array.AsReadOnly(_learners);
        LearnersNext = Array.AsReadOnly(_learnersNext);
        AutoLeave = autoLeave;
        var problem = FindProblem();
        if (problem is not null) throw new ConfigurationChangeException(problem.Value.Error, problem.Value.Message);
    }

    /// <summary>A non-joint membership of <paramref name="voters"/> and no learners.</summary>
    /// <exception cref="ConfigurationChangeException">A voter id is 0 (etcd's "none").</exception>
    public Membership(IEnumerable<ulong> voters) : this(new JointConfig(new MajorityConfig(voters)), [], []) { }

    /// <summary>The voters: incoming and, while joint, outgoing.</summary>
    public JointConfig Voters { get; }

    /// <summary>Learners, sorted ascending.</summary>
    public IReadOnlyList<ulong> Learners { get; }

    /// <summary>Outgoing voters that turn into learners when the joint configuration is left, sorted ascending.</summary>
    public IReadOnlyList<ulong> LearnersNext { get; }

    /// <summary>Whether the joint configuration is left automatically once it is committed (etcd <c>AutoLeave</c>).</summary>
    public bool AutoLeave { get; }

    /// <summary>Whether a joint configuration change is in flight.</summary>
    public bool IsJoint => Voters.IsJoint;

    /// <summary>Whether <paramref name="id"/> is in the configuration at all: a voter of either half, or a learner.</summary>
    public bool Contains(ulong id) => Voters.Contains(id) || IsLearner(id);

    /// <summary>Whether <paramref name="id"/> is a learner (now or after leaving the joint configuration).</summary>
    public bool IsLearner(ulong id) => Array.BinarySearch(_learners, id) >= 0 || Array.BinarySearch(_learnersNext, id) >= 0;

    /// <summary>Rechecks the membership rules; throws <see cref="InvariantViolationException"/> on a violation (a bug, since the constructor validates).</summary>
    public void AssertInvariants()
    {
        Voters.AssertInvariants();
        var problem = FindProblem();
        Invariant.Check(problem is null, problem?.Message ?? "");
    }

    /// <summary>Same voters, learners, learners-next and auto-leave flag.</summary>
    public bool Equals(Membership? other) =>
        other is not null && Voters.Equals(other.Voters) && AutoLeave == other.AutoLeave &&
        _learners.AsSpan().SequenceEqual(other._learners) && _learnersNext.AsSpan().SequenceEqual(other._learnersNext);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as Membership);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Voters, _learners.Length, _learnersNext.Length, AutoLeave);

    /// <summary>etcd's notation, e.g. <c>voters=(1 2 3)&amp;&amp;(1 2) learners=(4) learners_next=(3) autoleave</c>.</summary>
    public override string ToString()
    {
        var text = $"voters={Voters}";
        if (_learners.Length > 0) text += $" learners=({string.Join(' ', _learners)})";
        if (_learnersNext.Length > 0) text += $" learners_next=({string.Join(' ', _learnersNext)})";
        if (AutoLeave) text += " autoleave";
        return text;
    }

    private (ConfigurationChangeError Error, string Message)? FindProblem()
    {
        // Mirrors etcd confchange.checkInvariants, plus Keel's rules on id 0 and on a voterless configuration.
        foreach (var id in Voters.AllVoters)
        {
            if (id == 0) return (ConfigurationChangeError.InvalidNodeId, "node id 0 is reserved (it means 'none') and cannot be a voter");
        }
        foreach (var id in _learners)
        {
            if (id == 0) return (ConfigurationChangeError.InvalidNodeId, "node id 0 is reserved (it means 'none') and cannot be a learner");
            if (Voters.Incoming.Contains(id))
                return (ConfigurationChangeError.LearnerIsVoter, $"{id} is both a learner and an incoming voter");
            if (Voters.Outgoing.Contains(id))
                return (ConfigurationChangeError.LearnerIsVoter, $"{id} is both a learner and an outgoing voter");
        }
        foreach (var id in _learnersNext)
        {
            if (!Voters.Outgoing.Contains(id))
                return (ConfigurationChangeError.LearnerNextNotOutgoingVoter, $"{id} is in learners-next but is not an outgoing voter");
            if (Voters.Incoming.Contains(id))
                return (ConfigurationChangeError.LearnerIsVoter, $"{id} is in learners-next but also an incoming voter");
            if (Array.BinarySearch(_learners, id) >= 0)
                return (ConfigurationChangeError.LearnerIsVoter, $"{id} is in both learners and learners-next");
        }
        if (!Voters.IsJoint)
        {
            if (_learnersNext.Length > 0)
                return (ConfigurationChangeError.NotJoint, "learners-next must be empty outside a joint configuration");
            if (AutoLeave)
                return (ConfigurationChangeError.NotJoint, "auto-leave is only meaningful in a joint configuration");
        }
        return null;
    }

    private static ulong[] SortedDistinct(IEnumerable<ulong> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var sorted = ids.Distinct().ToArray();
        Array.Sort(sorted);
        return sorted;
    }
}
