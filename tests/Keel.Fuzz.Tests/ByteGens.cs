using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;

namespace Keel.Fuzz.Tests;

/// <summary>The kinds of damage <see cref="ByteGens.Mutated"/> applies to a valid encoding.</summary>
public enum MutationKind { FlipBits, OverwriteBytes, Truncate, Insert, Delete, Int32Extreme, Int64Extreme, Append, Splice, ZeroRange }

/// <summary>One mutation; positions are drawn unbounded and taken modulo the length when applied.</summary>
public sealed record Mutation(MutationKind Kind, int Position, int Amount, long Extreme, byte[] Garbage);

/// <summary>
/// Byte-level FsCheck generators: (a) random bytes of random length (0 to 4 KiB, biased short), (b) valid encodings
/// with stacked mutations (bit flips, overwrites, truncation, insertion, deletion, count/length fields replaced by
/// extreme values such as 0x7FFFFFFF, 0xFFFFFFFF and 0x80000000, splices of the input into itself), and a mix of both.
/// </summary>
public static class ByteGens
{
    private static readonly long[] Int32Extremes =
        [0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0x40000000, 0x10000000, 0x00010000, 0xFFFF, 0xFF, 0, 1, 2, 0xFFFFFFFE, 0x7FFFFFFE, 0x20];

    private static readonly long[] Int64Extremes =
        [long.MaxValue, -1, long.MinValue, 0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0x100000000, long.MaxValue - 1];

    /// <summary>
    /// Bytes of a drawn length, filled from a drawn seed: one draw per array instead of one per byte keeps 4 KiB inputs
    /// cheap, and the case seed still determines every byte.
    /// </summary>
    private static Gen<byte[]> BytesOfLength(Gen<int> length) =>
        from n in length
        from seed in Gen.Choose(int.MinValue, int.MaxValue)
        from style in Gen.Frequency((6, Gen.Constant(0)), (1, Gen.Constant(1)), (1, Gen.Constant(2)))
        select Fill(n, seed, style);

    private static byte[] Fill(int length, int seed, int style)
    {
        var bytes = new byte[length];
        var random = new Random(seed);
        switch (style)
        {
            case 0: random.NextBytes(bytes); break;
            case 1: for (var i = 0; i < length; i++) bytes[i] = random.Next(4) == 0 ? (byte)random.Next(256) : (byte)0; break; // mostly zeros
            default: for (var i = 0; i < length; i++) bytes[i] = random.Next(4) == 0 ? (byte)random.Next(256) : (byte)0xFF; break; // mostly 0xFF
        }
        return bytes;
    }

    /// <summary>Random bytes, 0 to 4096 long; half of them at most 64 bytes, where headers and counts live.</summary>
    public static Gen<byte[]> RandomBytes { get; } = Gen.Frequency(
        (5, BytesOfLength(Gen.Choose(0, 64))),
        (3, BytesOfLength(Gen.Choose(0, 512))),
        (2, BytesOfLength(Gen.Choose(0, 4096))));

    /// <summary>Random bytes that start with <paramref name="prefix"/> (a magic and version), so decoders get past their first check.</summary>
    public static Gen<byte[]> RandomAfter(byte[] prefix) => RandomBytes.Select(b => (byte[])[.. prefix, .. b]);

    private static Gen<Mutation> MutationGen { get; } =
        from kind in Gen.Elements(Enum.GetValues<MutationKind>())
        from position in Gen.Choose(0, int.MaxValue)
        from amount in Gen.Choose(1, 64)
        from extreme in Gen.Elements(Int32Extremes.Concat(Int64Extremes).ToArray())
        from garbage in BytesOfLength(Gen.Choose(1, 64))
        select new Mutation(kind, position, amount, extreme, garbage);

    /// <summary>Valid encodings from <paramref name="valid"/>, each damaged by one to four mutations.</summary>
    public static Gen<byte[]> Mutated(Gen<byte[]> valid) =>
        from seed in valid
        from count in Gen.Frequency((6, Gen.Constant(1)), (3, Gen.Choose(2, 4)))
        from mutations in Gen.ArrayOf(MutationGen, count)
        select Apply(seed, mutations);

