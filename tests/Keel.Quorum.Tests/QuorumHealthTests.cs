using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Keel.Quorum.Tests;

public class QuorumHealthTests
{
    private static readonly MajorityConfig Five = new([1, 2, 3, 4, 5]);

    [Fact]
    public void Healthy_five_reports_the_third_fastest_as_commit_latency_bound()
    {
        var snapshot = QuorumHealth.Snapshot(Five,
        [
            new VoterStatus(1, true, 100, 5), new VoterStatus(2, true, 100, 1), new VoterStatus(3, true, 90, 9),
            new VoterStatus(4, true, 95, 3), new VoterStatus(5, true, 80, 20),
        ]);
        Assert.True(snapshot.QuorumAvailable);
        Assert.Equal(5, snapshot.VotersReachable);
        Assert.Equal(2, snapshot.FailuresTolerableNow);
        Assert.Equal(1UL, snapshot.CommitLatencyBoundMember!.Value.Id);
        Assert.Equal(5L, snapshot.CommitLatencyBoundMs);
        Assert.Equal(95UL, snapshot.CommittableIndex);
        Assert.Equal("5/5 voters reachable, quorum 3 available, tolerates 2 more failures, " +
                     "commit latency bound by voter 1 (5 ms), committable index 95", snapshot.Summary);
    }

    [Fact]
    public void Two_down_leaves_no_spare_and_the_slow_member_bounds_latency()
    {
        var snapshot = QuorumHealth.Snapshot(Five,
        [
            new VoterStatus(1, true, 100, 5), new VoterStatus(2, false, 100, 1), new VoterStatus(3, true, 90, 9),
            new VoterStatus(4, false, 95, 3), new VoterStatus(5, true, 80, 20),
        ]);
        Assert.True(snapshot.QuorumAvailable);
        Assert.Equal(0, snapshot.FailuresTolerableNow);
        Assert.Equal(5UL, snapshot.CommitLatencyBoundMember!.Value.Id);
        Assert.Equal(80UL, snapshot.CommittableIndex);
        Assert.Equal([2UL, 4], snapshot.UnreachableVoters);
    }

    [Fact]
    public void Three_down_is_unavailable_and_says_how_many_are_missing()
    {
        var snapshot = QuorumHealth.Snapshot(Five, [new VoterStatus(1, true, 100, 5), new VoterStatus(2, true, 100, 1)]);
        Assert.False(snapshot.QuorumAvailable);
        Assert.Equal(1, snapshot.VotersNeededForQuorum);
        Assert.Null(snapshot.CommitLatencyBoundMember);
        Assert.Equal(0UL, snapshot.CommittableIndex);
        Assert.Equal("2/5 voters reachable, quorum 3 UNAVAILABLE: 1 more voter needed (unreachable: 3, 4, 5)", snapshot.Summary);
    }

    [Fact]
    public void Seed_brownout_two_two_one_without_the_single_zone_member_still_commits()
    {
        // Voters 1,2 in 1a, 3,4 in 1b, 5 in 1c (browned out). Four healthy voters keep quorum.
        var snapshot = QuorumHealth.Snapshot(Five,
        [
            new VoterStatus(1, true, 10, 1), new VoterStatus(2, true, 10, 2), new VoterStatus(3, true, 10, 8),
            new VoterStatus(4, true, 10, 9), new VoterStatus(5, false, 3, 400),
        ]);
        Assert.True(snapshot.QuorumAvailable);
        Assert.Equal(1, snapshot.FailuresTolerableNow);
        Assert.Equal(3UL, snapshot.CommitLatencyBoundMember!.Value.Id);
    }

    [Fact]
    public void Joint_configuration_needs_both_halves()
    {
        var joint = new JointConfig(new MajorityConfig([4, 5, 6]), new MajorityConfig([1, 2, 3]));
        var snapshot = QuorumHealth.Snapshot(joint,
        [
            new VoterStatus(1, true, 10, 1), new VoterStatus(2, true, 10, 2), new VoterStatus(3, true, 10, 3),
            new VoterStatus(4, true, 20, 30), new VoterStatus(5, false, 0, 0), new VoterStatus(6, false, 0, 0),
        ]);
        Assert.False(snapshot.QuorumAvailable);
        Assert.Equal(1, snapshot.VotersNeededForQuorum);
        Assert.Equal(4, snapshot.VotersReachable);

        snapshot = QuorumHealth.Snapshot(joint,
        [
            new VoterStatus(1, true, 10, 1), new VoterStatus(2, true, 10, 2), new VoterStatus(3, true, 10, 3),
            new VoterStatus(4, true, 20, 30), new VoterStatus(5, true, 20, 40), new VoterStatus(6, false, 0, 0),
        ]);
        Assert.True(snapshot.QuorumAvailable);
        Assert.Equal(0, snapshot.FailuresTolerableNow); // the incoming half has no spare
        Assert.Equal(5UL, snapshot.CommitLatencyBoundMember!.Value.Id); // the slower half's bound
        Assert.Equal(10UL, snapshot.CommittableIndex);
    }

    [Fact]
    public void Learners_are_ignored_and_duplicates_refused()
    {
        var three = new MajorityConfig([1, 2, 3]);
        var snapshot = QuorumHealth.Snapshot(three,
            [new VoterStatus(1, true, 5, 1), new VoterStatus(2, true, 5, 1), new VoterStatus(9, true, 5, 0)]);
        Assert.Equal(2, snapshot.VotersReachable);
        Assert.Throws<ArgumentException>(() => QuorumHealth.Snapshot(three, [new VoterStatus(1, true, 5, 1), new VoterStatus(1, false, 5, 1)]));
        Assert.Throws<ArgumentException>(() => QuorumHealth.Snapshot(three, [new VoterStatus(1, true, 5, -1)]));
        Assert.Throws<ArgumentException>(() => QuorumHealth.Snapshot(MajorityConfig.Empty, []));
    }

    [Property(MaxTest = 300, Replay = "31337,2719")]
    public Property Latency_bound_is_the_quorum_th_fastest_reachable_voter()
    {
        var status = from reachable in Gen.Elements(true, true, false)
                     from latency in Gen.Choose(0, 50)
                     from match in Gen.Choose(0, 30)
                     select (reachable, latency, match);
        var gen = from n in Gen.Choose(1, 9)
                  from statuses in Gen.ArrayOf(status, n)
                  select statuses;
        return Prop.ForAll(gen.ToArbitrary(), statuses =>
        {
            var voters = statuses.Select((_, i) => new VoterStatus((ulong)i + 1, statuses[i].reachable, (ulong)statuses[i].match, statuses[i].latency)).ToArray();
            var config = new MajorityConfig(voters.Select(v => v.Id));
            var snapshot = QuorumHealth.Snapshot(config, voters);
            var reachable = voters.Where(v => v.Reachable).OrderBy(v => v.LastResponseLatencyMs).ThenBy(v => v.Id).ToArray();
            if (reachable.Length < config.QuorumSize)
                return !snapshot.QuorumAvailable && snapshot.VotersNeededForQuorum == config.QuorumSize - reachable.Length;
            return snapshot.QuorumAvailable
                   && snapshot.CommitLatencyBoundMember == reachable[config.QuorumSize - 1]
                   && snapshot.FailuresTolerableNow == reachable.Length - config.QuorumSize
                   && snapshot.CommittableIndex == reachable.Select(v => v.MatchIndex).Concat(Enumerable.Repeat(0UL, voters.Length - reachable.Length))
                       .OrderByDescending(m => m).ElementAt(config.QuorumSize - 1);
        });
    }
}
