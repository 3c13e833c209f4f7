using static Keel.Mvcc.Tests.B;

namespace Keel.Mvcc.Tests;

/// <summary>
/// <see cref="StoreReadView"/>: a capture answers every range as the store did at the capture, whatever the store does
/// afterwards, including on another thread while the store changes (the server serves serializable reads that way).
/// </summary>
public class ReadViewTests
{
    private static readonly RangeRequest Everything = new() { Key = [0], RangeEnd = FromKey };

    private static string Show(RangeResponse response) =>
        $"rev={response.Revision} count={response.Count} more={response.More} " + string.Join(";", response.Kvs.Select(kv => kv.ToString()));

    [Fact]
    public void A_view_answers_as_the_store_did_at_the_capture_after_puts_deletes_and_a_compaction()
    {
        var store = new MvccStore();
        store.Put("a", "1");
        store.Put("b", "1");
        store.Put("a", "2");
        var view = store.CaptureReadView();
        var expected = Show(store.Range(Everything));
        var expectedOld = Show(store.Range(new RangeRequest { Key = Y("a"), Revision = 2 }));

        store.Put("a", "3");
        store.Delete("b");
        store.Put("c", "1");
        store.Compact(store.CurrentRevision);

        Assert.Equal(expected, Show(view.Range(Everything)));
        Assert.Equal(expectedOld, Show(view.Range(new RangeRequest { Key = Y("a"), Revision = 2 })));
        Assert.Equal("2", S(view.Range(new RangeRequest { Key = Y("a") }).Kvs.Single().Value));
        Assert.Equal(["a", "b"], view.Range(Everything).Keys());
        Assert.Equal(["a", "c"], store.Range(Everything).Keys());
    }

    [Fact]
    public void A_view_refuses_what_the_store_refused_at_the_capture()
    {
        var store = new MvccStore();
        store.Put("a", "1");
        store.Put("a", "2");
        store.Compact(2);
        var view = store.CaptureReadView();
        store.Put("a", "3");

        ThrowsMvcc(MvccError.FutureRevision, () => view.Range(new RangeRequest { Key = Y("a"), Revision = store.CurrentRevision }));
        ThrowsMvcc(MvccError.Compacted, () => view.Range(new RangeRequest { Key = Y("a"), Revision = 1 }));
        ThrowsMvcc(MvccError.EmptyKey, () => view.Range(new RangeRequest { Key = [] }));
        Assert.Equal((3L, 2L), (view.Revision, view.CompactRevision));
    }

    [Fact]
    public void A_view_is_current_until_a_write_or_a_compaction_changes_what_a_read_sees()
    {
        var store = new MvccStore();
        store.Put("a", "1");
        var view = store.CaptureReadView();
        Assert.True(store.IsCurrent(view));

        store.Delete("missing"); // deletes nothing: no new revision, nothing a read sees
        Assert.True(store.IsCurrent(view));
        Assert.False(new MvccStore().IsCurrent(view));

        store.Put("b", "1");
        Assert.False(store.IsCurrent(view));

        var second = store.CaptureReadView();
        store.Compact(store.CurrentRevision);
        Assert.False(store.IsCurrent(second));
        Assert.True(store.IsCurrent(store.CaptureReadView()));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Views_captured_at_random_points_of_a_random_history_never_change(int seed)
    {
        // Hundreds of keys, so the index has inner nodes and leaves split and empty under the views.
        var random = new Random(seed);
        var store = new MvccStore();
        var views = new List<(StoreReadView View, string All, string Prefix, string AtOld, long OldRevision)>();
        var prefix = new RangeRequest { Key = Y("k1"), RangeEnd = Y("k2"), Limit = 7 };
        for (var step = 0; step < 4_000; step++)
        {
            var key = $"k{random.Next(600):D3}";
            switch (random.Next(10))
            {
                case < 6:
                    store.Put(key, $"v{step}");
                    break;
                case < 8:
                    store.Delete(key);
                    break;
                case 8:
                    store.Delete(key, $"k{random.Next(600):D3}");
                    break;
                default:
                    if (random.Next(10) == 0 && store.CurrentRevision > 2)
                        store.Compact(store.CompactRevision + 1 + random.NextInt64(store.CurrentRevision - store.CompactRevision - 1));
                    break;
            }
            if (random.Next(40) == 0)
            {
                var oldRevision = Math.Max(store.CompactRevision, store.CurrentRevision - random.Next(20));
                views.Add((store.CaptureReadView(), Show(store.Range(Everything)), Show(store.Range(prefix)),
                    Show(store.Range(new RangeRequest { Key = Y("k"), RangeEnd = Y("l"), Revision = oldRevision })), oldRevision));
            }
        }
        Assert.True(views.Count > 50, $"only {views.Count} views");
        foreach (var (view, all, prefixed, atOld, oldRevision) in views)
        {
            Assert.Equal(all, Show(view.Range(Everything)));
            Assert.Equal(prefixed, Show(view.Range(prefix)));
            Assert.Equal(atOld, Show(view.Range(new RangeRequest { Key = Y("k"), RangeEnd = Y("l"), Revision = oldRevision })));
        }
        store.AssertInvariants();
    }

    [Fact]
    public void Readers_on_other_threads_see_each_view_unchanged_while_the_store_keeps_writing()
    {
        // The writer captures a view every few writes and publishes it with what a range over it must give; two readers
        // range over whatever view is published and compare. A write that touched a frozen node or history shows up as
        // a mismatch (or an exception) on a reader.
        var store = new MvccStore();
        Published? published = null;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var done = 0;
        var readsChecked = new long[2];
        var readers = Enumerable.Range(0, 2).Select(r => new Thread(() =>
        {
            try
            {
                while (Volatile.Read(ref done) == 0)
                {
                    if (Volatile.Read(ref published) is not { } current) continue;
                    var got = Show(current.View.Range(Everything));
                    if (got != current.Expected) failures.Enqueue($"view at {current.View.Revision}: {got[..Math.Min(200, got.Length)]}");
                    readsChecked[r]++;
                }
            }
            catch (Exception e)
            {
                failures.Enqueue(e.ToString());
            }
        })).ToArray();
        foreach (var reader in readers) reader.Start();
        var random = new Random(7);
        for (var step = 0; step < 20_000; step++)
        {
            var key = $"k{random.Next(1_500):D4}";
            if (random.Next(5) == 0) store.Delete(key);
            else store.Put(key, $"v{step}");
            if (step % 1_000 == 999) store.Compact(store.CurrentRevision - 10);
            if (step % 25 == 0) Volatile.Write(ref published, new Published(store.CaptureReadView(), Show(store.Range(Everything))));
        }
        Volatile.Write(ref done, 1);
        foreach (var reader in readers) Assert.True(reader.Join(TimeSpan.FromSeconds(30)), "a reader ended");
        Assert.Empty(failures);
        Assert.All(readsChecked, count => Assert.True(count > 0, "every reader checked a view"));
    }

    private sealed record Published(StoreReadView View, string Expected);
}

/// <summary>
/// The index holds a key whose one retained version is live as that version, with no history object (issue 11: 64 bytes
/// a key). A second version or a tombstone makes it a history, a compaction down to one live version makes it single
/// again, and a restore builds the same form; views captured in between keep reading what they saw.
/// </summary>
public class KeyRepresentationTests
{
    private static readonly RangeRequest Everything = new() { Key = [0], RangeEnd = FromKey };

