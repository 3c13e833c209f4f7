using FsCheck.Xunit;

namespace Keel.Quorum.Tests;

public class JointConfigTests
{
    [Fact]
    public void Non_joint_config_behaves_like_its_incoming_half()
    {
        var joint = new JointConfig(new MajorityConfig([1, 2, 3]), MajorityConfig.Empty);
        Assert.False(joint.IsJoint);
        Assert.Equal([1UL, 2, 3], joint.AllVoters);
        Assert.Equal("(1 2 3)", joint.ToString());
        var acks = new AckedIndexMap(new Dictionary<ulong, ulong> { [1] = 5, [2] = 7 });
        Assert.Equal(5UL, joint.CommittedIndex(acks));
        joint.AssertInvariants();
    }

    [Fact]
    public void Joint_commit_needs_a_majority_of_both_halves()
    {
        var joint = new JointConfig(new MajorityConfig([4, 5, 6]), new MajorityConfig([1, 2, 3]));
        Assert.True(joint.IsJoint);
        Assert.Equal([1UL, 2, 3, 4, 5, 6], joint.AllVoters);
        Assert.Equal("(4 5 6)&&(1 2 3)", joint.ToString());
        // The new voters have index 100, the old ones only 10: the old majority holds the commit back.
        var acks = new AckedIndexMap(new Dictionary<ulong, ulong> { [1] = 10, [2] = 10, [4] = 100, [5] = 100, [6] = 100 });
        Assert.Equal(10UL, joint.CommittedIndex(acks));
    }

    [Fact]
    public void Joint_vote_wins_only_when_both_halves_win()
    {
        var joint = new JointConfig(new MajorityConfig([1, 2, 3]), new MajorityConfig([3, 4, 5]));
        Assert.Equal(VoteResult.Pending, joint.Vote(new VoteMap(new Dictionary<ulong, bool> { [1] = true, [2] = true })));
        Assert.Equal(VoteResult.Won, joint.Vote(new VoteMap(new Dictionary<ulong, bool> { [1] = true, [2] = true, [3] = true, [4] = true })));
        Assert.Equal(VoteResult.Lost, joint.Vote(new VoteMap(new Dictionary<ulong, bool> { [1] = true, [2] = true, [4] = false, [5] = false })));
    }

    [Fact]
    public void Equality_compares_both_halves()
    {
        var a = new JointConfig(new MajorityConfig([1, 2, 3]), new MajorityConfig([1, 2]));
        var b = new JointConfig(new MajorityConfig([3, 2, 1]), new MajorityConfig([2, 1]));
        var c = new JointConfig(new MajorityConfig([1, 2]), new MajorityConfig([1, 2, 3]));
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, c);
    }

    [Property(Arbitrary = [typeof(QuorumArbitraries)], MaxTest = 300, Replay = "5151,2999")]
    public bool Joint_committed_index_is_the_minimum_of_both_halves(JointScenario s)
    {
        var incoming = new MajorityConfig(s.Incoming);
        var outgoing = new MajorityConfig(s.Outgoing);
        var joint = new JointConfig(incoming, outgoing);
        joint.AssertInvariants();
        var acks = new AckedIndexMap(s.Acks);
        return joint.CommittedIndex(acks) == Math.Min(incoming.CommittedIndex(acks), outgoing.CommittedIndex(acks));
    }

    [Property(Arbitrary = [typeof(QuorumArbitraries)], MaxTest = 300, Replay = "5152,2999")]
    public bool Joint_vote_combines_halves(JointScenario s)
    {
        var incoming = new MajorityConfig(s.Incoming);
        var outgoing = new MajorityConfig(s.Outgoing);
        var votes = new VoteMap(s.Votes);
        var a = incoming.Vote(votes);
        var b = outgoing.Vote(votes);
        var expected = a == VoteResult.Won && b == VoteResult.Won ? VoteResult.Won
            : a == VoteResult.Lost || b == VoteResult.Lost ? VoteResult.Lost
            : VoteResult.Pending;
        return new JointConfig(incoming, outgoing).Vote(votes) == expected;
    }

    [Property(Arbitrary = [typeof(QuorumArbitraries)], MaxTest = 200, Replay = "5153,2999")]
    public bool AllVoters_is_the_sorted_union(JointScenario s)
    {
        var joint = new JointConfig(new MajorityConfig(s.Incoming), new MajorityConfig(s.Outgoing));
        return joint.AllVoters.SequenceEqual(s.Incoming.Union(s.Outgoing).Order())
               && joint.IsJoint == (s.Outgoing.Length > 0);
    }
}
