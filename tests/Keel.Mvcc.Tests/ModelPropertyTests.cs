using FsCheck.Xunit;
using static Keel.Mvcc.Tests.B;

namespace Keel.Mvcc.Tests;

/// <summary>
/// The store against a naive model: the full state after every revision, kept as a list of sorted dictionaries. Each
/// byte array is a program (every byte pair is one operation: kind, argument), so FsCheck shrinks a failure to a short
/// program. Timestamps are the step numbers.
/// </summary>
public class ModelPropertyTests
{
    private static readonly string[] Keys = ["a", "a/1", "a/2", "b", "c"];

    private sealed class Model
    {
        public List<SortedDictionary<string, KeyValue>> States { get; } = [null!, new(StringComparer.Ordinal)]; // index = revision

        public long Current => States.Count - 1;

        public long Compacted { get; set; }

        public SortedDictionary<string, KeyValue> Begin() => new(States[^1], StringComparer.Ordinal);

        public void Commit(SortedDictionary<string, KeyValue> next, bool changed)
        {
            if (changed) States.Add(next);
        }

        public static void Put(SortedDictionary<string, KeyValue> state, string key, string value, long lease, long revision)
        {
            state.TryGetValue(key, out var previous);
            state[key] = new KeyValue(Y(key), previous?.CreateRevision ?? revision, revision, (previous?.Version ?? 0) + 1, Y(value), lease);
        }

        public static bool Delete(SortedDictionary<string, KeyValue> state, string from, string? to)
        {
            var doomed = state.Keys.Where(k => to is null ? k == from : string.CompareOrdinal(k, from) >= 0 && string.CompareOrdinal(k, to) < 0).ToList();
            foreach (var key in doomed) state.Remove(key);
            return doomed.Count > 0;
        }
    }

    [Property(MaxTest = 300, Replay = "5101,1777")]
    public bool The_store_agrees_with_a_list_of_full_states_per_revision(byte[] program) => Agrees(program, null);

    /// <summary>
    /// The same with the values in 16-byte segments (a few values each): compactions move live values out of sparse
    /// segments, and the invariant check after every step holds the segments' counts to what the index refers to.
    /// </summary>
    [Property(MaxTest = 300)]
    public bool The_store_with_values_in_segments_agrees_with_the_same_states(byte[] program) => Agrees(program, new HeapValueSegmentSource(16));

