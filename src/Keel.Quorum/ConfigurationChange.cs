namespace Keel.Quorum;

/// <summary>What a single configuration-change item does (etcd <c>raftpb.ConfChangeType</c>).</summary>
public enum ConfigurationChangeType
{
    /// <summary>Make the node a voter of the incoming configuration (promoting it if it was a learner).</summary>
    AddVoter,

    /// <summary>Make the node a learner (demoting it if it was a voter).</summary>
    AddLearner,

    /// <summary>Remove the node from the incoming configuration entirely.</summary>
    RemoveNode,
}

/// <summary>One item of a configuration change: what happens to which node.</summary>
/// <param name="Type">The kind of change.</param>
/// <param name="NodeId">The node it applies to; 0 is reserved and rejected.</param>
public readonly record struct ConfigurationChangeItem(ConfigurationChangeType Type, ulong NodeId)
{
    /// <summary>Adds <paramref name="nodeId"/> as a voter.</summary>
    public static ConfigurationChangeItem AddVoter(ulong nodeId) => new(ConfigurationChangeType.AddVoter, nodeId);

    /// <summary>Adds <paramref name="nodeId"/> as a learner.</summary>
    public static ConfigurationChangeItem AddLearner(ulong nodeId) => new(ConfigurationChangeType.AddLearner, nodeId);

    /// <summary>Removes <paramref name="nodeId"/>.</summary>
    public static ConfigurationChangeItem Remove(ulong nodeId) => new(ConfigurationChangeType.RemoveNode, nodeId);
}

/// <summary>Why a configuration change was refused.</summary>
public enum ConfigurationChangeError
{
    /// <summary>Entering a joint configuration while already joint.</summary>
    AlreadyJoint,

    /// <summary>Leaving a joint configuration (or a joint-only setting) when not joint.</summary>
    NotJoint,

    /// <summary>A simple change attempted while joint; the joint configuration must be left first.</summary>
    SimpleChangeWhileJoint,

    /// <summary>A simple change that changes more than one voter; it needs joint consensus.</summary>
    MoreThanOneVoterChanged,

    /// <summary>The change leaves the incoming configuration without voters, so nothing could ever be decided.</summary>
    RemovedAllVoters,

    /// <summary>Entering a joint configuration from a configuration without voters.</summary>
    ZeroVoterJoint,

    /// <summary>Node id 0, which Raft reserves for "none".</summary>
    InvalidNodeId,

    /// <summary>A node would be a learner and a voter at once.</summary>
    LearnerIsVoter,

    /// <summary>A node in learners-next is not an outgoing voter.</summary>
    LearnerNextNotOutgoingVoter,

    /// <summary>An empty change list where one item at least was required.</summary>
    EmptyChange,
}

/// <summary>A configuration change was refused: applying it could lose quorum or break joint-consensus rules.</summary>
public sealed class ConfigurationChangeException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ConfigurationChangeException(ConfigurationChangeError error, string message) : base(message) => Error = error;

    /// <summary>Which rule the change breaks.</summary>
    public ConfigurationChangeError Error { get; }
}

