using FsCheck;
using FsCheck.Fluent;

namespace Keel.HybridClock.Tests;

/// <summary>FsCheck generators shared by the property tests.</summary>
internal static class Generators
{
    /// <summary>Roughly 2026-01-01 in Unix milliseconds: a realistic base for wall clocks.</summary>
    public const long BaseWallMs = 1_767_225_600_000;

    private static Gen<long> Long(long min, long max) =>
        from hi in Gen.Choose(0, int.MaxValue)
        from lo in Gen.Choose(0, int.MaxValue)
        select min + (long)((((ulong)hi << 31) | (uint)lo) % (ulong)(max - min + 1));

    /// <summary>Any physical time in the 48-bit range, biased towards the edges and today's dates.</summary>
    public static Gen<long> PhysicalMs { get; } = Gen.Frequency(
        (6, Long(0, HybridTimestamp.MaxPhysicalMs)),
        (3, Long(BaseWallMs - 100_000_000_000, BaseWallMs + 100_000_000_000)),
        (1, Gen.Elements(0L, 1L, 253_402_300_799_999L, 253_402_300_800_000L, HybridTimestamp.MaxPhysicalMs - 1, HybridTimestamp.MaxPhysicalMs)));

    /// <summary>Any logical counter, biased towards 0 and saturation.</summary>
    public static Gen<int> Logical { get; } = Gen.Frequency(
        (6, Gen.Choose(0, HybridTimestamp.MaxLogical)),
        (2, Gen.Choose(0, 10)),
        (2, Gen.Elements(0, HybridTimestamp.MaxLogical - 1, HybridTimestamp.MaxLogical)));

    /// <summary>Any timestamp.</summary>
    public static Gen<HybridTimestamp> Timestamp { get; } =
        from p in PhysicalMs
        from l in Logical
        select new HybridTimestamp(p, l);
}
