using FsCheck.Xunit;

namespace Keel.Mvcc.Tests;

/// <summary>
/// The store's copy-on-write B+tree index against <see cref="SortedDictionary{TKey, TValue}"/> as the model: random
/// adds, removes, replaces and freezes; after every step the index enumerates (all and from a key) and finds exactly what
/// the model holds, and every frozen view still holds exactly what the model held when it was frozen.
/// </summary>
public sealed class KeyIndexTests
{
    private static byte[] Key(int i) => [(byte)(i >> 8), (byte)i];

    private static string Name(byte[] key) => Convert.ToHexString(key);

    private sealed class ByKey : IComparer<string>
    {
        public int Compare(string? x, string? y) => string.CompareOrdinal(x, y);
    }

    private static void Run(int seed, int steps, int keySpace)
    {
        var random = new Random(seed);
        var index = new KeyIndex();
        var model = new SortedDictionary<string, KeyHistory>(new ByKey());
        var frozen = new List<(KeyIndex.Frozen View, List<KeyHistory> Expected)>();
        for (var step = 0; step < steps; step++)
        {
            var key = Key(random.Next(keySpace));
            var roll = random.Next(100);
            if (roll < 10)
            {
                // The restore path: only a key above every present key is taken.
                var history = new KeyHistory(key) { Generation = index.Generation };
                var greatest = model.Count == 0 || string.CompareOrdinal(model.Keys.Last(), Name(key)) < 0;
                Assert.Equal(greatest, index.AddGreatest(history));
                if (greatest) model.Add(Name(key), history);
            }
            else if (roll < 50)
            {
                var history = new KeyHistory(key) { Generation = index.Generation };
                Assert.Equal(!model.ContainsKey(Name(key)), index.Add(history));
                model.TryAdd(Name(key), history);
            }
            else if (roll < 80)
            {
                Assert.Equal(model.Remove(Name(key)), index.Remove(key));
            }
            else if (roll < 95)
            {
                if (model.ContainsKey(Name(key)))
                {
                    var copy = new KeyHistory(model[Name(key)].Key) { Generation = index.Generation };
                    index.Replace(copy);
                    model[Name(key)] = copy;
                }
            }
            else if (frozen.Count < 8)
            {
                frozen.Add((index.Freeze(), model.Values.ToList()));
            }
            else
            {
                index.Freeze();
            }
            if (step % 97 != 0 && step != steps - 1) continue;
            index.AssertInvariants();
            Assert.Equal(model.Count, index.Count);
            Assert.Equal(model.Values, Histories(index));
            var start = Key(random.Next(keySpace));
            Assert.Equal(model.Where(p => string.CompareOrdinal(p.Key, Name(start)) >= 0).Select(p => p.Value), Histories(index.From(start)));
            var probe = Key(random.Next(keySpace));
            Assert.Equal(model.TryGetValue(Name(probe), out var expected), index.TryGetValue(probe, out var found));
            if (expected is not null) Assert.Same(expected, found.History);
            if (step % 997 != 0 && step != steps - 1) continue;
            foreach (var (view, then) in frozen)
            {
                Assert.Equal(then.Count, view.Count);
                Assert.Equal(then, Histories(view));
            }
        }
    }

    // The index holds entries; these tests put histories in it and compare them by reference.
    private static List<KeyHistory> Histories(IEnumerable<KeyEntry> entries) => entries.Select(e => e.History!).ToList();

    [Fact]
    public void A_small_index_matches_the_model_through_splits_removals_and_freezes() => Run(seed: 1, steps: 4_000, keySpace: 300);

    [Fact]
    public void A_deep_index_matches_the_model() => Run(seed: 2, steps: 40_000, keySpace: 20_000);

    [Property(MaxTest = 60, Replay = "5301,1777")]
    public void Random_histories_of_operations_match_the_model(int seed) => Run(seed, 1_500, 500);

    [Fact]
    public void A_tree_loaded_in_key_order_is_sound_full_and_changes_like_any_other()
    {
        // 20,000 keys appended at the right edge (three levels of full nodes), a view frozen halfway, then random adds and
        // removes through the general path.
        var index = new KeyIndex();
        var model = new SortedDictionary<string, KeyHistory>(new ByKey());
        KeyIndex.Frozen? half = null;
        for (var i = 0; i < 20_000; i++)
        {
            var history = new KeyHistory(Key(i * 3)) { Generation = index.Generation };
            Assert.True(index.AddGreatest(history));
            model.Add(Name(history.Key), history);
            if (i == 10_000) half = index.Freeze();
        }
        Assert.False(index.AddGreatest(new KeyHistory(Key(3)) { Generation = index.Generation }));
        Assert.False(index.AddGreatest(new KeyHistory(Key(19_999 * 3)) { Generation = index.Generation }));
        index.AssertInvariants();
        Assert.Equal(model.Values, Histories(index));
        var random = new Random(5);
        for (var step = 0; step < 10_000; step++)
        {
            var key = Key(random.Next(60_000));
            if (random.Next(2) == 0)
            {
                var history = new KeyHistory(key) { Generation = index.Generation };
                Assert.Equal(model.TryAdd(Name(key), history), index.Add(history));
            }
            else Assert.Equal(model.Remove(Name(key)), index.Remove(key));
        }
        index.AssertInvariants();
        Assert.Equal(model.Values, Histories(index));
        Assert.Equal(10_001, half!.Count);
        Assert.Equal(Enumerable.Range(0, 10_001).Select(i => Name(Key(i * 3))), half.Select(h => Name(h.Key)));
    }

    [Fact]
    public void Emptying_the_index_and_filling_it_again_keeps_it_sound()
    {
        var index = new KeyIndex();
        for (var round = 0; round < 3; round++)
        {
            for (var i = 0; i < 5_000; i++) Assert.True(index.Add(new KeyHistory(Key(i)) { Generation = index.Generation }));
            var view = index.Freeze();
            for (var i = 0; i < 5_000; i++) Assert.True(index.Remove(Key(i)));
            Assert.Equal(0, index.Count);
            Assert.Empty(index);
            index.AssertInvariants();
            Assert.Equal(5_000, view.Count());
        }
    }
}
