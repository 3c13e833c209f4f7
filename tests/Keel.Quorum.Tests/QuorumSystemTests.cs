using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Keel.Quorum.Tests;

public class QuorumSystemTests
{
    [Fact]
    public void Disjoint_threshold_quorums_are_refused_with_the_reason()
    {
        var refusal = Assert.Throws<UnsafeQuorumSystemException>(() => QuorumSystem.Thresholds(4, 2, 2));
        Assert.Contains("election quorum 2 + replication quorum 2 <= 4 members: two disjoint quorums exist", refusal.Message);
        Assert.Contains("two leaders can be elected in one term", refusal.Message);
        Assert.Equal(2, refusal.Reasons.Count);
    }

    [Fact]
    public void Election_quorums_must_intersect_each_other_even_when_replication_is_large()
    {
        // E + R > N holds (2 + 4 > 5), but two election quorums of 2 can be disjoint.
        var check = QuorumSystem.CheckThresholds([1, 2, 3, 4, 5], 2, 4);
        Assert.False(check.IsSafe);
        Assert.Single(check.Errors);
        Assert.Contains("two disjoint election quorums", check.Errors[0]);
    }

    [Theory]
    [InlineData(3, 0, 2)]
    [InlineData(3, 2, 4)]
    [InlineData(0, 1, 1)]
    public void Out_of_range_sizes_are_refused(int members, int election, int replication)
    {
        Assert.Throws<UnsafeQuorumSystemException>(() => QuorumSystem.Thresholds(members, election, replication));
    }

    [Fact]
    public void Majority_of_five_tolerates_two_failures_without_warnings()
    {
        var system = QuorumSystem.Majority([1, 2, 3, 4, 5]);
        Assert.Equal(3, system.ElectionQuorumSize);
        Assert.Equal(3, system.ReplicationQuorumSize);
        Assert.Equal(2, system.FailuresTolerated);
        Assert.Empty(system.Warnings);
        Assert.Equal("5 members, election 3-of-5 tolerates 2 failures, replication 3-of-5 tolerates 2 failures", system.Summary);
    }

    [Fact]
    public void Four_of_five_is_accepted_but_warned_about()
    {
        var system = QuorumSystem.Thresholds(5, 4, 4);
        Assert.Equal(1, system.FailuresTolerated);
        var warning = Assert.Single(system.Warnings);
        Assert.Contains("4-of-5 tolerates 1 failure, not 2", warning);
    }

    [Fact]
    public void Flexible_paxos_trades_election_for_replication_availability()
    {
        // Howard et al.: with N = 5, election 4 and replication 2 intersect; commits survive 3 failures.
        var system = QuorumSystem.Thresholds(5, 4, 2);
        Assert.Equal(1, system.ElectionFailuresTolerated);
        Assert.Equal(3, system.ReplicationFailuresTolerated);
        Assert.Empty(system.Warnings);
    }

    [Fact]
    public void Oversized_replication_quorum_is_warned_about()
    {
        // Election 4 + replication 3: either side could shrink (to 3 or to 2) and still intersect the other.
        var system = QuorumSystem.Thresholds(5, 4, 3);
        Assert.Equal(2, system.Warnings.Count);
        Assert.Contains(system.Warnings, w => w.Contains("election quorum 4-of-5 is larger than needed: 3"));
        Assert.Contains(system.Warnings, w => w.Contains("replication quorum 3-of-5 is larger than needed: 2"));
        // Election 4 + replication 2 is the Flexible Paxos trade-off: nothing to shrink.
        Assert.Empty(QuorumSystem.Thresholds(5, 4, 2).Warnings);
    }

    [Fact]
    public void Even_member_count_is_warned_about()
    {
        var system = QuorumSystem.Majority([1, 2, 3, 4]);
        Assert.Equal(1, system.FailuresTolerated);
        Assert.Contains(system.Warnings, w => w.Contains("the same as 3"));
    }

    [Fact]
    public void All_members_quorum_warns_that_no_failure_is_tolerated()
    {
        var system = QuorumSystem.Thresholds(3, 3, 3);
        Assert.Contains(system.Warnings, w => w.Contains("tolerates 0 failures, not 1"));
        Assert.Contains(system.Warnings, w => w.Contains("one member down blocks every commit"));
    }

    [Fact]
    public void Explicit_sets_name_the_disjoint_pair()
    {
        var refusal = Assert.Throws<UnsafeQuorumSystemException>(() => QuorumSystem.FromQuorumSets(
            [1, 2, 3, 4, 5, 6],
            [[1, 2, 3], [4, 5, 6]],
            [[1, 4], [2, 5], [3, 6]]));
        Assert.Contains("election quorums {1,2,3} and {4,5,6} are disjoint", refusal.Message);
    }

