using Keel.Gossip;

namespace Keel.Gossip.Tests;

public sealed class AntiEntropyTests
{
    [Theory]
    [InlineData(AntiEntropyMode.Digest)]
    [InlineData(AntiEntropyMode.FullState)]
    public void Anti_entropy_repairs_a_view_that_gossip_missed(AntiEntropyMode mode)
    {
        var options = new GossipOptions { AntiEntropy = mode, PushPullIntervalMs = 5_000 };
        var cluster = TestCluster.Converged(10, seed: 20, options);
        // Member 10 hears nothing while member 4 changes tags, so the retransmissions run out before it can get them.
        cluster.DropLink = (from, to) => to == 10 && from != 1;
        var tags = new MemberTags("z2", "agent", "2.0", 1);
        cluster[4].Member.UpdateTags(tags, cluster.NowMs);
        cluster.Run(5_000);
        Assert.NotEqual(tags, cluster[10].Member.Find(4, cluster.NowMs)!.Value.Tags);
        cluster.DropLink = null;
        Assert.True(cluster.RunUntil(() => cluster[10].Member.Find(4, cluster.NowMs)!.Value.Tags == tags, 60_000));
    }

    [Fact]
    public void Digest_exchange_between_synced_members_is_one_small_message()
    {
        var cluster = TestCluster.Converged(30, seed: 21, new GossipOptions { PushPullIntervalMs = 0 });
        cluster.Run(10_000);
        var a = cluster[1].Member;
        var b = cluster[2].Member;
        Assert.Equal(a.RootHash(), b.RootHash());
        var request = new GossipMessage(GossipMessageKind.PushPullDigest) { RootHash = a.RootHash() };
        var outbox = new List<OutboundMessage>();
        b.Receive(1, request, cluster.NowMs, outbox);
        Assert.Empty(outbox);
        Assert.Equal(GossipCodec.HeaderBytes + 8, GossipCodec.SizeOf(request));
    }

    [Fact]
    public void Digest_exchange_sends_only_what_the_other_side_lacks()
    {
        var cluster = TestCluster.Converged(30, seed: 22, new GossipOptions { PushPullIntervalMs = 0 });
        cluster.Run(10_000);
        var a = cluster[1].Member;
        var b = cluster[2].Member;
        b.UpdateTags(new MemberTags("new", "x", "y", 0), cluster.NowMs); // b is now newer about itself only
        var outbox = new List<OutboundMessage>();
        b.Receive(1, new GossipMessage(GossipMessageKind.PushPullDigest) { RootHash = a.RootHash() }, cluster.NowMs, outbox);
        var digest = Assert.Single(outbox).Message;
        Assert.Equal(30, digest.Digest.Count);
        outbox.Clear();
        a.Receive(2, digest, cluster.NowMs, outbox);
        var delta = Assert.Single(outbox).Message;
        Assert.Empty(delta.States);
        Assert.Equal([2UL], delta.Wants);
        outbox.Clear();
        b.Receive(1, delta, cluster.NowMs, outbox);
        var answer = Assert.Single(outbox).Message;
        Assert.Equal(2UL, Assert.Single(answer.States).Member);
        a.Receive(2, answer, cluster.NowMs, []);
        Assert.Equal(a.RootHash(), b.RootHash());
    }

    [Fact]
    public void A_dead_claim_learnt_by_anti_entropy_only_makes_the_receiver_suspect()
    {
        var cluster = TestCluster.Converged(5, seed: 23, new GossipOptions { PushPullIntervalMs = 0 });
        var a = cluster[1].Member;
        var full = new GossipMessage(GossipMessageKind.PushPullFull) { IsReply = true };
        full.States.Add(new MemberUpdate(3, MemberStatus.Dead, 0, 2));
        a.Receive(2, full, cluster.NowMs, []);
        Assert.Equal(MemberStatus.Suspect, a.Find(3, cluster.NowMs)!.Value.Status);
    }
}
