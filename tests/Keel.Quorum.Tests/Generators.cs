using FsCheck;
using FsCheck.Fluent;

namespace Keel.Quorum.Tests;

/// <summary>A configuration with each member's acknowledged index (-1 = no acknowledgement) and vote.</summary>
public sealed record Scenario(ulong[] Voters, int[] Acks, int[] Votes)
{
    public Dictionary<ulong, ulong> AckMap()
    {
        var map = new Dictionary<ulong, ulong>();
        for (var i = 0; i < Voters.Length; i++) if (Acks[i] >= 0) map[Voters[i]] = (ulong)Acks[i];
        return map;
    }

    /// <summary>Votes: 0 absent, 1 granted, 2 rejected.</summary>
    public Dictionary<ulong, bool> VoteMap()
    {
        var map = new Dictionary<ulong, bool>();
        for (var i = 0; i < Voters.Length; i++) if (Votes[i] != 0) map[Voters[i]] = Votes[i] == 1;
        return map;
    }

    public override string ToString() =>
        $"voters=[{string.Join(",", Voters)}] acks=[{string.Join(",", Acks)}] votes=[{string.Join(",", Votes)}]";
}

public sealed record JointScenario(ulong[] Incoming, ulong[] Outgoing, Dictionary<ulong, ulong> Acks, Dictionary<ulong, bool> Votes)
{
    public override string ToString() =>
        $"in=[{string.Join(",", Incoming)}] out=[{string.Join(",", Outgoing)}] acks={{{string.Join(",", Acks.OrderBy(p => p.Key).Select(p => $"{p.Key}:{p.Value}"))}}} " +
        $"votes={{{string.Join(",", Votes.OrderBy(p => p.Key).Select(p => $"{p.Key}:{p.Value}"))}}}";
}

/// <summary>Explicit quorum families over members 1..N, as bit masks.</summary>
public sealed record QuorumSets(int MemberCount, int[] Election, int[] Replication)
{
    public ulong[] Members => Enumerable.Range(1, MemberCount).Select(i => (ulong)i).ToArray();

    public static IEnumerable<ulong> Decode(int mask, int n) =>
        Enumerable.Range(0, n).Where(i => (mask & (1 << i)) != 0).Select(i => (ulong)i + 1);

    public override string ToString() =>
        $"n={MemberCount} election=[{string.Join(" ", Election.Select(m => "{" + string.Join(",", Decode(m, MemberCount)) + "}"))}] " +
        $"replication=[{string.Join(" ", Replication.Select(m => "{" + string.Join(",", Decode(m, MemberCount)) + "}"))}]";
}

public static class QuorumArbitraries
{
    private static Gen<ulong[]> DistinctIds(int maxCount) =>
        Gen.Choose(0, maxCount).SelectMany(count =>
            Gen.Shuffle(Enumerable.Range(1, 20).Select(i => (ulong)i)).Select(ids => ids.Take(count).ToArray()));

    public static Arbitrary<Scenario> Scenario() =>
        (from voters in DistinctIds(9)
         from acks in Gen.ArrayOf(Gen.Choose(-1, 40), voters.Length)
         from votes in Gen.ArrayOf(Gen.Choose(0, 2), voters.Length)
         select new Scenario(voters, acks, votes)).ToArbitrary();

    public static Arbitrary<JointScenario> JointScenario() =>
        (from incoming in DistinctIds(7)
         from outgoing in DistinctIds(7)
         from acks in Gen.ArrayOf(Gen.Choose(-1, 40), 20)
         from votes in Gen.ArrayOf(Gen.Choose(0, 2), 20)
         select new JointScenario(incoming, outgoing,
             Enumerable.Range(1, 20).Where(i => acks[i - 1] >= 0).ToDictionary(i => (ulong)i, i => (ulong)acks[i - 1]),
             Enumerable.Range(1, 20).Where(i => votes[i - 1] != 0).ToDictionary(i => (ulong)i, i => votes[i - 1] == 1)))
        .ToArbitrary();

    public static Arbitrary<QuorumSets> QuorumSets() =>
        (from n in Gen.Choose(1, 6)
         from electionCount in Gen.Choose(1, 5)
         from replicationCount in Gen.Choose(1, 5)
         from election in Gen.ArrayOf(Gen.Choose(1, (1 << n) - 1), electionCount)
         from replication in Gen.ArrayOf(Gen.Choose(1, (1 << n) - 1), replicationCount)
         select new QuorumSets(n, election, replication)).ToArbitrary();
}
