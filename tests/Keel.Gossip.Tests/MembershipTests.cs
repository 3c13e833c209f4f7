using Keel.Core;
using Keel.Gossip;
using Keel.Heartbeat;

namespace Keel.Gossip.Tests;

public sealed class MembershipTests
{
    [Fact]
    public void Members_joining_through_one_seed_converge_to_the_same_view()
    {
        var cluster = TestCluster.Converged(20, seed: 1);
        foreach (var node in cluster.Nodes)
        {
            Assert.Equal(20, node.Member.LiveCount);
            Assert.All(node.Member.Members(cluster.NowMs), m => Assert.Equal(MemberStatus.Alive, m.Status));
        }
        Assert.True(cluster.LargestPacketBytes <= 1400);
    }

    [Fact]
    public void A_suspected_member_refutes_by_raising_its_incarnation_and_everyone_takes_it_back()
    {
        var cluster = TestCluster.Converged(8, seed: 2);
        var accuser = cluster[1].Member;
        var rumour = new GossipMessage(GossipMessageKind.Gossip);
        rumour.Updates.Add(new MemberUpdate(5, MemberStatus.Suspect, 0, 1));
        foreach (var to in new ulong[] { 2, 3, 4, 6, 7, 8 }) cluster.Deliver(1, to, rumour);
        Assert.Equal(6, cluster.CountSeeing(5, MemberStatus.Suspect));

        Assert.True(cluster.RunUntil(() => cluster.AllSee(5, MemberStatus.Alive), 10_000));
        Assert.Equal(1, cluster[5].Member.Incarnation);
        Assert.True(cluster[5].Member.Counters.Refutations >= 1);
        Assert.All(cluster.Nodes.Where(n => n.Member.SelfId != 5), n => Assert.Equal(1, n.Member.Find(5, cluster.NowMs)!.Value.Incarnation));
        cluster.Run(60_000);
        Assert.True(cluster.AllSee(5, MemberStatus.Alive)); // nobody went on to declare it dead
        _ = accuser;
    }

    [Fact]
    public void Indirect_probes_keep_a_member_alive_when_only_the_direct_link_is_broken()
    {
        var cluster = TestCluster.Converged(6, seed: 3);
        cluster.DropLink = (from, to) => (from == 1 && to == 2) || (from == 2 && to == 1);
        cluster.Run(60_000);
        Assert.True(cluster[1].Member.Counters.PingReqsSent > 0);
        Assert.Equal(0, cluster[1].Member.Counters.DeathsDeclared);
        Assert.True(cluster.AllSee(2, MemberStatus.Alive));
        Assert.True(cluster.AllSee(1, MemberStatus.Alive));
    }

    [Fact]
    public void A_crashed_member_is_suspected_then_declared_dead_by_every_member()
    {
        var cluster = TestCluster.Converged(10, seed: 4);
        cluster[7].Crashed = true;
        var crashedAt = cluster.NowMs;
        Assert.True(cluster.RunUntil(() => cluster.AllSee(7, MemberStatus.Dead), 120_000));
        var (minMs, maxMs) = cluster[1].Member.SuspicionTimeoutBoundsMs();
        Assert.True(cluster.NowMs - crashedAt <= maxMs + 10_000, $"took {cluster.NowMs - crashedAt} ms");
        Assert.Equal(HealthState.Failed, cluster[1].Member.HealthOf(7, cluster.NowMs));
        Assert.True(cluster.Nodes.Sum(n => n.Member.Counters.DeathsDeclared) >= 1);
        _ = minMs;
    }

