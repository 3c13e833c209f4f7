using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Keel.HybridClock.Tests;

/// <summary>The laws of the hybrid logical clock, checked over generated histories.</summary>
public sealed class HybridClockProperties
{
    private static Gen<Op> OpGen(int nodes)
    {
        var node = Gen.Choose(0, nodes - 1);
        return Gen.Frequency(
            (3, node.Select(a => new Op(OpKind.Local, a, 0, 0))),
            (5, from a in node from skip in Gen.Choose(1, nodes - 1) select new Op(OpKind.Send, a, (a + skip) % nodes, 0)),
            (6, Gen.Choose(0, 1000).Select(i => new Op(OpKind.Deliver, 0, 0, i))),
            (4, Gen.Frequency((9, Gen.Choose(0, 20)), (1, Gen.Choose(100, 3000))).Select(ms => new Op(OpKind.Advance, 0, 0, ms))),
            (1, from a in node from ms in Gen.Frequency((3, Gen.Choose(1, 50)), (2, Gen.Choose(500, 5000))) select new Op(OpKind.StepBack, a, 0, ms)),
            (1, from a in node from ms in Gen.Choose(1, 400) select new Op(OpKind.StepForward, a, 0, ms)),
            (1, node.Select(a => new Op(OpKind.Restart, a, 0, 0))),
            (1, from a in node from count in Gen.Frequency((6, Gen.Choose(2, 300)), (1, Gen.Choose(65_000, 70_000)))
                select new Op(OpKind.Burst, a, 0, count)));
    }

    private static readonly Gen<NodeWall> WallGen =
        from offset in Gen.Frequency((4, Gen.Choose(-200, 200)), (1, Gen.Choose(-1500, 1500)))
        from drift in Gen.Frequency((3, Gen.Choose(-1, 1)), (2, Gen.Choose(-100, 100)))
        select new NodeWall(offset, drift);

    internal static readonly Gen<Scenario> ScenarioGen =
        from nodes in Gen.Choose(2, 5)
        from walls in Gen.ArrayOf(WallGen, nodes)
        from length in Gen.Choose(0, 200)
        from ops in Gen.ArrayOf(OpGen(nodes), length)
        select new Scenario(walls, ops);

    private static IEnumerable<Scenario> Shrink(Scenario scenario)
    {
        var ops = scenario.Ops;
        for (var chunk = ops.Length / 2; chunk >= 1; chunk /= 2)
            for (var start = 0; start + chunk <= ops.Length; start += chunk)
                yield return scenario with { Ops = [.. ops[..start], .. ops[(start + chunk)..]] };
        for (var i = 0; i < ops.Length; i++)
            if (ops[i].Kind is OpKind.Burst or OpKind.Advance or OpKind.StepBack && ops[i].Amount > 1)
                yield return scenario with { Ops = [.. ops[..i], ops[i] with { Amount = ops[i].Amount / 2 }, .. ops[(i + 1)..]] };
    }

    /// <summary>
    /// (a) happens-before is respected, (b) each node's timestamps strictly increase, (c) also across restarts from the
    /// persisted bound, (d) the physical part stays within max offset of the highest wall time the node has seen
    /// (plus one ms per logical overflow), for 2-5 nodes with offset and drifting wall clocks that step backwards.
    /// </summary>
    [Property(Replay = "(4242,7777)", MaxTest = 150)]
    public Property Cluster_histories_respect_the_hlc_laws() =>
        Prop.ForAll(Arb.From(ScenarioGen, Shrink), scenario =>
        {
            ClusterSimulation.Run(scenario);
            return true;
        });

    [Fact]
    public void The_cluster_generator_reaches_rejections_overflows_restarts_and_backward_steps()
    {
        // Guards the property above against a generator that quietly stops producing the hard cases.
        var samples = Gen.Sample(ScenarioGen, 100, new Rnd(4242, 7777), 150);
        var reports = samples.Select(ClusterSimulation.Run).ToArray();
        Assert.Contains(reports, r => r.Rejections > 0);
        Assert.Contains(reports, r => r.Overflows > 0);
        Assert.Contains(reports, r => r.Restarts > 0 && r.Deliveries > 0);
        Assert.Contains(reports, r => r.BackwardJumps > 0);
        Assert.True(reports.Sum(r => r.Deliveries) > 1000);
    }

    private readonly record struct Step(int WallDeltaMs, bool Receive, long RemoteAheadMs, int RemoteLogical);

    private static readonly Gen<Step> StepGen =
        from delta in Gen.Frequency((6, Gen.Choose(0, 5)), (2, Gen.Choose(-3000, -1)), (1, Gen.Choose(6, 2000)))
        from receive in Gen.Elements(false, true)
        from ahead in Gen.Frequency((6, Gen.Choose(-1000, 500)), (2, Gen.Choose(490, 510)), (1, Gen.Choose(500, 100_000)))
        from logical in Generators.Logical
        select new Step(delta, receive, ahead, logical);

    [Property(Replay = "(1200,2201)", MaxTest = 300)]
    public Property One_clock_is_strictly_monotonic_and_rejects_exactly_the_remotes_too_far_ahead() =>
        Prop.ForAll(Arb.From(Gen.ArrayOf(StepGen)), steps =>
        {
            var clock = new HybridLogicalClock(new HybridClockOptions { MaxOffsetMs = 500, PersistUpperBound = false });
            var wall = Generators.BaseWallMs;
            var previous = HybridTimestamp.MinValue;
            long expectedRejections = 0;
            foreach (var step in steps)
            {
                wall += step.WallDeltaMs;
                HybridTimestamp ts;
                if (step.Receive)
                {
                    var remote = new HybridTimestamp(wall + step.RemoteAheadMs, step.RemoteLogical);
                    if (!clock.TryUpdate(remote, wall, out ts))
                    {
                        Assert.True(step.RemoteAheadMs > 500, $"rejected a remote only {step.RemoteAheadMs} ms ahead");
                        expectedRejections++;
                        continue;
                    }
                    Assert.True(step.RemoteAheadMs <= 500, $"accepted a remote {step.RemoteAheadMs} ms ahead");
                    Assert.True(ts > remote, $"{ts} is not after remote {remote}");
                }
                else
                {
                    ts = clock.Now(wall);
                }
                Assert.True(ts > previous, $"{ts} is not after {previous}");
                Assert.True(ts.PhysicalMs >= wall, "a timestamp is never behind the wall clock");
                clock.AssertInvariants();
                previous = ts;
            }
            return clock.RejectedRemoteCount == expectedRejections;
        });

    [Property(Replay = "(1201,2203)", MaxTest = 200)]
    public Property Restore_from_any_persisted_bound_issues_above_it_whatever_the_wall() =>
        Prop.ForAll(Arb.From(Generators.PhysicalMs.Where(p => p < HybridTimestamp.MaxPhysicalMs)),
            Arb.From(Generators.PhysicalMs), (bound, wall) =>
            {
                var clock = HybridLogicalClock.Restore(null, bound);
                var first = clock.Now(wall);
                var second = clock.Now(wall);
                clock.AssertInvariants();
                return first > new HybridTimestamp(bound, HybridTimestamp.MaxLogical) && second > first
                    && first.PhysicalMs == Math.Max(wall, bound + 1)
                    && clock.RestoreWaitMs(wall) == Math.Max(0, bound + 1 - wall);
            });
}
