using static Keel.Mvcc.Tests.B;

namespace Keel.Mvcc.Tests;

public class RevisionTests
{
    [Fact]
    public void Empty_store_is_at_revision_1()
    {
        var store = new MvccStore();
        Assert.Equal(1, store.CurrentRevision);
        Assert.Equal(0, store.CompactRevision);
        var response = store.Range(new RangeRequest { Key = Y("a"), RangeEnd = FromKey });
        Assert.Empty(response.Kvs);
        Assert.Equal(0, response.Count);
        Assert.Equal(1, response.Revision);
        store.AssertInvariants();
    }

    [Fact]
    public void Put_creates_then_updates_with_etcd_stamps()
    {
        var store = new MvccStore();
        Assert.Equal(2, store.Put("k", "v1").Revision);
        Assert.Equal(new KeyValue(Y("k"), 2, 2, 1, Y("v1"), 0), store.Get("k"));
        store.Put("other", "x");
        Assert.Equal(4, store.Put("k", "v2", lease: 7).Revision);
        Assert.Equal(new KeyValue(Y("k"), 2, 4, 2, Y("v2"), 7), store.Get("k"));
        store.AssertInvariants();
    }

    [Fact]
    public void Delete_resets_version_and_a_later_put_creates_a_new_generation()
    {
        var store = new MvccStore();
        store.Put("k", "v1");
        store.Put("k", "v2");
        var deleted = store.Delete("k");
        Assert.Equal(1, deleted.Deleted);
        Assert.Equal(4, deleted.Revision);
        Assert.Equal(new KeyValue(Y("k"), 2, 3, 2, Y("v2"), 0), Assert.Single(deleted.PrevKvs));
        Assert.Null(store.Get("k"));
        store.Put("k", "v3");
        Assert.Equal(new KeyValue(Y("k"), 5, 5, 1, Y("v3"), 0), store.Get("k"));
        store.AssertInvariants();
    }

    [Fact]
    public void Deleting_nothing_creates_no_revision()
    {
        var store = new MvccStore();
        store.Put("a", "1");
        var response = store.Delete("zzz");
        Assert.Equal(0, response.Deleted);
        Assert.Equal(2, response.Revision);
        Assert.Equal(2, store.CurrentRevision);
    }

    [Fact]
    public void Delete_range_counts_and_stamps_every_key_with_one_revision()
    {
        var store = new MvccStore();
        foreach (var key in new[] { "a", "b", "c", "d" }) store.Put(key, key);
        var response = store.Delete("b", "d");
        Assert.Equal(2, response.Deleted);
        Assert.Equal(6, store.CurrentRevision);
        var events = store.Events(6, Y("a"), FromKey);
        Assert.All(events, e => Assert.Equal(6, e.Kv.ModRevision));
        Assert.Equal(["b", "c"], events.Select(e => S(e.Kv.Key)));
        Assert.Equal(["a", "d"], store.Range(new RangeRequest { Key = Y("a"), RangeEnd = FromKey }).Keys());
    }

    [Fact]
    public void Put_prev_kv_returns_the_replaced_version_only_when_asked()
    {
        var store = new MvccStore();
        store.Put("k", "v1");
        Assert.Null(store.Put(new PutRequest { Key = Y("k"), Value = Y("v2") }, 100).PrevKv);
        var response = store.Put(new PutRequest { Key = Y("k"), Value = Y("v3"), PrevKv = true }, 100);
        Assert.Equal(Y("v2"), response.PrevKv!.Value);
        Assert.Null(store.Put(new PutRequest { Key = Y("new"), Value = Y("x"), PrevKv = true }, 100).PrevKv);
    }

    [Fact]
    public void Ignore_value_and_ignore_lease_keep_the_current_ones()
    {
        var store = new MvccStore();
        store.Put("k", "v1", lease: 5);
        store.Put(new PutRequest { Key = Y("k"), Lease = 9, IgnoreValue = true }, 100);
        Assert.Equal(new KeyValue(Y("k"), 2, 3, 2, Y("v1"), 9), store.Get("k"));
        store.Put(new PutRequest { Key = Y("k"), Value = Y("v2"), IgnoreLease = true }, 100);
        Assert.Equal(new KeyValue(Y("k"), 2, 4, 3, Y("v2"), 9), store.Get("k"));
    }

