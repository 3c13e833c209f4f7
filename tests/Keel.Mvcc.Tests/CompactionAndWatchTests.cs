using static Keel.Mvcc.Tests.B;

namespace Keel.Mvcc.Tests;

public class CompactionAndWatchTests
{
    [Fact]
    public void Compaction_keeps_the_latest_version_of_live_keys_and_drops_deleted_ones()
    {
        var store = new MvccStore();
        store.Put("a", "1");  // 2
        store.Put("a", "2");  // 3
        store.Put("b", "1");  // 4
        store.Delete("b");    // 5
        store.Put("c", "1");  // 6
        store.Compact(5);
        Assert.Equal(5, store.CompactRevision);
        Assert.Equal(new KeyValue(Y("a"), 2, 3, 2, Y("2"), 0), store.Get("a", revision: 5));
        Assert.Null(store.Get("b", revision: 5));
        Assert.Null(store.Get("c", revision: 5));
        Assert.NotNull(store.Get("c"));
        Assert.Equal(2, store.IndexedKeyCount); // b's history is gone entirely
        store.Put("a", "3");
        Assert.Equal(new KeyValue(Y("a"), 2, 7, 3, Y("3"), 0), store.Get("a"));
        store.AssertInvariants();
    }

    [Fact]
    public void Compacting_again_at_or_below_or_into_the_future_is_refused()
    {
        var store = new MvccStore();
        store.Compact(1);
        store.Put("a", "1");
        store.Put("a", "2");
        store.Compact(3);
        ThrowsMvcc(MvccError.Compacted, () => store.Compact(3));
        ThrowsMvcc(MvccError.Compacted, () => store.Compact(2));
        ThrowsMvcc(MvccError.FutureRevision, () => store.Compact(4));
        Assert.Equal(3, store.CompactRevision);
        store.AssertInvariants();
    }

    [Fact]
    public void Watch_history_gives_puts_and_deletes_with_prev_kv_in_revision_order()
    {
        var store = new MvccStore();
        store.Put("a", "1");  // 2
        store.Put("x", "1");  // 3
        store.Put("a", "2");  // 4
        store.Delete("a");    // 5
        var events = store.Events(2, Y("a"), []);
        Assert.Equal([EventType.Put, EventType.Put, EventType.Delete], events.Select(e => e.Type));
        Assert.Equal([2L, 4, 5], events.Select(e => e.Kv.ModRevision));
        Assert.Null(events[0].PrevKv);
        Assert.Equal(Y("1"), events[1].PrevKv!.Value);
        Assert.Equal(new KeyValue(Y("a"), 0, 5, 0, [], 0), events[2].Kv);
        Assert.Equal(Y("2"), events[2].PrevKv!.Value);
        Assert.Equal(2, store.Events(4, Y("a"), FromKey).Count);
        Assert.Equal(3, store.Events(1, Y("a"), FromKey, endRevision: 4).Count);
        Assert.Empty(store.Events(6, Y("a"), FromKey)); // the future: allowed, nothing yet
    }

    [Fact]
    public void Watch_history_below_the_compaction_is_refused()
    {
        var store = new MvccStore();
        store.Put("a", "1");
        store.Put("a", "2");
        store.Put("a", "3");
        store.Compact(3);
        ThrowsMvcc(MvccError.Compacted, () => store.Events(2, Y("a"), []));
        var events = store.Events(3, Y("a"), []);
        Assert.Equal([3L, 4], events.Select(e => e.Kv.ModRevision));
        Assert.Equal(Y("1"), events[0].PrevKv!.Value); // prev_kv recorded with the event survives compaction
    }

    [Fact]
    public void HashKv_agrees_across_replicas_and_tells_revisions_apart()
    {
        MvccStore Build()
        {
            var s = new MvccStore();
            s.Put("a", "1");
            s.Put("b", "2");
            s.Delete("a");
            return s;
        }
        var one = Build();
        var two = Build();
        Assert.Equal(one.HashKv(0), two.HashKv(0));
        Assert.NotEqual(one.HashKv(3).Hash, one.HashKv(4).Hash);
        Assert.Equal(4, one.HashKv(0).HashRevision);
        two.Put("c", "3");
        Assert.Equal(one.HashKv(4).Hash, two.HashKv(4).Hash);
        Assert.NotEqual(one.HashKv(0).Hash, two.HashKv(0).Hash);
        ThrowsMvcc(MvccError.FutureRevision, () => one.HashKv(5));
        one.Compact(3);
        ThrowsMvcc(MvccError.Compacted, () => one.HashKv(2));
    }
}
