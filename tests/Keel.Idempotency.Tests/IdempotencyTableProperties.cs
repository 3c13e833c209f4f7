using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using static Keel.Idempotency.Tests.TestData;

namespace Keel.Idempotency.Tests;

public class IdempotencyTableProperties
{
    private static byte[] BodyFor(int opIndex, int length) => Enumerable.Range(0, length).Select(i => (byte)(opIndex * 31 + i)).ToArray();

    /// <summary>
    /// The table answers every operation exactly as the naive reference model does, across expiry, eviction, table-full,
    /// releases and snapshot/restore; and after every step the bounds hold and the structural invariants pass. This
    /// covers: nothing expires before its window, in-flight claims expire, bounded size is never exceeded, in-flight
    /// claims are never evicted, and a restored table behaves identically.
    /// </summary>
    [Property(MaxTest = 300, Replay = FixedSeed)]
    public Property Table_matches_the_reference_model_and_stays_within_bounds() =>
        Prop.ForAll(Generators.Workloads(), workload =>
        {
            var options = workload.Options;
            var table = new IdempotencyTable(options);
            var model = new ModelTable(options);
            long nowMs = 0;
            for (var i = 0; i < workload.Ops.Length; i++)
            {
                switch (workload.Ops[i])
                {
                    case ClaimOp(var k, var p):
                    {
                        var key = Generators.Keys[k];
                        var expected = model.Claim(key, p, nowMs);
                        var actual = table.Claim(key, Fp(p), nowMs);
                        Assert.Equal((expected.Outcome, expected.ExpiresAtMs), (actual.Outcome, actual.ExpiresAtMs));
                        if (actual.Outcome == ClaimOutcome.Completed)
                        {
                            Assert.Equal(expected.Status, actual.Response.StatusCode);
                            Assert.Equal(expected.Body, actual.Response.Body.ToArray());
                        }
                        break;
                    }
                    case CompleteOp(var k, var p, var status, var length):
                    {
                        var key = Generators.Keys[k];
                        var body = BodyFor(i, length);
                        var expected = model.Complete(key, p, status, body, nowMs);
                        var actual = table.Complete(key, Fp(p), status, body, nowMs);
                        Assert.Equal((expected.Outcome, expected.ExpiresAtMs), (actual.Outcome, actual.ExpiresAtMs));
                        if (actual.Outcome is CompleteOutcome.Completed or CompleteOutcome.AlreadyCompleted)
                        {
                            Assert.Equal(expected.Status, actual.StoredResponse.StatusCode);
                            Assert.Equal(expected.Body, actual.StoredResponse.Body.ToArray());
                        }
                        break;
                    }
                    case ReleaseOp(var k, var p):
                        Assert.Equal(model.Release(Generators.Keys[k], p, nowMs), table.Release(Generators.Keys[k], Fp(p), nowMs));
                        break;
                    case AdvanceOp(var delta):
                        nowMs += delta;
                        break;
                    case ExpireOp(var max):
                        Assert.InRange(table.ExpireDue(nowMs, max), 0, max);
                        break;
                    case SnapshotRestoreOp:
                        var snapshot = table.Snapshot();
                        table = IdempotencyTable.Restore(snapshot);
                        Assert.Equal(snapshot, table.Snapshot());
                        break;
                }
                table.AssertInvariants();
                model.Purge(nowMs);
                Assert.InRange(table.Count, model.LiveCount, options.MaxEntries);
                Assert.InRange(table.ResponseBytes, model.LiveBytes, options.MaxTotalResponseBytes);
                model.AssertCountersMatch(table.Counters);
            }
        });

    /// <summary>Replicas fed the same log reach byte-identical states: nothing depends on anything but the input.</summary>
    [Property(MaxTest = 100, Replay = FixedSeed)]
    public Property Two_tables_fed_the_same_operations_have_identical_snapshots() =>
        Prop.ForAll(Generators.Workloads(), workload =>
        {
            var first = Run(workload);
            var second = Run(workload);
            Assert.Equal(first, second);
        });

    /// <summary>A table restored mid-run and the original go on to answer identically and end in the same state.</summary>
    [Property(MaxTest = 100, Replay = FixedSeed)]
    public Property A_restored_table_behaves_identically_to_the_original() =>
        Prop.ForAll(Generators.Workloads(), Generators.Workloads(), (prefix, suffix) =>
        {
            var original = new IdempotencyTable(prefix.Options);
            var nowMs = Apply(original, prefix.Ops, 0, _ => { });
            var restored = IdempotencyTable.Restore(original.Snapshot());
            var originalLog = new List<string>();
            var restoredLog = new List<string>();
            Apply(original, suffix.Ops, nowMs, originalLog.Add);
            Apply(restored, suffix.Ops, nowMs, restoredLog.Add);
            Assert.Equal(originalLog, restoredLog);
            Assert.Equal(original.Snapshot(), restored.Snapshot());
            Assert.Equal(original.Counters, restored.Counters);
        });

