using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Keel.Quorum.Tests;

public class ConfigurationChangeTests
{
    private static readonly Membership Three = new([1, 2, 3]);

    [Fact]
    public void Simple_change_adds_one_voter()
    {
        var next = ConfigurationChange.Simple(Three, [ConfigurationChangeItem.AddVoter(4)]);
        Assert.Equal("voters=(1 2 3 4)", next.ToString());
        next.AssertInvariants();
    }

    [Fact]
    public void Simple_change_of_two_voters_needs_joint_consensus()
    {
        var refusal = Assert.Throws<ConfigurationChangeException>(() =>
            ConfigurationChange.Simple(Three, [ConfigurationChangeItem.AddVoter(4), ConfigurationChangeItem.AddVoter(5)]));
        Assert.Equal(ConfigurationChangeError.MoreThanOneVoterChanged, refusal.Error);
        Assert.Contains("without entering a joint configuration", refusal.Message);
    }

    [Fact]
    public void Removing_the_last_voter_is_refused()
    {
        var one = new Membership([1]);
        var refusal = Assert.Throws<ConfigurationChangeException>(() =>
            ConfigurationChange.Simple(one, [ConfigurationChangeItem.Remove(1)]));
        Assert.Equal(ConfigurationChangeError.RemovedAllVoters, refusal.Error);
        // Demoting the last voter to learner leaves no voter either.
        refusal = Assert.Throws<ConfigurationChangeException>(() =>
            ConfigurationChange.Simple(one, [ConfigurationChangeItem.AddLearner(1)]));
        Assert.Equal(ConfigurationChangeError.RemovedAllVoters, refusal.Error);
    }

    [Fact]
    public void Joint_change_cannot_remove_every_incoming_voter()
    {
        var refusal = Assert.Throws<ConfigurationChangeException>(() => ConfigurationChange.EnterJoint(Three, false,
            [ConfigurationChangeItem.Remove(1), ConfigurationChangeItem.Remove(2), ConfigurationChangeItem.Remove(3)]));
        Assert.Equal(ConfigurationChangeError.RemovedAllVoters, refusal.Error);
    }

    [Fact]
    public void Replacing_all_voters_goes_through_the_joint_configuration()
    {
        var joint = ConfigurationChange.EnterJoint(Three, autoLeave: true,
        [
            ConfigurationChangeItem.AddVoter(4), ConfigurationChangeItem.AddVoter(5), ConfigurationChangeItem.AddVoter(6),
            ConfigurationChangeItem.Remove(1), ConfigurationChangeItem.Remove(2), ConfigurationChangeItem.Remove(3),
        ]);
        Assert.Equal("voters=(4 5 6)&&(1 2 3) autoleave", joint.ToString());
        Assert.True(joint.IsJoint);
        var left = ConfigurationChange.LeaveJoint(joint);
        Assert.Equal("voters=(4 5 6)", left.ToString());
        Assert.False(left.AutoLeave);
    }

    [Fact]
    public void Cannot_enter_joint_twice_or_leave_when_not_joint()
    {
        var joint = ConfigurationChange.EnterJoint(Three, false, [ConfigurationChangeItem.AddVoter(4)]);
        Assert.Equal(ConfigurationChangeError.AlreadyJoint, Assert.Throws<ConfigurationChangeException>(() =>
            ConfigurationChange.EnterJoint(joint, false, [ConfigurationChangeItem.AddVoter(5)])).Error);
        Assert.Equal(ConfigurationChangeError.NotJoint, Assert.Throws<ConfigurationChangeException>(() =>
            ConfigurationChange.LeaveJoint(Three)).Error);
        Assert.Equal(ConfigurationChangeError.SimpleChangeWhileJoint, Assert.Throws<ConfigurationChangeException>(() =>
            ConfigurationChange.Simple(joint, [ConfigurationChangeItem.AddVoter(5)])).Error);
    }

    [Fact]
    public void Entering_joint_needs_voters_and_changes()
    {
        Assert.Equal(ConfigurationChangeError.EmptyChange, Assert.Throws<ConfigurationChangeException>(() =>
            ConfigurationChange.EnterJoint(Three, false, [])).Error);
        var empty = new Membership(new JointConfig(MajorityConfig.Empty), [], []);
        Assert.Equal(ConfigurationChangeError.ZeroVoterJoint, Assert.Throws<ConfigurationChangeException>(() =>
            ConfigurationChange.EnterJoint(empty, false, [ConfigurationChangeItem.AddVoter(1)])).Error);
    }

    [Fact]
    public void Demoted_voter_waits_in_learners_next_until_the_joint_config_is_left()
    {
        var joint = ConfigurationChange.EnterJoint(Three, false, [ConfigurationChangeItem.AddLearner(3)]);
        Assert.Equal("voters=(1 2)&&(1 2 3) learners_next=(3)", joint.ToString());
        Assert.Empty(joint.Learners);
        Assert.True(joint.IsLearner(3));
        var left = ConfigurationChange.LeaveJoint(joint);
        Assert.Equal("voters=(1 2) learners=(3)", left.ToString());
    }

