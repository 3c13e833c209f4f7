using static Keel.Mvcc.Tests.B;

namespace Keel.Mvcc.Tests;

public class RangeTests
{
    /// <summary>a=1 (rev 2), b=22 (3), c=3 (4), b updated (5), "a/x" (6), d with value "0" (7).</summary>
    private static MvccStore Sample()
    {
        var store = new MvccStore();
        store.Put("a", "1");
        store.Put("b", "22");
        store.Put("c", "3");
        store.Put("b", "2");
        store.Put("a/x", "9");
        store.Put("d", "0");
        return store;
    }

    [Fact]
    public void Range_end_conventions_single_half_open_prefix_and_from_key()
    {
        var store = Sample();
        Assert.Equal(["b"], store.Range(new RangeRequest { Key = Y("b") }).Keys());
        Assert.Equal(["a", "a/x", "b"], store.Range(new RangeRequest { Key = Y("a"), RangeEnd = Y("c") }).Keys());
        Assert.Equal(["a/x"], store.Range(new RangeRequest { Key = Y("a/"), RangeEnd = Y("a0") }).Keys()); // prefix "a/"
        Assert.Equal(["b", "c", "d"], store.Range(new RangeRequest { Key = Y("b"), RangeEnd = FromKey }).Keys());
        Assert.Equal(["a", "a/x", "b", "c", "d"], store.Range(new RangeRequest { Key = [0], RangeEnd = FromKey }).Keys());
        Assert.Empty(store.Range(new RangeRequest { Key = Y("c"), RangeEnd = Y("b") }).Kvs);
        Assert.Empty(store.Range(new RangeRequest { Key = Y("zz"), RangeEnd = FromKey }).Kvs);
    }

    [Fact]
    public void Keys_compare_as_unsigned_bytes()
    {
        var store = new MvccStore();
        store.Put(new PutRequest { Key = [0xff], Value = Y("high") }, 1);
        store.Put(new PutRequest { Key = [0x01], Value = Y("low") }, 1);
        store.Put(new PutRequest { Key = [0x80, 0x00], Value = Y("mid") }, 1);
        var keys = store.Range(new RangeRequest { Key = [0], RangeEnd = FromKey }).Kvs.Select(kv => kv.Key[0]).ToArray();
        Assert.Equal(new byte[] { 0x01, 0x80, 0xff }, keys);
    }

    [Fact]
    public void Limit_sets_more_and_count_counts_the_whole_range()
    {
        var store = Sample();
        var response = store.Range(new RangeRequest { Key = Y("a"), RangeEnd = FromKey, Limit = 2 });
        Assert.Equal(["a", "a/x"], response.Keys());
        Assert.True(response.More);
        Assert.Equal(5, response.Count);
        var exact = store.Range(new RangeRequest { Key = Y("a"), RangeEnd = FromKey, Limit = 5 });
        Assert.False(exact.More);
        Assert.Equal(5, exact.Kvs.Count);
        foreach (var unlimited in new[] { 0L, -1, long.MaxValue })
        {
            var all = store.Range(new RangeRequest { Key = Y("a"), RangeEnd = FromKey, Limit = unlimited });
            Assert.Equal(5, all.Kvs.Count);
            Assert.False(all.More);
        }
    }

    [Fact]
    public void Count_only_returns_the_count_and_no_keys()
    {
        var response = Sample().Range(new RangeRequest { Key = Y("a"), RangeEnd = FromKey, CountOnly = true, Limit = 1 });
        Assert.Empty(response.Kvs);
        Assert.Equal(5, response.Count);
        Assert.False(response.More);
    }

    [Fact]
    public void Keys_only_strips_values()
    {
        var response = Sample().Range(new RangeRequest { Key = Y("a"), RangeEnd = Y("b"), KeysOnly = true });
        Assert.Equal(["a", "a/x"], response.Keys());
        Assert.All(response.Kvs, kv => Assert.Empty(kv.Value));
        Assert.Equal(2, response.Kvs[0].ModRevision);
    }

