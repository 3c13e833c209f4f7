using Keel.Core;

namespace Keel.Linearizability;

/// <summary>
/// Wing &amp; Gong's depth-first search with Lowe's memoization over one partition, after Porcupine's
/// <c>checkSingle</c> (porcupine/checker.go). Call and return entries sit in a doubly
/// linked list sorted by time; linearizing an operation lifts its call and return out of the list and pushes an undo
/// record; reaching a return entry means that operation should already have been linearized, so the search
/// backtracks.
/// </summary>
/// <remarks>
/// An operation that never returned has a call entry and no return entry (Porcupine gives it a return "at infinity",
/// which the search can never reach before succeeding, so the two are the same). It is a candidate anywhere after its
/// call and need not be linearized at all: the search succeeds once every completed operation is placed.
/// Measured alternatives that were slower on a hot key with many timeouts, and so rejected: trying pending operations
/// only as a last resort before backtracking (30x more steps), and refusing to linearize a pending operation that
/// leaves the state unchanged (5x more steps, since it then stays in the list and is retried on every rescan).
/// </remarks>
internal sealed class Search<TState, TInput, TOutput>
{
    private sealed class Entry
    {
        public required bool IsCall;
        public required int Operation;
        public required long TimeMs;
        /// <summary>The return entry of a completed operation's call; null for a pending operation's call.</summary>
        public Entry? Match;
        public Entry? Previous;
        public Entry? Next;
    }

    /// <summary>An undo record: the call linearized and the state before it.</summary>
    private readonly record struct Undo(Entry Call, TState StateBefore);

    private readonly record struct CacheEntry(OperationSet Linearized, TState State);

    private readonly IModel<TState, TInput, TOutput> _model;
    private readonly IReadOnlyList<Operation<TInput, TOutput>> _operations;
    private readonly long _maxSteps;
    private readonly Entry _head;
    private readonly Stack<Undo> _undo = new();
    private readonly OperationSet _linearized;
    private readonly Dictionary<ulong, List<CacheEntry>> _cache = [];
    private int _bestDepth = -1;

    public Search(IModel<TState, TInput, TOutput> model, IReadOnlyList<Operation<TInput, TOutput>> operations, long maxSteps)
    {
        _model = model;
        _operations = operations;
        _maxSteps = maxSteps;
        _linearized = new OperationSet(operations.Count);
        _head = BuildEntryList(operations);
    }

    /// <summary>The operations searched; the search's indices point into this list.</summary>
    public IReadOnlyList<Operation<TInput, TOutput>> Operations => _operations;

    /// <summary>Model steps taken so far.</summary>
    public long Steps { get; private set; }

    /// <summary>Local indices of the longest linearizable prefix found, in linearization order.</summary>
    public IReadOnlyList<int> LongestPrefix { get; private set; } = [];

    /// <summary>The model state after <see cref="LongestPrefix"/>.</summary>
    public TState? StateAfterLongestPrefix { get; private set; }

    /// <summary>Local index of the operation that could not be placed after the longest prefix; -1 if none.</summary>
    public int BlockedOperation { get; private set; } = -1;

    private static Entry BuildEntryList(IReadOnlyList<Operation<TInput, TOutput>> operations)
    {
        var entries = new List<Entry>(operations.Count * 2);
        for (var index = 0; index < operations.Count; index++)
        {
            var operation = operations[index];
            var call = new Entry { IsCall = true, Operation = index, TimeMs = operation.CallMs };
            if (operation.ReturnMs is not { } returnMs)
            {
                entries.Add(call);
                continue;
            }

            var @return = new Entry { IsCall = false, Operation = index, TimeMs = returnMs };
            call.Match = @return;
            entries.Add(call);
            entries.Add(@return);
        }

        // Calls before returns at equal times (closed intervals), then by operation for a total, deterministic order.
        Comparison<Entry> byTime = static (left, right) =>
        {
            var order = left.TimeMs.CompareTo(right.TimeMs);
            if (order != 0) return order;
            if (left.IsCall != right.IsCall) return left.IsCall ? -1 : 1;
            return left.Operation.CompareTo(right.Operation);
        };
        entries.Sort(byTime);
        return Link(entries);
    }

    private static Entry Link(List<Entry> entries)
    {
        var head = new Entry { IsCall = false, Operation = -1, TimeMs = long.MinValue };
        var previous = head;
        foreach (var entry in entries)
        {
            previous.Next = entry;
            entry.Previous = previous;
            previous = entry;
        }

        return head;
    }