    [Fact]
    public void Independent_confirmations_shorten_the_suspicion_timeout()
    {
        // memberlist's 1 s probe interval and no floor, so the figures are Lifeguard's own.
        var member = new SwimMember(1, new GossipOptions { PushPullIntervalMs = 0, ProbeIntervalMs = 1000, ProbeTimeoutMs = 500, MinSuspicionTimeoutMs = 0 }, new DeterministicRandom(5), 0);
        var outbox = new List<OutboundMessage>();
        var hello = new GossipMessage(GossipMessageKind.Gossip);
        for (ulong id = 2; id <= 10; id++) hello.Updates.Add(new MemberUpdate(id, MemberStatus.Alive, 0, id));
        member.Receive(2, hello, 0, outbox);
        long? Deadline() => member.Find(9, 1000)!.Value.SuspicionDeadlineMs;
        void Rumour(ulong from)
        {
            var rumour = new GossipMessage(GossipMessageKind.Gossip);
            rumour.Updates.Add(new MemberUpdate(9, MemberStatus.Suspect, 0, from));
            member.Receive(from, rumour, 1000, outbox);
        }

        // N = 10: min = 4 x max(1, log10 10) x 1 s = 4 s, max = 6 x min = 24 s, k = 2.
        Assert.Equal((4000L, 24000L), member.SuspicionTimeoutBoundsMs());
        Rumour(3);
        Assert.Equal(1000 + 24000, Deadline());
        Rumour(3); // the suspector repeating itself is not a confirmation
        Assert.Equal(1000 + 24000, Deadline());
        Rumour(4);
        Assert.Equal(1000 + (long)Math.Floor(24000 - Math.Log(2) / Math.Log(3) * 20000), Deadline());
        Rumour(5);
        Assert.Equal(1000 + 4000, Deadline());
        Rumour(6);
        Assert.Equal(1000 + 4000, Deadline());

        for (long t = 1000; t < 5000; t += 100) { member.Tick(t, outbox); outbox.Clear(); }
        Assert.Equal(MemberStatus.Suspect, member.Find(9, 4999)!.Value.Status);
        member.Tick(5000, outbox);
        Assert.Equal(MemberStatus.Dead, member.Find(9, 5000)!.Value.Status);
        for (long t = 5100; t < 7000; t += 100) member.Tick(t, outbox); // the verdict goes out with the next gossip round
        Assert.Contains(outbox.SelectMany(o => o.Message.Updates), u => u is { Member: 9, Status: MemberStatus.Dead, From: 1 });
        member.AssertInvariants();
    }

    [Fact]
    public void Plain_swim_uses_the_fixed_minimum_suspicion_timeout()
    {
        var member = new SwimMember(1, new GossipOptions { LifeguardEnabled = false, ProbeIntervalMs = 1000, ProbeTimeoutMs = 500 }, new DeterministicRandom(1), 0);
        var (minMs, maxMs) = member.SuspicionTimeoutBoundsMs();
        Assert.Equal(minMs, maxMs);
        Assert.Equal(4000, minMs);
    }

    [Fact]
    public void The_suspicion_timeout_never_drops_below_the_floor()
    {
        // 300 ms probes, N = 1: memberlist's formula gives 4 x 1 x 0.3 s = 1.2 s, below a 3 s pause; the floor holds.
        var member = new SwimMember(1, new GossipOptions(), new DeterministicRandom(1), 0);
        Assert.Equal((3500L, 21000L), member.SuspicionTimeoutBoundsMs());
        member.Bootstrap(Enumerable.Range(2, 9_999).Select(i => ((ulong)i, 0L, (MemberTags?)null)), 0);
        Assert.Equal(4 * 4 * 300L, member.SuspicionTimeoutBoundsMs().MinMs); // N = 10,000: 4.8 s, above the floor
    }

    [Fact]
    public void A_member_that_detects_its_own_pause_re_announces_itself_at_a_raised_incarnation()
    {
        var member = new SwimMember(1, new GossipOptions(), new DeterministicRandom(2), 0);
        member.Bootstrap([(2, 0, null), (3, 0, null)], 0);
        var outbox = new List<OutboundMessage>();
        for (long t = 0; t <= 1000; t += 50) member.Tick(t, outbox);
        var before = member.Incarnation;
        member.Tick(4000, outbox); // frozen for about 3 s
        Assert.Equal(1, member.Counters.PauseRefutations);
        Assert.Equal(before + 1, member.Incarnation);
        outbox.Clear();
        for (long t = 4050; t <= 5000; t += 50) member.Tick(t, outbox);
        Assert.Contains(outbox.SelectMany(o => o.Message.Updates), u => u is { Member: 1, Status: MemberStatus.Alive } && u.Incarnation == before + 1);
        member.AssertInvariants();
    }