    [Theory]
    [InlineData(SortTarget.Key, SortOrder.Descend, "d,c,b,a/x,a")]
    [InlineData(SortTarget.Key, SortOrder.Ascend, "a,a/x,b,c,d")]
    [InlineData(SortTarget.Version, SortOrder.Descend, "b,a,a/x,c,d")]
    [InlineData(SortTarget.Create, SortOrder.Descend, "d,a/x,c,b,a")]
    [InlineData(SortTarget.Mod, SortOrder.Ascend, "a,c,b,a/x,d")]
    [InlineData(SortTarget.Mod, SortOrder.None, "a,c,b,a/x,d")] // a non-key target with no order sorts ascending
    [InlineData(SortTarget.Value, SortOrder.Ascend, "d,a,b,c,a/x")]
    [InlineData(SortTarget.Value, SortOrder.Descend, "a/x,c,b,a,d")]
    public void Sort_by_every_target(SortTarget target, SortOrder order, string expected)
    {
        var response = Sample().Range(new RangeRequest { Key = Y("a"), RangeEnd = FromKey, SortTarget = target, SortOrder = order });
        Assert.Equal(expected, string.Join(',', response.Keys()));
    }

    [Fact]
    public void Sort_applies_before_the_limit()
    {
        var response = Sample().Range(new RangeRequest
        {
            Key = Y("a"), RangeEnd = FromKey, SortTarget = SortTarget.Create, SortOrder = SortOrder.Descend, Limit = 1,
        });
        Assert.Equal(["d"], response.Keys());
        Assert.True(response.More);
    }

    [Fact]
    public void Min_and_max_revision_filters_apply_before_the_limit_but_not_to_count()
    {
        var store = Sample();
        var mod = store.Range(new RangeRequest { Key = Y("a"), RangeEnd = FromKey, MinModRevision = 4, MaxModRevision = 6 });
        Assert.Equal(["a/x", "b", "c"], mod.Keys());
        Assert.Equal(5, mod.Count);
        var create = store.Range(new RangeRequest { Key = Y("a"), RangeEnd = FromKey, MinCreateRevision = 3, MaxCreateRevision = 4 });
        Assert.Equal(["b", "c"], create.Keys());
        var limited = store.Range(new RangeRequest { Key = Y("a"), RangeEnd = FromKey, MinModRevision = 5, Limit = 1 });
        Assert.Equal(["a/x"], limited.Keys());
        Assert.True(limited.More);
        // etcd's lock recipe: the newest key created before mine.
        var lockWaiter = store.Range(new RangeRequest
        {
            Key = Y("a"), RangeEnd = FromKey, SortTarget = SortTarget.Create, SortOrder = SortOrder.Descend, Limit = 1, MaxCreateRevision = 5,
        });
        Assert.Equal(["c"], lockWaiter.Keys());
    }

    [Fact]
    public void Historical_reads_see_the_state_at_that_revision_with_the_current_header()
    {
        var store = Sample();
        store.Delete("c");
        var old = store.Range(new RangeRequest { Key = Y("a"), RangeEnd = FromKey, Revision = 4 });
        Assert.Equal(["a", "b", "c"], old.Keys());
        Assert.Equal(Y("22"), old.Kvs[1].Value);
        Assert.Equal(8, old.Revision);
        Assert.Null(store.Get("c"));
        Assert.Equal(Y("3"), store.Get("c", revision: 7)!.Value);
        Assert.Empty(store.Range(new RangeRequest { Key = Y("a"), RangeEnd = FromKey, Revision = 1 }).Kvs);
    }

    [Fact]
    public void Future_and_compacted_revisions_are_refused_with_etcds_errors()
    {
        var store = Sample();
        ThrowsMvcc(MvccError.FutureRevision, () => store.Range(new RangeRequest { Key = Y("a"), Revision = 8 }));
        Assert.Equal("etcdserver: mvcc: required revision is a future revision", MvccException.MessageOf(MvccError.FutureRevision));
        store.Compact(5);
        ThrowsMvcc(MvccError.Compacted, () => store.Range(new RangeRequest { Key = Y("a"), Revision = 4 }));
        Assert.Equal("etcdserver: mvcc: required revision has been compacted", MvccException.MessageOf(MvccError.Compacted));
        Assert.Equal(Y("2"), store.Get("b", revision: 5)!.Value);
        Assert.Equal("OutOfRange", new MvccException(MvccError.Compacted).GrpcStatusCode);
    }
}
