using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Keel.Quorum.Tests;

public class MajorityConfigTests
{
    private readonly struct ArrayAcks(ulong[] ids, ulong[] indexes) : IAckedIndexer
    {
        public bool TryGetAckedIndex(ulong memberId, out ulong index)
        {
            var i = Array.IndexOf(ids, memberId);
            index = i >= 0 ? indexes[i] : 0;
            return i >= 0;
        }
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(1, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 2)]
    [InlineData(4, 3)]
    [InlineData(5, 3)]
    [InlineData(6, 4)]
    [InlineData(7, 4)]
    public void QuorumSize_is_floor_half_plus_one(int voters, int expected)
    {
        var config = new MajorityConfig(Enumerable.Range(1, voters).Select(i => (ulong)i));
        Assert.Equal(expected, config.QuorumSize);
        Assert.Equal(voters - expected, config.FailuresTolerated);
    }

    [Fact]
    public void Voters_are_sorted_and_deduplicated()
    {
        var config = new MajorityConfig([5, 1, 3, 1, 5]);
        Assert.Equal([1UL, 3, 5], config.ToArray());
        Assert.Equal(3, config.Count);
        Assert.True(config.Contains(3));
        Assert.False(config.Contains(2));
        Assert.Equal("(1 3 5)", config.ToString());
        Assert.Equal(new MajorityConfig([3, 5, 1]), config);
        Assert.Equal(new MajorityConfig([3, 5, 1]).GetHashCode(), config.GetHashCode());
        Assert.NotEqual(new MajorityConfig([1, 3]), config);
        config.AssertInvariants();
    }

    [Fact]
    public void Empty_config_commits_everything_and_wins_every_vote()
    {
        Assert.Equal(ulong.MaxValue, MajorityConfig.Empty.CommittedIndex(new AckedIndexMap(new Dictionary<ulong, ulong>())));
        Assert.Equal(VoteResult.Won, MajorityConfig.Empty.Vote(new VoteMap(new Dictionary<ulong, bool>())));
        Assert.Equal(0, MajorityConfig.Empty.QuorumSize);
    }

    [Fact]
    public void CommittedIndex_takes_the_quorum_th_largest_ack()
    {
        var config = new MajorityConfig([1, 2, 3, 4, 5]);
        var acks = new AckedIndexMap(new Dictionary<ulong, ulong> { [1] = 100, [2] = 90, [3] = 80, [4] = 70, [5] = 60 });
        Assert.Equal(80UL, config.CommittedIndex(acks));
    }

    [Fact]
    public void Missing_acks_count_as_zero_and_non_voters_are_ignored()
    {
        var config = new MajorityConfig([1, 2, 3]);
        var acks = new AckedIndexMap(new Dictionary<ulong, ulong> { [1] = 10, [7] = 50, [8] = 50 });
        Assert.Equal(0UL, config.CommittedIndex(acks));
        acks = new AckedIndexMap(new Dictionary<ulong, ulong> { [1] = 10, [2] = 4, [7] = 50 });
        Assert.Equal(4UL, config.CommittedIndex(acks));
    }

    [Fact]
    public void Vote_counts_grants_rejections_and_outstanding_votes()
    {
        var config = new MajorityConfig([1, 2, 3, 4, 5]);
        Assert.Equal(VoteResult.Pending, config.Vote(new VoteMap(new Dictionary<ulong, bool> { [1] = true, [2] = true })));
        Assert.Equal(VoteResult.Won, config.Vote(new VoteMap(new Dictionary<ulong, bool> { [1] = true, [2] = true, [3] = true })));
        Assert.Equal(VoteResult.Pending, config.Vote(new VoteMap(new Dictionary<ulong, bool> { [1] = false, [2] = false })));
        Assert.Equal(VoteResult.Lost, config.Vote(new VoteMap(new Dictionary<ulong, bool> { [1] = false, [2] = false, [3] = false })));
        // Votes from non-voters never count.
        Assert.Equal(VoteResult.Pending, config.Vote(new VoteMap(new Dictionary<ulong, bool> { [1] = true, [2] = true, [9] = true })));
    }