    [Fact]
    public void Ten_thousand_members_bootstrap_into_a_compact_view_with_a_shared_directory()
    {
        var directory = new MemberDirectory();
        var members = Enumerable.Range(1, 3).Select(i => new SwimMember((ulong)i, new GossipOptions(), new DeterministicRandom((ulong)i), 0, directory: directory)).ToList();
        foreach (var m in members) m.Bootstrap(Enumerable.Range(1, 10_000).Select(i => ((ulong)i, 0L, (MemberTags?)null)), 0);
        Assert.Equal(10_000, directory.Count);
        foreach (var m in members)
        {
            Assert.Equal(10_000, m.LiveCount);
            Assert.Empty(m.DrainEvents()); // a bootstrap is not news
            m.AssertInvariants();
        }
        directory.AssertInvariants();
        Assert.Equal(MemberStatus.Alive, members[0].StatusOf(9_999));
        Assert.Null(members[0].StatusOf(10_001));
    }

    [Fact]
    public void A_member_that_leaves_is_marked_left_not_dead_and_not_refuted()
    {
        var cluster = TestCluster.Converged(8, seed: 6);
        cluster[3].Member.Leave(cluster.NowMs);
        Assert.True(cluster.RunUntil(() => cluster.AllSee(3, MemberStatus.Left), 20_000));
        cluster[3].Crashed = true; // shut down after announcing
        cluster.Run(60_000);
        Assert.True(cluster.AllSee(3, MemberStatus.Left));
        Assert.Equal(7, cluster[1].Member.LiveCount);
    }

    [Fact]
    public void Tag_changes_are_versioned_by_incarnation_and_reach_everyone()
    {
        var cluster = TestCluster.Converged(10, seed: 7);
        var tags = new MemberTags("eu-west-1a", "server", "1.4.0", 730);
        cluster[4].Member.UpdateTags(tags, cluster.NowMs);
        Assert.Equal(1, cluster[4].Member.Incarnation);
        Assert.True(cluster.RunUntil(() => cluster.Nodes.All(n => n.Member.Find(4, cluster.NowMs)!.Value.Tags == tags), 10_000));
        Assert.All(cluster.Nodes, n => Assert.Equal(1, n.Member.Find(4, cluster.NowMs)!.Value.Incarnation));
    }

    [Fact]
    public void A_local_pause_does_not_make_the_paused_member_accuse_anyone()
    {
        var cluster = TestCluster.Converged(10, seed: 8);
        var start = cluster.NowMs;
        for (var i = 0; i < 5; i++)
        {
            cluster[2].PausedUntilMs = cluster.NowMs + 3_000;
            cluster.Run(15_000);
        }
        Assert.True(cluster[2].Member.Counters.LocalPausesDetected >= 4);
        Assert.Equal(0, cluster.Nodes.Sum(n => n.Member.Counters.DeathsDeclared));
        Assert.True(cluster.AllSee(2, MemberStatus.Alive));
        _ = start;
    }

    [Fact]
    public void Missing_nacks_raise_local_health_and_stretch_the_probe_interval()
    {
        var member = new SwimMember(1, new GossipOptions { PushPullIntervalMs = 0 }, new DeterministicRandom(9), 0);
        var outbox = new List<OutboundMessage>();
        var hello = new GossipMessage(GossipMessageKind.Gossip);
        for (ulong id = 2; id <= 6; id++) hello.Updates.Add(new MemberUpdate(id, MemberStatus.Alive, 0, id));
        member.Receive(2, hello, 0, outbox);
        // Nothing ever answers: the member is cut off, and Lifeguard should blame itself for missing nacks.
        for (long t = 0; t < 10_000; t += 50)
        {
            outbox.Clear();
            member.Tick(t, outbox);
        }
        Assert.True(member.LocalHealthScore >= 3, $"score {member.LocalHealthScore}");
        Assert.True(member.Counters.ProbesFailed >= 2);
        member.AssertInvariants();
    }

    [Fact]
    public void Nacks_from_indirect_probers_keep_local_health_low()
    {
        var cluster = TestCluster.Converged(6, seed: 10);
        cluster[6].Crashed = true;
        cluster.Run(20_000);
        Assert.True(cluster.Nodes.Where(n => !n.Crashed).Sum(n => n.Member.Counters.NacksReceived) > 0);
        Assert.All(cluster.Nodes.Where(n => !n.Crashed), n => Assert.True(n.Member.LocalHealthScore <= 2, $"{n.Member.SelfId}: {n.Member.LocalHealthScore}"));
    }

