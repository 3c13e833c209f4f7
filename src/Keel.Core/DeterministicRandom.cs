using System.Diagnostics;

namespace Keel.Core;

/// <summary>
/// A small, fast, seedable pseudo-random generator (xoshiro256**, seeded through SplitMix64) whose sequence is fixed by
/// its seed on every platform and .NET version, unlike <see cref="System.Random"/>. Cores take one of these instead of
/// reaching for <c>Random.Shared</c>, so that a simulation seed replays exactly.
/// </summary>
/// <remarks>Not thread-safe and not cryptographic: one instance per component, derived with <see cref="Split(string)"/>.</remarks>
public sealed class DeterministicRandom
{
    private ulong _s0, _s1, _s2, _s3;

    /// <summary>The seed this generator was created from.</summary>
    public ulong Seed { get; }

    /// <summary>Creates a generator whose sequence is fixed by <paramref name="seed"/>.</summary>
    public DeterministicRandom(ulong seed)
    {
        Seed = seed;
        var sm = seed;
        _s0 = SplitMix64(ref sm);
        _s1 = SplitMix64(ref sm);
        _s2 = SplitMix64(ref sm);
        _s3 = SplitMix64(ref sm);
    }

    /// <summary>
    /// Derives an independent generator for a named component. The child seed depends only on this generator's seed
    /// and the name (never on how many numbers were drawn), so adding a component does not perturb the others.
    /// </summary>
    public DeterministicRandom Split(string component) => new(Mix(Seed, StableHash(component)));

    /// <summary>Derives an independent generator for a numbered component (a node id, say).</summary>
    public DeterministicRandom Split(string component, long index) =>
        new(Mix(Mix(Seed, StableHash(component)), unchecked((ulong)index)));

    /// <summary>The next 64 uniformly distributed bits.</summary>
    public ulong NextUInt64()
    {
        var result = RotateLeft(_s1 * 5, 7) * 9;
        var t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>A uniform integer in [0, <paramref name="maxExclusive"/>).</summary>
    public long NextInt64(long maxExclusive)
    {
        Debug.Assert(maxExclusive > 0);
        // Lemire's nearly-divisionless method would be faster; the modulo bias at 64 bits is negligible for simulation.
        return (long)(NextUInt64() % (ulong)maxExclusive);
    }

    /// <summary>A uniform integer in [<paramref name="minInclusive"/>, <paramref name="maxExclusive"/>).</summary>
    public long NextInt64(long minInclusive, long maxExclusive)
    {
        if (maxExclusive <= minInclusive) return minInclusive;
        return minInclusive + NextInt64(maxExclusive - minInclusive);
    }

    /// <summary>A uniform integer in [0, <paramref name="maxExclusive"/>).</summary>
    public int NextInt32(int maxExclusive) => (int)NextInt64(maxExclusive);

    /// <summary>A uniform double in [0, 1).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>True with probability <paramref name="probability"/>.</summary>
    public bool Chance(double probability) => probability > 0 && NextDouble() < probability;

    /// <summary>An exponentially distributed value with the given mean.</summary>
    public double NextExponential(double mean) => -mean * Math.Log(1.0 - NextDouble());

    /// <summary>Fisher–Yates shuffle in place.</summary>
    public void Shuffle<T>(Span<T> items)
    {
        for (var i = items.Length - 1; i > 0; i--)
        {
            var j = NextInt32(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    /// <summary>
    /// A hash of a string that is the same in every process (unlike <see cref="string.GetHashCode()"/>, which .NET
    /// randomizes per process): FNV-1a over the UTF-16 code units.
    /// </summary>
    public static ulong StableHash(string text)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in text)
        {
            hash ^= c;
            hash *= 1099511628211UL;
        }
        return hash;
    }

    private static ulong Mix(ulong a, ulong b)
    {
        var x = a ^ (b + 0x9E3779B97F4A7C15UL + (a << 6) + (a >> 2));
        return SplitMix64(ref x);
    }

    private static ulong SplitMix64(ref ulong state)
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong RotateLeft(ulong x, int k) => (x << k) | (x >> (64 - k));
}