    [Fact]
    public void Explicit_sets_report_failure_tolerance()
    {
        // A 2x3 grid: elect with one full column plus a member of every other column... here simply every row+column.
        var system = QuorumSystem.FromQuorumSets([1, 2, 3], [[1, 2], [2, 3], [1, 3]], [[1, 2], [2, 3], [1, 3]]);
        Assert.Equal(1, system.ElectionFailuresTolerated);
        Assert.Equal(1, system.ReplicationFailuresTolerated);
        Assert.Empty(system.Warnings);
        Assert.True(system.IsReplicationQuorum([3, 1]));
        Assert.False(system.IsElectionQuorum([2]));
        system.AssertInvariants();
    }

    [Fact]
    public void Explicit_sets_reject_non_members_and_empty_quorums()
    {
        var check = QuorumSystem.CheckQuorumSets([1, 2, 3], [[1, 9]], [[]]);
        Assert.False(check.IsSafe);
        Assert.Contains(check.Errors, e => e.Contains("names 9, which is not a member"));
        Assert.Contains(check.Errors, e => e.Contains("empty replication quorum"));
    }

    [Fact]
    public void Single_member_quorum_is_flagged_as_fragile()
    {
        var system = QuorumSystem.FromQuorumSets([1, 2, 3], [[1]], [[1]]);
        Assert.Equal(0, system.FailuresTolerated);
        Assert.Contains(system.Warnings, w => w.Contains("a plain majority of 3 would tolerate 1 failure"));
    }

    private static IEnumerable<int> Subsets(int n, int size) =>
        Enumerable.Range(0, 1 << n).Where(mask => System.Numerics.BitOperations.PopCount((uint)mask) == size);

    [Property(MaxTest = 400, Replay = "777,3131")]
    public Property Accepted_threshold_systems_never_have_disjoint_quorums_and_safe_ones_are_accepted()
    {
        var gen = from n in Gen.Choose(1, 9)
                  from e in Gen.Choose(0, 10)
                  from r in Gen.Choose(0, 10)
                  select (n, e, r);
        return Prop.ForAll(gen.ToArbitrary(), t =>
        {
            var check = QuorumSystem.CheckThresholds(Enumerable.Range(1, t.n).Select(i => (ulong)i), t.e, t.r);
            var inRange = t.e >= 1 && t.e <= t.n && t.r >= 1 && t.r <= t.n;
            var bruteForceSafe = inRange
                && Subsets(t.n, t.e).All(a => Subsets(t.n, t.r).All(b => (a & b) != 0))
                && Subsets(t.n, t.e).All(a => Subsets(t.n, t.e).All(b => (a & b) != 0));
            if (check.IsSafe)
            {
                check.System!.AssertInvariants();
                if (check.System.FailuresTolerated != t.n - Math.Max(t.e, t.r)) return false;
            }
            return check.IsSafe == bruteForceSafe;
        });
    }

    [Property(Arbitrary = [typeof(QuorumArbitraries)], MaxTest = 400, Replay = "778,3131")]
    public bool Explicit_sets_are_accepted_exactly_when_all_pairs_intersect(QuorumSets sets)
    {
        var check = QuorumSystem.CheckQuorumSets(sets.Members,
            sets.Election.Select(m => QuorumSets.Decode(m, sets.MemberCount)),
            sets.Replication.Select(m => QuorumSets.Decode(m, sets.MemberCount)));
        var bruteForceSafe = sets.Election.All(e => sets.Replication.All(r => (e & r) != 0))
                             && sets.Election.All(e => sets.Election.All(o => (e & o) != 0));
        if (!check.IsSafe) return !bruteForceSafe && check.Errors.Count > 0;
        if (!bruteForceSafe) return false;
        var system = check.System!;
        system.AssertInvariants();
        return system.ElectionFailuresTolerated == BruteForceTolerance(sets.MemberCount, sets.Election)
               && system.ReplicationFailuresTolerated == BruteForceTolerance(sets.MemberCount, sets.Replication);
    }

    // Largest f such that every failure set of size f leaves some quorum entirely alive.
    private static int BruteForceTolerance(int n, int[] quorums)
    {
        var tolerated = -1;
        for (var f = 0; f <= n; f++)
        {
            if (Subsets(n, f).All(failed => quorums.Any(q => (q & failed) == 0))) tolerated = f;
            else break;
        }
        return tolerated;
    }
}