    private static bool Agrees(byte[] program, ValueSegmentSource? segments)
    {
        var store = new MvccStore(segments);
        var model = new Model();
        var revisionAfterStep = new List<long>();

        for (var pc = 0; pc + 1 < program.Length; pc += 2)
        {
            var step = pc / 2;
            var kind = program[pc] % 7;
            var arg = program[pc + 1];
            var key = Keys[arg % Keys.Length];
            var other = Keys[(arg / Keys.Length) % Keys.Length];
            var next = model.Begin();
            var writeRevision = model.Current + 1;
            switch (kind)
            {
                case 0:
                case 5:
                    var lease = kind == 5 ? arg % 3 : 0;
                    store.Put(new PutRequest { Key = Y(key), Value = Y($"v{arg}"), Lease = lease }, step);
                    Model.Put(next, key, $"v{arg}", lease, writeRevision);
                    model.Commit(next, true);
                    break;
                case 1:
                    store.DeleteRange(new DeleteRangeRequest { Key = Y(key) }, step);
                    model.Commit(next, Model.Delete(next, key, null));
                    break;
                case 2:
                    var deleted = store.DeleteRange(new DeleteRangeRequest { Key = Y(key), RangeEnd = Y(other) }, step).Deleted;
                    var changed = Model.Delete(next, key, other);
                    Assert.Equal(changed, deleted > 0);
                    model.Commit(next, changed);
                    break;
                case 3:
                    var target = model.Compacted + 1 + arg % 4;
                    if (target > model.Current) ThrowsMvcc(MvccError.FutureRevision, () => store.Compact(target));
                    else { store.Compact(target); model.Compacted = target; }
                    break;
                case 4:
                    var wanted = arg % 3;
                    var response = store.Txn(new TxnRequest
                    {
                        Compares = [new Compare { Key = Y(key), Target = CompareTarget.Version, Result = CompareResult.Equal, NumberOperand = wanted }],
                        Success = [RequestOp.Of(new PutRequest { Key = Y(other), Value = Y("txn") })],
                        Failure = [RequestOp.Of(new DeleteRangeRequest { Key = Y(other) }), RequestOp.Of(new RangeRequest { Key = Y(key) })],
                    }, step);
                    var holds = (next.TryGetValue(key, out var current) ? current.Version : 0) == wanted;
                    Assert.Equal(holds, response.Succeeded);
                    if (holds) { Model.Put(next, other, "txn", 0, writeRevision); model.Commit(next, true); }
                    else model.Commit(next, Model.Delete(next, other, null));
                    break;
                default:
                    var revision = (long)(arg % (model.Current + 2));
                    var request = new RangeRequest { Key = Y(key), RangeEnd = Y(other), Revision = revision };
                    if (revision > model.Current) ThrowsMvcc(MvccError.FutureRevision, () => store.Range(request));
                    else if (revision > 0 && revision < model.Compacted) ThrowsMvcc(MvccError.Compacted, () => store.Range(request));
                    else CheckRange(store, model, key, other, revision == 0 ? model.Current : revision);
                    break;
            }
            revisionAfterStep.Add(model.Current);
            Assert.Equal(model.Current, store.CurrentRevision);
            CheckRange(store, model, "\0", "\0", model.Current);
            store.AssertInvariants();
        }

        for (var revision = Math.Max(1, model.Compacted); revision <= model.Current; revision++)
            CheckRange(store, model, "\0", "\0", revision);
        CheckEvents(store, model);
        for (var step = 0; step < revisionAfterStep.Count; step++)
        {
            if (revisionAfterStep[step] >= model.Compacted) Assert.Equal(revisionAfterStep[step], store.RevisionAt(step));
            else ThrowsMvcc(MvccError.Compacted, () => store.RevisionAt(step));
        }

        var restored = MvccStore.Restore(store.Snapshot(), segments);
        Assert.Equal(store.HashKv(0), restored.HashKv(0));
        Assert.Equal(store.Snapshot(), restored.Snapshot());
        Assert.Equal(store.Events(Math.Max(1, model.Compacted), [0], FromKey), restored.Events(Math.Max(1, model.Compacted), [0], FromKey));
        return true;
    }

    private static void CheckRange(MvccStore store, Model model, string from, string to, long revision)
    {
        var state = model.States[(int)revision];
        var expected = state.Values.Where(kv =>
        {
            var k = S(kv.Key);
            return from == "\0" && to == "\0" || string.CompareOrdinal(k, from) >= 0 && string.CompareOrdinal(k, to) < 0;
        }).ToList();
        var response = store.Range(new RangeRequest { Key = Y(from), RangeEnd = Y(to), Revision = revision });
        Assert.Equal(expected, response.Kvs);
        Assert.Equal(expected.Count, response.Count);
    }

    /// <summary>The watch history from the compaction on is exactly the difference between consecutive model states.</summary>
    private static void CheckEvents(MvccStore store, Model model)
    {
        var start = Math.Max(2, model.Compacted);
        var events = store.Events(start, [0], FromKey);
        var expected = new List<WatchEvent>();
        for (var revision = start; revision <= model.Current; revision++)
        {
            var before = model.States[(int)revision - 1];
            var after = model.States[(int)revision];
            foreach (var key in before.Keys.Union(after.Keys).Order(StringComparer.Ordinal))
            {
                before.TryGetValue(key, out var old);
                after.TryGetValue(key, out var now);
                if (now is not null && !ReferenceEquals(now, old) && now.ModRevision == revision)
                    expected.Add(new WatchEvent(EventType.Put, now, old));
                else if (now is null && old is not null)
                    expected.Add(new WatchEvent(EventType.Delete, new KeyValue(Y(key), 0, revision, 0, [], 0), old));
            }
        }
        // Within a revision the store lists changes in write order, the model in key order.
        static string Describe(WatchEvent e) => $"{e.Kv.ModRevision}:{S(e.Kv.Key)}:{e.Type}:{e.Kv}:{e.PrevKv}";
        Assert.Equal(expected.Select(Describe).Order(StringComparer.Ordinal), events.Select(Describe).Order(StringComparer.Ordinal));
    }
}
