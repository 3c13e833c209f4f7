using FsCheck;
using FsCheck.Fluent;

namespace Keel.Idempotency.Tests;

/// <summary>One step of a generated workload against the table.</summary>
public abstract record Op;

/// <summary>Claim key #Key with request #Payload.</summary>
public sealed record ClaimOp(int Key, int Payload) : Op;

/// <summary>Complete key #Key for request #Payload with a body of BodyLength bytes.</summary>
public sealed record CompleteOp(int Key, int Payload, int Status, int BodyLength) : Op;

/// <summary>Release key #Key for request #Payload.</summary>
public sealed record ReleaseOp(int Key, int Payload) : Op;

/// <summary>Let committed time pass.</summary>
public sealed record AdvanceOp(long DeltaMs) : Op;

/// <summary>Run ExpireDue with a limit.</summary>
public sealed record ExpireOp(int Max) : Op;

/// <summary>Replace the table with Restore(Snapshot()).</summary>
public sealed record SnapshotRestoreOp : Op;

/// <summary>A workload: table options and a sequence of operations.</summary>
public sealed record Workload(IdempotencyOptions Options, Op[] Ops)
{
    /// <inheritdoc />
    public override string ToString() => $"{Options} ops=[{string.Join(", ", Ops.Select(o => o.ToString()))}]";
}

/// <summary>FsCheck generators for workloads.</summary>
internal static class Generators
{
    /// <summary>Keys chosen so ordinal order differs from case-insensitive and numeric order, and ties on expiry are common.</summary>
    public static readonly string[] Keys = ["a", "B", "b", "k-1", "k-10", "k-2", "~", " x", "Z9"];

    private static Gen<Op> OpGen(long maxAdvanceMs) => Gen.Frequency<Op>(
        (6, from k in Gen.Choose(0, Keys.Length - 1) from p in Gen.Frequency((3, Gen.Constant(0)), (1, Gen.Constant(1))) select (Op)new ClaimOp(k, p)),
        (4, from k in Gen.Choose(0, Keys.Length - 1) from p in Gen.Frequency((5, Gen.Constant(0)), (1, Gen.Constant(1)))
            from s in Gen.Choose(0, 16) from len in Gen.Choose(0, 14) select (Op)new CompleteOp(k, p, s, len)),
        (1, from k in Gen.Choose(0, Keys.Length - 1) from p in Gen.Frequency((5, Gen.Constant(0)), (1, Gen.Constant(1)))
            select (Op)new ReleaseOp(k, p)),
        (4, from d in Gen.Frequency((3, Gen.Choose(0, 50)), (1, Gen.Choose(0, (int)maxAdvanceMs))) select (Op)new AdvanceOp(d)),
        (1, from m in Gen.Choose(0, 3) select (Op)new ExpireOp(m)),
        (1, Gen.Constant((Op)new SnapshotRestoreOp())));

    private static Gen<IdempotencyOptions> OptionsGen =>
        from completed in Gen.Choose(1, 1_000)
        from inFlight in Gen.Choose(1, 400)
        from maxEntries in Gen.Choose(1, 7)
        from total in Gen.Choose(1, 40)
        from perEntry in Gen.Choose(0, 16)
        from sweep in Gen.Choose(0, 3)
        select new IdempotencyOptions
        {
            CompletedWindowMs = completed,
            InFlightWindowMs = inFlight,
            MaxEntries = maxEntries,
            MaxTotalResponseBytes = total,
            MaxResponseBytesPerEntry = Math.Min(perEntry, total),
            SweepLimitPerOperation = sweep,
        };

    /// <summary>Small tables, short windows and long jumps in time: expiry, eviction and table-full all happen often.</summary>
    public static Arbitrary<Workload> Workloads() => Arb.From(
        from options in OptionsGen
        from length in Gen.Choose(1, 200)
        from ops in Gen.ArrayOf(OpGen(1_200), length)
        select new Workload(options, ops),
        Shrink);

    private static IEnumerable<Workload> Shrink(Workload workload)
    {
        for (var i = 0; i < workload.Ops.Length; i++)
            yield return workload with { Ops = workload.Ops.Where((_, j) => j != i).ToArray() };
    }
}
