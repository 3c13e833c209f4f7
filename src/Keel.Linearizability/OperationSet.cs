using System.Numerics;

namespace Keel.Linearizability;

/// <summary>
/// The set of operations linearized so far, as a bitset of ulong words (Porcupine's <c>bitset</c>). Mutated in place
/// by the search; <see cref="Clone"/> freezes a copy for the memo cache.
/// </summary>
internal sealed class OperationSet
{
    private readonly ulong[] _words;

    public OperationSet(int capacity) => _words = new ulong[(capacity + 63) >> 6];

    private OperationSet(ulong[] words) => _words = words;

    public void Add(int index) => _words[index >> 6] |= 1UL << (index & 63);

    public void Remove(int index) => _words[index >> 6] &= ~(1UL << (index & 63));

    public bool Contains(int index) => (_words[index >> 6] & (1UL << (index & 63))) != 0;

    public int Count
    {
        get
        {
            var count = 0;
            foreach (var word in _words) count += BitOperations.PopCount(word);
            return count;
        }
    }

    public OperationSet Clone() => new((ulong[])_words.Clone());

    public bool SetEquals(OperationSet other) => _words.AsSpan().SequenceEqual(other._words);

    public ulong Hash()
    {
        // FNV-1a over words with a final avalanche: stable across processes, unlike HashCode.
        var hash = 14695981039346656037UL;
        foreach (var word in _words) hash = (hash ^ word) * 1099511628211UL;
        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdUL;
        hash ^= hash >> 33;
        return hash;
    }
}
