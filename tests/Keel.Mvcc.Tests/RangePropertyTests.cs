using FsCheck.Xunit;
using static Keel.Mvcc.Tests.B;

namespace Keel.Mvcc.Tests;

/// <summary>Range options against a reference written directly from etcd's apply.go order (count, filter, sort, limit).</summary>
public class RangePropertyTests
{
    private static readonly string[] Keys = ["a", "a/1", "a/2", "b", "b/1", "c"];

    [Property(MaxTest = 300, Replay = "5201,1777")]
    public bool Range_options_agree_with_the_reference(byte[] program, byte limit, byte sort, byte filter, bool keysOnly)
    {
        var store = new MvccStore();
        for (var pc = 0; pc + 1 < program.Length; pc += 2)
        {
            var key = Keys[program[pc + 1] % Keys.Length];
            if (program[pc] % 4 == 0) store.DeleteRange(new DeleteRangeRequest { Key = Y(key) }, pc);
            else store.Put(new PutRequest { Key = Y(key), Value = [program[pc]] }, pc);
        }
        var all = store.Range(new RangeRequest { Key = [0], RangeEnd = FromKey }).Kvs;
        var request = new RangeRequest
        {
            Key = Y("a"),
            RangeEnd = Y("b/2"),
            Limit = limit % 5,
            SortTarget = (SortTarget)(sort % 5),
            SortOrder = (SortOrder)(sort / 5 % 3),
            KeysOnly = keysOnly,
            MinModRevision = filter % 4 == 1 ? store.CurrentRevision / 2 : 0,
            MaxModRevision = filter % 4 == 2 ? store.CurrentRevision / 2 : 0,
            MinCreateRevision = filter % 4 == 3 ? store.CurrentRevision / 3 : 0,
            MaxCreateRevision = filter / 4 % 2 == 1 ? store.CurrentRevision / 2 : 0,
        };
        var response = store.Range(request);

        var inRange = all.Where(kv => string.CompareOrdinal(S(kv.Key), "a") >= 0 && string.CompareOrdinal(S(kv.Key), "b/2") < 0).ToList();
        var filtered = inRange.Where(kv =>
            (request.MinModRevision == 0 || kv.ModRevision >= request.MinModRevision) &&
            (request.MaxModRevision == 0 || kv.ModRevision <= request.MaxModRevision) &&
            (request.MinCreateRevision == 0 || kv.CreateRevision >= request.MinCreateRevision) &&
            (request.MaxCreateRevision == 0 || kv.CreateRevision <= request.MaxCreateRevision)).ToList();
        IComparable Field(KeyValue kv) => request.SortTarget switch
        {
            SortTarget.Key => S(kv.Key),
            SortTarget.Version => kv.Version,
            SortTarget.Create => kv.CreateRevision,
            SortTarget.Mod => kv.ModRevision,
            _ => Convert.ToHexString(kv.Value),
        };
        var order = request.SortOrder == SortOrder.None && request.SortTarget != SortTarget.Key ? SortOrder.Ascend : request.SortOrder;
        var sorted = order switch
        {
            SortOrder.Ascend => filtered.OrderBy(Field, Comparer<IComparable>.Create((x, y) => x is string a ? string.CompareOrdinal(a, (string)y) : x.CompareTo(y))).ToList(),
            SortOrder.Descend => filtered.OrderByDescending(Field, Comparer<IComparable>.Create((x, y) => x is string a ? string.CompareOrdinal(a, (string)y) : x.CompareTo(y))).ToList(),
            _ => filtered,
        };
        var expected = request.Limit > 0 ? sorted.Take((int)request.Limit).ToList() : sorted;
        if (keysOnly) expected = [.. expected.Select(kv => kv with { Value = [] })];

        Assert.Equal(expected, response.Kvs);
        Assert.Equal(inRange.Count, response.Count);
        Assert.Equal(request.Limit > 0 && sorted.Count > request.Limit, response.More);
        return true;
    }
}