    [Fact]
    public void Learner_promotion_and_demotion()
    {
        var withLearner = ConfigurationChange.Simple(Three, [ConfigurationChangeItem.AddLearner(4)]);
        Assert.Equal("voters=(1 2 3) learners=(4)", withLearner.ToString());
        var promoted = ConfigurationChange.Simple(withLearner, [ConfigurationChangeItem.AddVoter(4)]);
        Assert.Equal("voters=(1 2 3 4)", promoted.ToString());
        var demoted = ConfigurationChange.Simple(promoted, [ConfigurationChangeItem.AddLearner(1)]);
        Assert.Equal("voters=(2 3 4) learners=(1)", demoted.ToString());
    }

    [Fact]
    public void Node_zero_is_refused()
    {
        Assert.Equal(ConfigurationChangeError.InvalidNodeId, Assert.Throws<ConfigurationChangeException>(() =>
            ConfigurationChange.Simple(Three, [ConfigurationChangeItem.AddVoter(0)])).Error);
        Assert.Equal(ConfigurationChangeError.InvalidNodeId, Assert.Throws<ConfigurationChangeException>(() =>
            new Membership([0, 1])).Error);
    }

    [Fact]
    public void Invalid_memberships_are_refused_with_reasons()
    {
        var voters = new JointConfig(new MajorityConfig([1, 2, 3]));
        var refusal = ConfigurationChange.Validate(voters, [3], [], false);
        Assert.Equal(ConfigurationChangeError.LearnerIsVoter, refusal!.Error);
        Assert.Contains("3 is both a learner and an incoming voter", refusal.Message);
        Assert.Equal(ConfigurationChangeError.NotJoint, ConfigurationChange.Validate(voters, [], [], autoLeave: true)!.Error);
        Assert.Equal(ConfigurationChangeError.LearnerNextNotOutgoingVoter, ConfigurationChange.Validate(voters, [], [4], false)!.Error);
        var joint = new JointConfig(new MajorityConfig([1, 2]), new MajorityConfig([1, 2, 3]));
        Assert.Equal(ConfigurationChangeError.LearnerIsVoter, ConfigurationChange.Validate(joint, [3], [], false)!.Error);
        Assert.Null(ConfigurationChange.Validate(joint, [4], [3], true));
    }

    [Fact]
    public void Inputs_are_never_modified()
    {
        var before = Three.ToString();
        _ = ConfigurationChange.EnterJoint(Three, false, [ConfigurationChangeItem.Remove(1), ConfigurationChangeItem.AddVoter(9)]);
        Assert.Equal(before, Three.ToString());
    }

    private static bool MajoritiesIntersect(MajorityConfig a, MajorityConfig b)
    {
        var ids = a.Union(b).Order().ToArray();
        var n = ids.Length;
        for (var x = 0; x < 1 << n; x++)
        {
            if (!IsMajority(a, ids, x)) continue;
            for (var y = 0; y < 1 << n; y++)
            {
                if (IsMajority(b, ids, y) && (x & y) == 0) return false;
            }
        }
        return true;
    }

    private static bool IsMajority(MajorityConfig config, ulong[] ids, int mask)
    {
        var count = 0;
        for (var i = 0; i < ids.Length; i++)
        {
            if ((mask & (1 << i)) != 0)
            {
                if (!config.Contains(ids[i])) return false;
                count++;
            }
        }
        return count >= config.QuorumSize;
    }

    [Property(MaxTest = 300, Replay = "9090,4141")]
    public Property Accepted_changes_keep_invariants_and_simple_changes_keep_majorities_intersecting()
    {
        var item = from type in Gen.Elements(ConfigurationChangeType.AddVoter, ConfigurationChangeType.AddLearner, ConfigurationChangeType.RemoveNode)
                   from id in Gen.Choose(0, 7)
                   select new ConfigurationChangeItem(type, (ulong)id);
        var step = from kind in Gen.Choose(0, 2) // 0 simple, 1 enter joint, 2 leave joint
                   from items in Gen.ListOf(item, 3)
                   select (kind, items);
        var gen = from steps in Gen.ArrayOf(step, 12)
                  select steps;
        return Prop.ForAll(gen.ToArbitrary(), steps =>
        {
            var current = new Membership([1, 2, 3]);
            foreach (var (kind, items) in steps)
            {
                Membership next;
                try
                {
                    next = kind switch
                    {
                        0 => ConfigurationChange.Simple(current, items.Take(1 + items.Count % 2).ToList()),
                        1 => ConfigurationChange.EnterJoint(current, false, items),
                        _ => ConfigurationChange.LeaveJoint(current),
                    };
                }
                catch (ConfigurationChangeException)
                {
                    continue; // refusals are fine; what is accepted must be safe
                }
                next.AssertInvariants();
                if (next.Voters.Incoming.Count == 0) return false;
                if (kind == 0 && !MajoritiesIntersect(current.Voters.Incoming, next.Voters.Incoming)) return false;
                if (kind == 1 && !next.Voters.Outgoing.Equals(current.Voters.Incoming)) return false;
                if (next.Voters.AllVoters.Any(next.Learners.Contains)) return false;
                current = next;
            }
            return true;
        });
    }
}