/// <summary>
/// Validated membership transitions for Raft, as etcd-io/raft <c>confchange/confchange.go</c> (<c>Changer</c>):
/// <list type="bullet">
/// <item><see cref="Simple"/>: at most one voter changes (Raft thesis 4.1, single-server changes); refused while joint.</item>
/// <item><see cref="EnterJoint"/>: any number of changes, via the joint configuration C_old,new (Raft thesis 4.3);
/// refused when already joint.</item>
/// <item><see cref="LeaveJoint"/>: C_old,new to C_new; refused when not joint.</item>
/// </list>
/// No transition may leave the incoming configuration without voters, make a node learner and voter at once, or use
/// node id 0. Every refusal is a <see cref="ConfigurationChangeException"/> saying why. Pure functions: the input is
/// never modified.
/// </summary>
public static class ConfigurationChange
{
    /// <summary>
    /// Applies <paramref name="changes"/> directly to the incoming configuration; the incoming voter set may differ
    /// from before by at most one node, so every old majority intersects every new majority.
    /// </summary>
    /// <exception cref="ConfigurationChangeException">Joint, more than one voter changed, all voters removed, or an invalid item.</exception>
    public static Membership Simple(Membership current, IReadOnlyList<ConfigurationChangeItem> changes)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(changes);
        if (current.IsJoint)
            throw new ConfigurationChangeException(ConfigurationChangeError.SimpleChangeWhileJoint,
                $"cannot apply a simple configuration change to the joint configuration {current.Voters}; leave it first");
        var state = new MutableMembership(current);
        state.Apply(changes);
        var before = current.Voters.Incoming;
        var changed = 0;
        foreach (var id in before) if (!state.Incoming.Contains(id)) changed++;
        foreach (var id in state.Incoming) if (!before.Contains(id)) changed++;
        if (changed > 1)
            throw new ConfigurationChangeException(ConfigurationChangeError.MoreThanOneVoterChanged,
                $"{changed} voters changed ({before} to ({string.Join(' ', state.Incoming.Order())})) without entering a joint configuration; " +
                "a simple change may change at most one voter");
        return state.Build(current.AutoLeave);
    }

    /// <summary>
    /// Enters the joint configuration: the current voters become the outgoing half and <paramref name="changes"/> are
    /// applied to the incoming half. Until <see cref="LeaveJoint"/>, decisions need majorities of both.
    /// </summary>
    /// <param name="current">A non-joint membership with at least one voter.</param>
    /// <param name="autoLeave">Whether the caller should leave the joint configuration automatically once it commits.</param>
    /// <param name="changes">The changes; at least one.</param>
    /// <exception cref="ConfigurationChangeException">Already joint, no voters, no changes, all voters removed, or an invalid item.</exception>
    public static Membership EnterJoint(Membership current, bool autoLeave, IReadOnlyList<ConfigurationChangeItem> changes)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(changes);
        if (current.IsJoint)
            throw new ConfigurationChangeException(ConfigurationChangeError.AlreadyJoint,
                $"configuration {current.Voters} is already joint; leave it before entering another");
        if (current.Voters.Incoming.Count == 0)
            throw new ConfigurationChangeException(ConfigurationChangeError.ZeroVoterJoint,
                "cannot make a configuration without voters joint");
        if (changes.Count == 0)
            throw new ConfigurationChangeException(ConfigurationChangeError.EmptyChange,
                "entering a joint configuration needs at least one change");
        var state = new MutableMembership(current);
        state.Outgoing.UnionWith(state.Incoming);
        state.Apply(changes);
        return state.Build(autoLeave);
    }

    /// <summary>
    /// Leaves the joint configuration: the outgoing half is dropped and nodes parked in learners-next become learners.
    /// </summary>
    /// <exception cref="ConfigurationChangeException">The membership is not joint.</exception>
    public static Membership LeaveJoint(Membership current)
    {
        ArgumentNullException.ThrowIfNull(current);
        if (!current.IsJoint)
            throw new ConfigurationChangeException(ConfigurationChangeError.NotJoint,
                $"cannot leave a joint configuration: {current.Voters} is not joint");
        var state = new MutableMembership(current);
        state.Learners.UnionWith(state.LearnersNext);
        state.LearnersNext.Clear();
        state.Outgoing.Clear();
        return state.Build(autoLeave: false);
    }

    /// <summary>
    /// Checks a membership built elsewhere (say, restored from a snapshot) against every rule, returning the refusal
    /// instead of throwing; null when valid.
    /// </summary>
    public static ConfigurationChangeException? Validate(JointConfig voters, IEnumerable<ulong> learners,
        IEnumerable<ulong> learnersNext, bool autoLeave)
    {
        try
        {
            _ = new Membership(voters, learners, learnersNext, autoLeave);
            return null;
        }
        catch (ConfigurationChangeException refusal)
        {
            return refusal;
        }
    }

    // The sets being edited. HashSet order never leaks out: Build sorts through MajorityConfig and Membership.
    private sealed class MutableMembership(Membership from)
    {
        public HashSet<ulong> Incoming { get; } = [.. from.Voters.Incoming];
        public HashSet<ulong> Outgoing { get; } = [.. from.Voters.Outgoing];
        public HashSet<ulong> Learners { get; } = [.. from.Learners];
        public HashSet<ulong> LearnersNext { get; } = [.. from.LearnersNext];

        public void Apply(IReadOnlyList<ConfigurationChangeItem> changes)
        {
            foreach (var change in changes)
            {
                if (change.NodeId == 0)
                    throw new ConfigurationChangeException(ConfigurationChangeError.InvalidNodeId,
                        $"{change.Type} names node 0, which is reserved for 'none'");
                switch (change.Type)
                {
                    case ConfigurationChangeType.AddVoter: MakeVoter(change.NodeId); break;
                    case ConfigurationChangeType.AddLearner: MakeLearner(change.NodeId); break;
                    case ConfigurationChangeType.RemoveNode: Remove(change.NodeId); break;
                    default:
                        throw new ArgumentOutOfRangeException(nameof(changes), change.Type, "unknown configuration change type");
                }
            }
            if (Incoming.Count == 0)
                throw new ConfigurationChangeException(ConfigurationChangeError.RemovedAllVoters,
                    "the change removes every voter of the incoming configuration; no quorum could ever form again");
        }

        public Membership Build(bool autoLeave) =>
            new(new JointConfig(new MajorityConfig(Incoming), new MajorityConfig(Outgoing)), Learners, LearnersNext, autoLeave);

        private void MakeVoter(ulong id)
        {
            Learners.Remove(id);
            LearnersNext.Remove(id);
            Incoming.Add(id);
        }

        private void MakeLearner(ulong id)
        {
            if (Learners.Contains(id)) return;
            Incoming.Remove(id);
            // A demoted voter that still votes in the outgoing half must not be a learner yet: park it until the
            // joint configuration is left (etcd confchange.makeLearner).
            if (Outgoing.Contains(id)) LearnersNext.Add(id);
            else Learners.Add(id);
        }

        private void Remove(ulong id)
        {
            Incoming.Remove(id);
            Learners.Remove(id);
            // An outgoing voter keeps voting until the joint configuration is left; it only loses its future learner spot.
            LearnersNext.Remove(id);
        }
    }
}