    [Fact]
    public void A_restarted_member_refutes_its_own_death_and_comes_back()
    {
        var cluster = TestCluster.Converged(6, seed: 12);
        cluster[5].Crashed = true;
        Assert.True(cluster.RunUntil(() => cluster.AllSee(5, MemberStatus.Dead), 120_000));
        // A restart: a fresh core at incarnation 0 and a fresh channel starting at a higher sequence.
        var fresh = new TestCluster.Node
        {
            Member = new SwimMember(5, cluster.Options, new DeterministicRandom(99), cluster.NowMs),
            Channel = new GossipSecureChannel(5, new GossipKeyring(TestCluster.Key), 1_000_000, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(5) << 40 ^ (ulong)(1_000_000)))),
        };
        cluster[5].Member = fresh.Member;
        cluster[5].Channel = fresh.Channel;
        cluster[5].Crashed = false;
        var outbox = new List<OutboundMessage>();
        fresh.Member.Join(1, cluster.NowMs, outbox);
        cluster.Inject(5, 1, fresh.Channel.Seal(outbox[0].Message));
        Assert.True(cluster.RunUntil(() => cluster.AllSee(5, MemberStatus.Alive), 60_000));
        Assert.True(fresh.Member.Incarnation > 0);
    }

    [Fact]
    public void Phi_feeds_the_health_view()
    {
        var cluster = TestCluster.Converged(4, seed: 13);
        cluster.Run(20_000);
        Assert.All(cluster.Nodes, n => Assert.Equal(HealthState.Healthy, n.Member.HealthOf(2, cluster.NowMs) is var h && n.Member.SelfId == 2 ? HealthState.Healthy : h));
        cluster[2].Crashed = true;
        Assert.True(cluster.RunUntil(() => cluster[1].Member.HealthOf(2, cluster.NowMs) != HealthState.Healthy, 30_000));
        Assert.True(cluster[1].Member.Find(2, cluster.NowMs)!.Value.Phi > 0);
    }
}

public sealed class CorrectionTests
{
    [Fact]
    public void A_member_still_accusing_a_refuted_member_is_answered_directly_with_the_newer_claim()
    {
        var member = new SwimMember(1, new GossipOptions { PushPullIntervalMs = 0 }, new Keel.Core.DeterministicRandom(3), 0);
        var outbox = new List<OutboundMessage>();
        var hello = new GossipMessage(GossipMessageKind.Gossip);
        hello.Updates.Add(new MemberUpdate(2, MemberStatus.Alive, 0, 2));
        hello.Updates.Add(new MemberUpdate(3, MemberStatus.Alive, 4, 3)); // member 3 already refuted up to incarnation 4
        member.Receive(2, hello, 0, outbox);
        outbox.Clear();

        var stale = new GossipMessage(GossipMessageKind.Gossip);
        stale.Updates.Add(new MemberUpdate(3, MemberStatus.Suspect, 3, 2));
        member.Receive(2, stale, 10, outbox);

        var correction = Assert.Single(outbox);
        Assert.Equal(2UL, correction.To);
        Assert.Equal(new MemberUpdate(3, MemberStatus.Alive, 4, 3), Assert.Single(correction.Message.Updates));
        Assert.Equal(MemberStatus.Alive, member.Find(3, 10)!.Value.Status);
    }

    [Fact]
    public void An_old_accusation_about_oneself_is_answered_with_the_current_incarnation()
    {
        var member = new SwimMember(1, new GossipOptions { PushPullIntervalMs = 0 }, new Keel.Core.DeterministicRandom(3), 0);
        var outbox = new List<OutboundMessage>();
        var accusation = new GossipMessage(GossipMessageKind.Gossip);
        accusation.Updates.Add(new MemberUpdate(1, MemberStatus.Suspect, 0, 2));
        member.Receive(2, accusation, 0, outbox); // refutes: incarnation 1, queued for gossip
        Assert.Equal(1, member.Incarnation);
        Assert.Empty(outbox);

        member.Receive(2, accusation, 5, outbox); // the same old accusation again: answer the accuser directly
        var correction = Assert.Single(outbox);
        Assert.Equal(2UL, correction.To);
        Assert.Equal(new MemberUpdate(1, MemberStatus.Alive, 1, 1), Assert.Single(correction.Message.Updates));
        Assert.Equal(1, member.Incarnation); // no second refutation needed
    }
}