    [Fact]
    public void Keys_move_between_one_version_and_a_history_as_they_are_written_deleted_and_compacted()
    {
        var store = new MvccStore();
        store.Put("a", "1");
        store.Put("b", "1");
        store.Put("c", "1");
        Assert.Equal(3, store.CountKeysHeldAsOneVersion());
        var before = store.CaptureReadView();

        store.Put("a", "2");
        store.Delete("b");
        store.AssertInvariants();
        Assert.Equal(1, store.CountKeysHeldAsOneVersion());
        Assert.Equal("1", S(store.Get("a", revision: 2)!.Value));
        Assert.Equal("2", S(store.Get("a")!.Value));
        Assert.Null(store.Get("b"));
        var between = store.CaptureReadView();

        store.Compact(store.CurrentRevision);
        store.AssertInvariants();
        // "a" is down to its live version again and "b" (deleted at or below the compaction) is gone.
        Assert.Equal(2, store.CountKeysHeldAsOneVersion());
        Assert.Equal(2, store.IndexedKeyCount);
        Assert.Equal(2, store.Get("a")!.Version);
        Assert.Equal(2, store.Get("a")!.CreateRevision);

        store.Put("c", "2");
        Assert.Equal(1, store.CountKeysHeldAsOneVersion());
        Assert.Equal(["a", "b", "c"], before.Range(Everything).Keys());
        Assert.Equal(["1", "1", "1"], before.Range(Everything).Kvs.Select(kv => S(kv.Value)));
        Assert.Equal(["a", "c"], between.Range(Everything).Keys());
        Assert.Equal(["2", "1"], between.Range(Everything).Kvs.Select(kv => S(kv.Value)));

        var restored = MvccStore.Restore(store.Snapshot());
        Assert.Equal(1, restored.CountKeysHeldAsOneVersion());
        Assert.Equal(store.HashKv(0), restored.HashKv(0));
        Assert.Equal(store.SizeBytes, restored.SizeBytes);
        // A put after the restore turns the restored single version into a history like any other.
        restored.Put("a", "3");
        restored.AssertInvariants();
        Assert.Equal(0, restored.CountKeysHeldAsOneVersion());
        Assert.Equal(3, restored.Get("a")!.Version);
    }

    [Fact]
    public void A_store_loaded_with_new_keys_holds_no_history_object()
    {
        var store = new MvccStore();
        for (var i = 0; i < 10_000; i++) store.Put($"key/{i:D5}", "v");
        store.AssertInvariants();
        Assert.Equal(10_000, store.CountKeysHeldAsOneVersion());
        Assert.Equal(10_000, MvccStore.Restore(store.Snapshot()).CountKeysHeldAsOneVersion());
    }
}