    public LinearizabilityVerdict Run()
    {
        var state = _model.Init();
        var remainingCompleted = 0;
        foreach (var operation in _operations)
            if (!operation.IsPending) remainingCompleted++;

        var entry = _head.Next;
        while (true)
        {
            // Pending operations left over simply never took effect.
            if (remainingCompleted == 0) return LinearizabilityVerdict.Linearizable;
            if (Steps >= _maxSteps) return LinearizabilityVerdict.Unknown;
            Invariant.Check(entry is not null, "the entry list always ends with a return entry while completed operations remain");

            if (entry.IsCall)
            {
                if (TryLinearize(entry, ref state))
                {
                    if (entry.Match is not null) remainingCompleted--;
                    entry = _head.Next;
                }
                else
                {
                    entry = entry.Next;
                }

                continue;
            }

            // The first return entry: its operation returned before any point we could linearize it at, so undo the
            // latest choice and try the next candidate after it.
            if (_undo.Count > _bestDepth) RecordLongest(state, entry.Operation);
            if (_undo.Count == 0) return LinearizabilityVerdict.NotLinearizable;
            var undo = _undo.Pop();
            state = undo.StateBefore;
            _linearized.Remove(undo.Call.Operation);
            if (undo.Call.Match is null)
            {
                UnliftPending(undo.Call);
            }
            else
            {
                remainingCompleted++;
                Unlift(undo.Call);
            }

            entry = undo.Call.Next;
        }
    }

    private bool TryLinearize(Entry call, ref TState state)
    {
        Steps++;
        var operation = _operations[call.Operation];
        var (ok, next) = operation.IsPending
            ? _model.StepUnobserved(state, operation.Input)
            : _model.Step(state, operation.Input, operation.Output);
        if (!ok) return false;

        _linearized.Add(call.Operation);
        if (!TryRemember(next))
        {
            _linearized.Remove(call.Operation);
            return false;
        }

        _undo.Push(new Undo(call, state));
        state = next;
        if (operation.IsPending) LiftPending(call);
        else Lift(call);
        return true;
    }

    private bool TryRemember(TState state)
    {
        var hash = _linearized.Hash() ^ (ulong)(uint)_model.StateHash(state) * 0x9E3779B97F4A7C15UL;
        if (!_cache.TryGetValue(hash, out var bucket))
        {
            bucket = [];
            _cache.Add(hash, bucket);
        }

        foreach (var seen in bucket)
            if (seen.Linearized.SetEquals(_linearized) && _model.StateEquals(seen.State, state))
                return false;
        bucket.Add(new CacheEntry(_linearized.Clone(), state));
        return true;
    }

    private void RecordLongest(TState state, int blockedOperation)
    {
        _bestDepth = _undo.Count;
        var prefix = _undo.Select(undo => undo.Call.Operation).ToArray();
        Array.Reverse(prefix);
        LongestPrefix = prefix;
        StateAfterLongestPrefix = state;
        BlockedOperation = blockedOperation;
    }

    private static void Lift(Entry call)
    {
        call.Previous!.Next = call.Next;
        call.Next!.Previous = call.Previous;
        var match = call.Match!;
        match.Previous!.Next = match.Next;
        if (match.Next is not null) match.Next.Previous = match.Previous;
    }

    private static void Unlift(Entry call)
    {
        var match = call.Match!;
        match.Previous!.Next = match;
        if (match.Next is not null) match.Next.Previous = match;
        call.Previous!.Next = call;
        call.Next!.Previous = call;
    }

    private static void LiftPending(Entry call)
    {
        call.Previous!.Next = call.Next;
        if (call.Next is not null) call.Next.Previous = call.Previous;
    }

    private static void UnliftPending(Entry call)
    {
        call.Previous!.Next = call;
        if (call.Next is not null) call.Next.Previous = call;
    }

    /// <summary>
    /// The lists hold exactly the operations not yet linearized, sorted by time, each completed call before its
    /// return, and the undo stack holds exactly the linearized ones.
    /// </summary>
    public void AssertInvariants()
    {
        var listed = CheckList(_head);
        Invariant.Check(listed + _undo.Count == _operations.Count, "every operation is either listed or linearized");
        Invariant.Check(_linearized.Count == _undo.Count, "the linearized set matches the undo stack");
    }

    private int CheckList(Entry head)
    {
        var seenCalls = new HashSet<int>();
        var operations = 0;
        var lastTimeMs = long.MinValue;
        for (var entry = head.Next; entry is not null; entry = entry.Next)
        {
            Invariant.Check(entry.Previous!.Next == entry, "the entry list is doubly linked consistently");
            Invariant.Check(entry.TimeMs >= lastTimeMs, "entries stay sorted by time");
            lastTimeMs = entry.TimeMs;
            Invariant.Check(!_linearized.Contains(entry.Operation), "a linearized operation is out of the lists");
            if (entry.IsCall)
            {
                seenCalls.Add(entry.Operation);
                operations++;
            }
            else
            {
                Invariant.Check(seenCalls.Contains(entry.Operation), "a call precedes its return");
            }
        }

        return operations;
    }
}
