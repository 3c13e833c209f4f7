using Keel.Gossip;
using FsCheck.Xunit;

namespace Keel.Gossip.Tests;

public sealed class AntiEntropyTests
{
    [Theory]
    [InlineData(AntiEntropyMode.Digest)]
    [InlineData(AntiEntropyMode.FullState)]
    public void Anti_entropy_repairs_a_view_that_gossip_missed(AntiEntropyMode mode)
    {
        var options = new GossipOptions { AntiEntropy = mode, PushPullIntervalMs = 5_000, GossipIntervalMs = 1000, ProbeIntervalMs = 1000, ProbeTimeoutMs = 500 };
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
        var request = DigestRequest(a);
        var outbox = new List<OutboundMessage>();
        b.Receive(1, request, cluster.NowMs, outbox);
        Assert.Empty(outbox);
        Assert.Equal(1, b.Counters.PushPullsInSync);
        Assert.Equal(GossipCodec.HeaderBytes + 8 + 4 + 8 * SwimMember.BucketCountFor(30), GossipCodec.SizeOf(request));
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
        b.Receive(1, DigestRequest(a), cluster.NowMs, outbox);
        var digest = Assert.Single(outbox).Message;
        // Only the bucket holding member 2 differs, so only that bucket's digest travels, not the whole view's.
        var bucketCount = SwimMember.BucketCountFor(30);
        Assert.Equal(bucketCount, digest.BucketCount);
        Assert.Equal(SwimMember.BucketOf(2, bucketCount), Assert.Single(digest.Buckets));
        Assert.Contains(digest.Digest, d => d.Member == 2);
        Assert.True(digest.Digest.Count < 30, $"{digest.Digest.Count} digest entries");
        Assert.All(digest.Digest, d => Assert.Equal(SwimMember.BucketOf(2, bucketCount), SwimMember.BucketOf(d.Member, bucketCount)));
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

    private static GossipMessage DigestRequest(SwimMember from)
    {
        var request = new GossipMessage(GossipMessageKind.PushPullDigest) { RootHash = from.RootHash() };
        request.BucketHashes.AddRange(from.BucketHashes(SwimMember.BucketCountFor(from.KnownCount)));
        return request;
    }

    [Property(MaxTest = 40)]
    public bool Bucket_hashes_sum_to_the_root_hash_and_buckets_partition_ids(ulong[] ids, byte logBuckets)
    {
        var bucketCount = 1 << (logBuckets % 12);
        var member = new SwimMember(1, new GossipOptions(), new Keel.Core.DeterministicRandom(3), 0);
        member.Bootstrap(ids.Where(id => id > 1).Distinct().Select(id => (id, (long)(id % 7), (MemberTags?)null)), 0);
        ulong sum = 0;
        foreach (var h in member.BucketHashes(bucketCount)) sum = unchecked(sum + h);
        var root = member.RootHash();
        return (sum == 0 ? 1 : sum) == root && ids.All(id => SwimMember.BucketOf(id, bucketCount) is var b && b >= 0 && b < bucketCount);
    }

    [Fact]
    public void A_joiner_pulls_the_full_view_from_one_seed_as_join_traffic_not_anti_entropy()
    {
        var cluster = TestCluster.Converged(6, seed: 24, new GossipOptions { PushPullIntervalMs = 0 });
        var joiner = new SwimMember(7, new GossipOptions(), new Keel.Core.DeterministicRandom(9), cluster.NowMs);
        var outbox = new List<OutboundMessage>();
        joiner.Join(3, cluster.NowMs, outbox);
        var request = Assert.Single(outbox);
        Assert.Equal(3UL, request.To);
        Assert.True(request.Message.IsJoin && !request.Message.IsAntiEntropy);
        Assert.Equal(7UL, Assert.Single(request.Message.States).Member); // the joiner sends only itself
        outbox.Clear();
        cluster[3].Member.Receive(7, request.Message, cluster.NowMs, outbox);
        var reply = Assert.Single(outbox).Message;
        Assert.Equal(GossipMessageKind.JoinReply, reply.Kind);
        Assert.Equal(7, reply.States.Count); // the seed's whole view, the joiner included
        joiner.Receive(3, reply, cluster.NowMs, []);
        Assert.Equal(7, joiner.LiveCount);
        Assert.Equal(1, cluster[3].Member.Counters.JoinsServed);
        joiner.AssertInvariants();
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