    [Fact]
    public void CommittedIndex_does_not_allocate_for_seven_voters()
    {
        var ids = new ulong[] { 7, 3, 5, 1, 2, 6, 4 };
        var config = new MajorityConfig(ids);
        var acks = new ArrayAcks(ids, [70, 30, 50, 10, 20, 60, 40]);
        ulong result = 0;
        for (var i = 0; i < 1000; i++) result = config.CommittedIndex(acks); // warm up (tiered JIT)
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++) result = config.CommittedIndex(acks);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(40UL, result);
        Assert.Equal(0, allocated);
    }

    [Property(Arbitrary = [typeof(QuorumArbitraries)], MaxTest = 300, Replay = "4242,1777")]
    public bool CommittedIndex_equals_naive_sort_descending(Scenario scenario)
    {
        var config = new MajorityConfig(scenario.Voters);
        var actual = config.CommittedIndex(new AckedIndexMap(scenario.AckMap()));
        if (scenario.Voters.Length == 0) return actual == ulong.MaxValue;
        var naive = scenario.Acks.Select(a => a < 0 ? 0UL : (ulong)a).OrderByDescending(a => a).ElementAt(config.QuorumSize - 1);
        return actual == naive;
    }

    [Property(Arbitrary = [typeof(QuorumArbitraries)], MaxTest = 300, Replay = "4243,1777")]
    public bool CommittedIndex_is_acked_by_a_quorum_and_nothing_higher_is(Scenario scenario)
    {
        var config = new MajorityConfig(scenario.Voters);
        if (config.Count == 0) return true;
        var acks = scenario.AckMap();
        var committed = config.CommittedIndex(new AckedIndexMap(acks));
        var ackedAtLeast = config.Count(v => acks.GetValueOrDefault(v) >= committed);
        var ackedAbove = config.Count(v => acks.GetValueOrDefault(v) > committed);
        return ackedAtLeast >= config.QuorumSize && ackedAbove < config.QuorumSize;
    }

    [Property(Arbitrary = [typeof(QuorumArbitraries)], MaxTest = 300, Replay = "4244,1777")]
    public bool Raising_an_ack_never_lowers_the_committed_index(Scenario scenario, PositiveInt raise)
    {
        if (scenario.Voters.Length == 0) return true;
        var config = new MajorityConfig(scenario.Voters);
        var acks = scenario.AckMap();
        var before = config.CommittedIndex(new AckedIndexMap(acks));
        var voter = scenario.Voters[raise.Get % scenario.Voters.Length];
        acks[voter] = acks.GetValueOrDefault(voter) + (ulong)raise.Get;
        return config.CommittedIndex(new AckedIndexMap(acks)) >= before;
    }

    [Property(Arbitrary = [typeof(QuorumArbitraries)], MaxTest = 300, Replay = "4245,1777")]
    public bool Vote_equals_naive_count(Scenario scenario)
    {
        var config = new MajorityConfig(scenario.Voters);
        var n = scenario.Voters.Length;
        var granted = scenario.Votes.Count(v => v == 1);
        var rejected = scenario.Votes.Count(v => v == 2);
        var expected = n == 0 || granted >= n / 2 + 1 ? VoteResult.Won
            : rejected > n - (n / 2 + 1) ? VoteResult.Lost
            : VoteResult.Pending;
        return config.Vote(new VoteMap(scenario.VoteMap())) == expected;
    }

    [Property(MaxTest = 200, Replay = "4246,1777")]
    public Property Any_two_majorities_intersect()
    {
        var gen = from n in Gen.Choose(1, 9)
                  from a in Gen.Choose(0, (1 << n) - 1)
                  from b in Gen.Choose(0, (1 << n) - 1)
                  select (n, a, b);
        return Prop.ForAll(gen.ToArbitrary(), t =>
        {
            var config = new MajorityConfig(Enumerable.Range(1, t.n).Select(i => (ulong)i));
            var isQuorumA = System.Numerics.BitOperations.PopCount((uint)t.a) >= config.QuorumSize;
            var isQuorumB = System.Numerics.BitOperations.PopCount((uint)t.b) >= config.QuorumSize;
            return !(isQuorumA && isQuorumB) || (t.a & t.b) != 0;
        });
    }
}