    /// <summary>Mutated encodings, some passed through <paramref name="fixup"/> (e.g. recomputing a checksum or re-signing) so the decoder behind the integrity check is reached.</summary>
    public static Gen<byte[]> Mutated(Gen<byte[]> valid, Func<byte[], byte[]> fixup) =>
        from damaged in Mutated(valid)
        from fix in Gen.Frequency((3, Gen.Constant(true)), (1, Gen.Constant(false)))
        select fix ? fixup(damaged) : damaged;

    /// <summary>The usual mix for a decoder: random bytes, random bytes behind a valid prefix, and mutated valid encodings.</summary>
    public static Gen<byte[]> Mix(Gen<byte[]> valid, byte[] prefix, Func<byte[], byte[]>? fixup = null) => Gen.Frequency(
        (2, RandomBytes),
        (1, RandomAfter(prefix)),
        (6, fixup is null ? Mutated(valid) : Mutated(valid, fixup)),
        (1, valid));

    public static byte[] Apply(byte[] input, IEnumerable<Mutation> mutations)
    {
        var bytes = input;
        foreach (var m in mutations) bytes = Apply(bytes, m);
        return bytes;
    }

    public static byte[] Apply(byte[] bytes, Mutation m)
    {
        var n = bytes.Length;
        var at = n == 0 ? 0 : m.Position % n;
        var copy = (byte[])bytes.Clone();
        switch (m.Kind)
        {
            case MutationKind.FlipBits when n > 0:
                for (var i = 0; i < 1 + m.Amount % 8; i++)
                {
                    var bit = (m.Position / (i + 1) + i * 7919) % (n * 8);
                    copy[bit / 8] ^= (byte)(1 << (bit % 8));
                }
                return copy;
            case MutationKind.OverwriteBytes when n > 0:
                for (var i = 0; i < Math.Min(m.Garbage.Length, m.Amount % 16 + 1) && at + i < n; i++) copy[at + i] = m.Garbage[i];
                return copy;
            case MutationKind.Truncate:
                return bytes[..at];
            case MutationKind.Insert:
                return [.. bytes.AsSpan(0, at), .. m.Garbage, .. bytes.AsSpan(at)];
            case MutationKind.Delete when n > 0:
                return [.. bytes.AsSpan(0, at), .. bytes.AsSpan(Math.Min(n, at + m.Amount))];
            case MutationKind.Int32Extreme when n >= 4:
                at = Math.Min(at, n - 4);
                BinaryPrimitives.WriteUInt32LittleEndian(copy.AsSpan(at), (uint)m.Extreme);
                return copy;
            case MutationKind.Int64Extreme when n >= 8:
                at = Math.Min(at, n - 8);
                BinaryPrimitives.WriteInt64LittleEndian(copy.AsSpan(at), m.Extreme);
                return copy;
            case MutationKind.Append:
                return [.. bytes, .. m.Garbage];
            case MutationKind.Splice when n > 0:
            {
                var from = (m.Position / 3) % n;
                var length = Math.Min(m.Amount, n - from);
                return [.. bytes.AsSpan(0, at), .. bytes.AsSpan(from, length), .. bytes.AsSpan(at)];
            }
            case MutationKind.ZeroRange when n > 0:
                copy.AsSpan(at, Math.Min(m.Amount, n - at)).Clear();
                return copy;
            default:
                return copy;
        }
    }

    /// <summary>A sequence of ulongs from a small pool (so sets overlap and repeat, as ids do).</summary>
    public static Gen<ulong> SmallId { get; } = Gen.Choose(0, 9).Select(i => (ulong)i);

    public static Gen<ulong> AnyULong { get; } = ArbMap.Default.GeneratorFor<ulong>();

    public static Gen<long> AnyLong { get; } = ArbMap.Default.GeneratorFor<long>();

    /// <summary>Arrays of <paramref name="min"/> to <paramref name="max"/> elements.</summary>
    public static Gen<T[]> ArrayOf<T>(Gen<T> element, int min, int max) =>
        from n in Gen.Choose(min, max)
        from items in Gen.ArrayOf(element, n)
        select items;

    public static Gen<byte[]> ShortBytes(int max) => BytesOfLength(Gen.Choose(0, max));
}
