using Keel.Core;

namespace Keel.Linearizability;

/// <summary>
/// A concurrent history of client operations, recorded call by call and return by return as a simulator runs
/// (<see cref="Invoke"/> then <see cref="Complete"/>). Operations never completed stay pending. Models split a history
/// into independent sub-histories with <see cref="Sub"/>, which keep the original operation ids so explanations point
/// back at the recorded operations.
/// </summary>
/// <typeparam name="TInput">Request type.</typeparam>
/// <typeparam name="TOutput">Response type.</typeparam>
public sealed class History<TInput, TOutput>
{
    private readonly List<Operation<TInput, TOutput>> _operations;

    /// <summary>Creates an empty history.</summary>
    public History() : this([], null) { }

    private History(List<Operation<TInput, TOutput>> operations, string? name)
    {
        _operations = operations;
        Name = name;
    }

    /// <summary>A label for a sub-history (for example <c>key "a"</c>), printed in failure explanations.</summary>
    public string? Name { get; }

    /// <summary>The operations, in the order they were invoked.</summary>
    public IReadOnlyList<Operation<TInput, TOutput>> Operations => _operations;

    /// <summary>Number of operations, pending ones included.</summary>
    public int Count => _operations.Count;

    /// <summary>Records the call of an operation and returns its id, to be passed to <see cref="Complete"/>.</summary>
    public int Invoke(int clientId, TInput input, long callMs)
    {
        var id = _operations.Count;
        _operations.Add(new Operation<TInput, TOutput>(id, clientId, input, callMs, default!, null));
        return id;
    }

    /// <summary>Records the response of a previously invoked operation.</summary>
    /// <exception cref="InvalidHistoryException">Unknown id, already completed, or a return before the call.</exception>
    public void Complete(int operationId, TOutput output, long returnMs)
    {
        if ((uint)operationId >= (uint)_operations.Count)
            throw new InvalidHistoryException($"operation #{operationId} was never invoked");
        var operation = _operations[operationId];
        if (!operation.IsPending)
            throw new InvalidHistoryException($"operation #{operationId} was already completed at {operation.ReturnMs} ms");
        if (returnMs < operation.CallMs)
            throw new InvalidHistoryException(
                $"operation #{operationId} returns at {returnMs} ms, before its call at {operation.CallMs} ms");
        if (returnMs == long.MaxValue)
            throw new InvalidHistoryException($"operation #{operationId}: {long.MaxValue} ms is reserved for 'never returned'");
        _operations[operationId] = operation with { Output = output, ReturnMs = returnMs };
    }

    /// <summary>Records an operation that was called and returned.</summary>
    public int AddCompleted(int clientId, TInput input, long callMs, TOutput output, long returnMs)
    {
        var id = Invoke(clientId, input, callMs);
        Complete(id, output, returnMs);
        return id;
    }

    /// <summary>Records an operation that was called and never returned.</summary>
    public int AddPending(int clientId, TInput input, long callMs) => Invoke(clientId, input, callMs);

    /// <summary>
    /// A sub-history of some of this history's operations (ids kept), for <see cref="IModel{TState,TInput,TOutput}.Partition"/>.
    /// </summary>
    public History<TInput, TOutput> Sub(IEnumerable<Operation<TInput, TOutput>> operations, string name) =>
        new([.. operations], name);

    /// <summary>Checks the structural invariants: every completed operation returns no earlier than it was called.</summary>
    public void AssertInvariants()
    {
        foreach (var operation in _operations)
            Invariant.Check(operation.ReturnMs is null || operation.ReturnMs >= operation.CallMs,
                "an operation returns before it is called");
    }
}
