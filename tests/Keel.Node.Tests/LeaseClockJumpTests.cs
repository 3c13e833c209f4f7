namespace Keel.Node.Tests;

/// <summary>
/// A lease never expires before its TTL has passed since it was asked for, also after the leader's wall clock jumped
/// ahead and back (chaos fault clock-jump-leader). After the jump back the hybrid clock does not go backwards, so every
/// entry is stamped with the frozen physical time of the jump for as long as the jump was; a grant applied then must
/// still give its holder the full TTL on the leader, which alone expires leases.
/// </summary>
public sealed class LeaseClockJumpTests
{
    private static KvCommand Put(string key, string value) =>
        KvCommand.Of(new Keel.Mvcc.PutRequest { Key = TestCluster.B(key), Value = TestCluster.B(value) });

    [Theory]
    [InlineData(true, true, 370)]
    [InlineData(false, true, 370)]
    [InlineData(true, true, 130)]
    [InlineData(false, true, 130)]
    [InlineData(true, false, 370)]
    [InlineData(true, false, 130)]
    public void A_lease_granted_after_the_leaders_clock_jumped_lives_its_full_ttl(bool throughFollower, bool jumpedBack, long pauseMs)
    {
        var cluster = new TestCluster([1, 2, 3], configure: o => o with { LeaderWaitMs = 5_000 }, seed: 5);
        var leader = cluster.ElectLeader();
        var follower = cluster.Nodes.Values.First(n => n.Id != leader.Id);
        ulong requestId = 100;
        cluster.WallOffsetMs[leader.Id] = 30_000;
        for (var i = 0; i < 20; i++)
        {
            Assert.Null(cluster.Submit(i % 2 == 0 ? leader : follower, ++requestId, Put("k", $"a{i}")).Error);
            cluster.Step(100);
        }
        if (jumpedBack) cluster.WallOffsetMs[leader.Id] = 0;
        for (var i = 0; i < 13; i++)
        {
            Assert.Null(cluster.Submit(follower, ++requestId, Put("k", $"b{i}")).Error);
            cluster.Step(100);
        }
        // Where the grant falls between the leader's expiry checks (every 500 ms) decides how stale its time is.
        cluster.Step(pauseMs);

        var grantedAt = cluster.NowMs;
        var grant = cluster.Submit(throughFollower ? follower : leader, ++requestId, KvCommand.LeaseGrant(0, 3));
        Assert.Null(grant.Error);
        var leaseId = grant.LeaseGrant!.LeaseId;
        cluster.StepUntil(() => !cluster.Leader.LeaseTable.Contains(leaseId), maxMs: 20_000);
        Assert.True(cluster.NowMs - grantedAt >= 3_000, $"the lease was revoked {cluster.NowMs - grantedAt} ms after it was asked for (TTL 3 s)");
        cluster.AssertInvariants();
    }
}