    [Fact]
    public void Ignore_flags_on_a_missing_key_are_refused_with_etcds_error_and_change_nothing()
    {
        var store = new MvccStore();
        ThrowsMvcc(MvccError.KeyNotFound, () => store.Put(new PutRequest { Key = Y("k"), IgnoreValue = true }, 1));
        ThrowsMvcc(MvccError.KeyNotFound, () => store.Put(new PutRequest { Key = Y("k"), IgnoreLease = true }, 1));
        Assert.Equal("etcdserver: key not found", MvccException.MessageOf(MvccError.KeyNotFound));
        store.Put("k", "v");
        store.Delete("k");
        ThrowsMvcc(MvccError.KeyNotFound, () => store.Put(new PutRequest { Key = Y("k"), IgnoreValue = true }, 100));
        Assert.Equal(3, store.CurrentRevision);
        store.AssertInvariants();
    }

    [Fact]
    public void Ignore_flags_with_a_value_or_lease_and_empty_keys_are_refused()
    {
        var store = new MvccStore();
        store.Put("k", "v");
        ThrowsMvcc(MvccError.ValueProvided, () => store.Put(new PutRequest { Key = Y("k"), Value = Y("x"), IgnoreValue = true }, 100));
        ThrowsMvcc(MvccError.LeaseProvided, () => store.Put(new PutRequest { Key = Y("k"), Lease = 3, IgnoreLease = true }, 100));
        ThrowsMvcc(MvccError.EmptyKey, () => store.Put(new PutRequest { Key = [] }, 100));
        ThrowsMvcc(MvccError.EmptyKey, () => store.Range(new RangeRequest { Key = [] }));
        ThrowsMvcc(MvccError.EmptyKey, () => store.DeleteRange(new DeleteRangeRequest { Key = [] }, 100));
        Assert.Equal("etcdserver: key is not provided", MvccException.MessageOf(MvccError.EmptyKey));
    }

    [Fact]
    public void Stored_bytes_are_copies_of_the_callers_arrays()
    {
        var store = new MvccStore();
        var key = Y("k");
        var value = Y("v");
        store.Put(new PutRequest { Key = key, Value = value }, 1);
        key[0] = (byte)'z';
        value[0] = (byte)'z';
        Assert.Equal(Y("v"), store.Get("k")!.Value);
    }

    [Fact]
    public void Timestamps_going_backwards_are_refused_before_any_change()
    {
        var store = new MvccStore();
        store.Put("a", "1", timestamp: 50);
        Assert.Throws<ArgumentOutOfRangeException>(() => store.Put("b", "1", timestamp: 49));
        Assert.Equal(2, store.CurrentRevision);
        Assert.Null(store.Get("b"));
        store.Put("b", "1", timestamp: 50);
        store.AssertInvariants();
    }

    [Fact]
    public void RevisionAt_finds_the_revision_current_at_a_hybrid_time()
    {
        var store = new MvccStore();
        Assert.Equal(1, store.RevisionAt(5));
        store.Put("a", "1", timestamp: 100); // rev 2
        store.Put("a", "2", timestamp: 200); // rev 3
        store.Put("a", "3", timestamp: 200); // rev 4
        store.Put("a", "4", timestamp: 300); // rev 5
        Assert.Equal(1, store.RevisionAt(99));
        Assert.Equal(2, store.RevisionAt(100));
        Assert.Equal(2, store.RevisionAt(199));
        Assert.Equal(4, store.RevisionAt(200));
        Assert.Equal(4, store.RevisionAt(299));
        Assert.Equal(5, store.RevisionAt(long.MaxValue));
        Assert.Equal(200, store.TimestampOf(3));
        Assert.Equal("3", S(store.Get("a", store.RevisionAt(250))!.Value));
        store.Compact(3);
        ThrowsMvcc(MvccError.Compacted, () => store.RevisionAt(150));
        ThrowsMvcc(MvccError.Compacted, () => store.RevisionAt(199));
        Assert.Equal(4, store.RevisionAt(200));
        ThrowsMvcc(MvccError.Compacted, () => store.TimestampOf(2));
        ThrowsMvcc(MvccError.FutureRevision, () => store.TimestampOf(6));
    }
}
