using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Keel.Gossip;

namespace Keel.Gossip.Tests;

public sealed class RulesTests
{
    private static readonly Gen<(long Incarnation, MemberStatus Status)> Claim =
        from inc in Gen.Choose(0, 20)
        from status in Gen.Choose(0, 3)
        select ((long)inc, (MemberStatus)status);

    [Property(MaxTest = 500)]
    public Property Supersedes_is_a_strict_total_order_matching_the_version() =>
        Prop.ForAll(Arb.From(Claim), Arb.From(Claim), Arb.From(Claim), (a, b, c) =>
        {
            bool S((long I, MemberStatus S) x, (long I, MemberStatus S) y) => IncarnationRules.Supersedes(x.I, x.S, y.I, y.S);
            long V((long I, MemberStatus S) x) => IncarnationRules.Version(x.I, x.S);
            var irreflexive = !S(a, a);
            var asymmetric = !(S(a, b) && S(b, a));
            var total = a == b || S(a, b) || S(b, a);
            var transitive = !(S(a, b) && S(b, c)) || S(a, c);
            var versionAgrees = S(a, b) == (V(a) > V(b));
            return irreflexive && asymmetric && total && transitive && versionAgrees;
        });

    [Property(MaxTest = 200)]
    public Property Only_a_higher_incarnation_refutes_an_accusation() =>
        Prop.ForAll(Arb.From(Gen.Choose(0, 1000)), Arb.From(Gen.Choose(1, 3)), (inc, accusation) =>
            !IncarnationRules.Supersedes(inc, MemberStatus.Alive, inc, (MemberStatus)accusation)
            && IncarnationRules.Supersedes(inc + 1, MemberStatus.Alive, inc, (MemberStatus)accusation)
            && IncarnationRules.Supersedes(inc, (MemberStatus)accusation, inc, MemberStatus.Alive));

    [Fact]
    public void Suspicion_timeout_shrinks_from_max_to_min_with_independent_confirmations()
    {
        var s = new Suspicion(suspector: 1, startMs: 1000, minTimeoutMs: 4000, maxTimeoutMs: 24000, confirmationsForMin: 2);
        Assert.Equal(24000, s.TimeoutMs);
        Assert.False(s.Confirm(1)); // the suspector does not confirm itself
        Assert.True(s.Confirm(2));
        var afterOne = s.TimeoutMs;
        Assert.Equal((long)Math.Floor(24000 - Math.Log(2) / Math.Log(3) * 20000), afterOne);
        Assert.False(s.Confirm(2)); // a repeat is not independent
        Assert.Equal(afterOne, s.TimeoutMs);
        Assert.True(s.Confirm(3));
        Assert.Equal(4000, s.TimeoutMs);
        Assert.Equal(5000, s.DeadlineMs);
        Assert.False(s.Confirm(4)); // already at the minimum
    }

    [Property(MaxTest = 200)]
    public Property Suspicion_timeout_is_monotone_and_bounded() =>
        Prop.ForAll(Arb.From(Gen.Choose(0, 10)), Arb.From(Gen.Choose(1, 5)), Arb.From(Gen.Choose(100, 100_000)), (c, k, min) =>
        {
            var max = min * 6L;
            var t = Suspicion.TimeoutFor(c, k, min, max);
            var next = Suspicion.TimeoutFor(c + 1, k, min, max);
            return t >= min && t <= max && next <= t && (c < k || t == min);
        });

    [Fact]
    public void Retransmit_limit_scales_with_log_n()
    {
        Assert.Equal(4, BroadcastQueue.RetransmitLimit(4, 5));
        Assert.Equal(12, BroadcastQueue.RetransmitLimit(4, 100));
        Assert.Equal(16, BroadcastQueue.RetransmitLimit(4, 1000));
        Assert.Equal(20, BroadcastQueue.RetransmitLimit(4, 10_000));
    }

    [Fact]
    public void Broadcast_queue_keeps_one_update_per_member_and_retires_after_the_limit()
    {
        var q = new BroadcastQueue();
        q.Enqueue(new MemberUpdate(1, MemberStatus.Suspect, 0, 2));
        q.Enqueue(new MemberUpdate(1, MemberStatus.Alive, 1, 1)); // the refutation replaces the rumour
        Assert.Equal(1, q.Count);
        var taken = new List<MemberUpdate>();
        for (var i = 0; i < 3; i++) q.Take(1000, transmitLimit: 3, taken);
        Assert.Equal(3, taken.Count);
        Assert.All(taken, u => Assert.Equal(MemberStatus.Alive, u.Status));
        Assert.Equal(0, q.Count);
        q.AssertInvariants();
    }

    [Fact]
    public void Broadcast_queue_respects_the_byte_budget()
    {
        var q = new BroadcastQueue();
        for (ulong i = 1; i <= 100; i++) q.Enqueue(new MemberUpdate(i, MemberStatus.Alive, 0, i));
        var taken = new List<MemberUpdate>();
        var used = q.Take(10 * GossipCodec.UpdateFixedBytes + 3, 10, taken);
        Assert.Equal(10, taken.Count);
        Assert.Equal(10 * GossipCodec.UpdateFixedBytes, used);
    }
}