    /// <summary>An entry is replayed for all of its window and never after; an in-flight claim blocks for all of its window and never after.</summary>
    [Property(MaxTest = 500, Replay = FixedSeed)]
    public Property Entries_live_exactly_their_windows()
    {
        // Probes land near the window's end half the time, where off-by-one errors live.
        var offsetFromWindowEnd = Gen.Frequency((1, Gen.Choose(-2, 2)), (1, Gen.Choose(-30_000, 30_000)));
        return Prop.ForAll(
            Arb.From(from completedWindow in Gen.Choose(1, 10_000)
                     from inFlightWindow in Gen.Choose(1, 10_000)
                     from claimAt in Gen.Choose(0, 1_000_000)
                     from inFlightProbe in offsetFromWindowEnd
                     from completedProbe in offsetFromWindowEnd
                     from completeAfter in Gen.Choose(0, 10_000)
                     from sweep in Gen.Choose(0, 2)
                     select (completedWindow, inFlightWindow, claimAt, inFlightProbe, completedProbe, completeAfter, sweep)),
            sample =>
            {
                var (completedWindow, inFlightWindow, claimAt, inFlightProbe, completedProbe, completeAfter, sweep) = sample;
                var options = new IdempotencyOptions
                {
                    CompletedWindowMs = completedWindow, InFlightWindowMs = inFlightWindow, SweepLimitPerOperation = sweep,
                };

                var inFlight = new IdempotencyTable(options);
                inFlight.Claim("k", Fp(1), claimAt);
                var probeAt = Math.Max(0, inFlightWindow + inFlightProbe);
                var probe = inFlight.Claim("k", Fp(1), claimAt + probeAt).Outcome;
                Assert.Equal(probeAt < inFlightWindow ? ClaimOutcome.InFlight : ClaimOutcome.New, probe);

                var completed = new IdempotencyTable(options);
                completed.Claim("k", Fp(1), claimAt);
                var completeAt = claimAt + Math.Min(completeAfter, inFlightWindow - 1);
                Assert.Equal(CompleteOutcome.Completed, completed.Complete("k", Fp(1), 0, Body("r"), completeAt).Outcome);
                var replayAt = Math.Max(0, completedWindow + completedProbe);
                var replay = completed.Claim("k", Fp(1), completeAt + replayAt).Outcome;
                Assert.Equal(replayAt < completedWindow ? ClaimOutcome.Completed : ClaimOutcome.New, replay);
            });
    }

    /// <summary>Any damage to a snapshot (a changed byte, a cut) is refused with the typed error, never another exception.</summary>
    [Property(MaxTest = 200, Replay = FixedSeed)]
    public Property Damaged_snapshots_are_refused_with_a_typed_error() =>
        Prop.ForAll(Generators.Workloads(), Arb.From(Gen.Choose(0, int.MaxValue)), Arb.From(Gen.Choose(1, 255)), (workload, position, flip) =>
        {
            var table = new IdempotencyTable(workload.Options);
            Apply(table, workload.Ops, 0, _ => { });
            var snapshot = table.Snapshot();

            var flipped = snapshot.ToArray();
            flipped[position % flipped.Length] ^= (byte)flip;
            Assert.Throws<IdempotencySnapshotException>(() => IdempotencyTable.Restore(flipped));

            var cut = position % snapshot.Length;
            Assert.Throws<IdempotencySnapshotException>(() => IdempotencyTable.Restore(snapshot.AsSpan(0, cut)));
        });

    private static string Run(Workload workload)
    {
        var table = new IdempotencyTable(workload.Options);
        var log = new List<string>();
        Apply(table, workload.Ops, 0, log.Add);
        return string.Join("|", log) + Convert.ToHexString(table.Snapshot());
    }

    /// <summary>Applies operations (snapshot/restore steps are skipped: the table object must stay the same) and returns the final time.</summary>
    private static long Apply(IdempotencyTable table, Op[] ops, long nowMs, Action<string> record)
    {
        for (var i = 0; i < ops.Length; i++)
        {
            switch (ops[i])
            {
                case ClaimOp(var k, var p):
                    var claim = table.Claim(Generators.Keys[k], Fp(p), nowMs);
                    record($"claim {claim} {(claim.Outcome == ClaimOutcome.Completed ? Convert.ToHexString(claim.Response.Body.Span) : "")}");
                    break;
                case CompleteOp(var k, var p, var status, var length):
                    record($"complete {table.Complete(Generators.Keys[k], Fp(p), status, BodyFor(i, length), nowMs)}");
                    break;
                case ReleaseOp(var k, var p):
                    record($"release {table.Release(Generators.Keys[k], Fp(p), nowMs)}");
                    break;
                case AdvanceOp(var delta):
                    nowMs += delta;
                    break;
                case ExpireOp(var max):
                    record($"expire {table.ExpireDue(nowMs, max)}");
                    break;
            }
        }
        return nowMs;
    }
}
