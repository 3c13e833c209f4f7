namespace Keel.Linearizability;

/// <summary>
/// An executable sequential specification of an object, as Porcupine's <c>Model</c> (porcupine/model.go): the checker
/// asks whether some order of the operations, consistent with real time, is accepted by this model step by step.
/// States must be immutable values: the search keeps earlier states on its undo stack and in its memo cache.
/// </summary>
/// <typeparam name="TState">The object's state; immutable.</typeparam>
/// <typeparam name="TInput">Request type.</typeparam>
/// <typeparam name="TOutput">Response type.</typeparam>
public interface IModel<TState, TInput, TOutput>
{
    /// <summary>The state of the object before any operation.</summary>
    TState Init();

    /// <summary>
    /// Applies a completed operation: <c>Ok</c> is false when the object in <paramref name="state"/> could not have
    /// answered <paramref name="output"/> to <paramref name="input"/>.
    /// </summary>
    (bool Ok, TState NewState) Step(TState state, TInput input, TOutput output);

    /// <summary>
    /// Applies an operation that never returned, taking effect now with an output nobody saw. <c>Ok</c> false means
    /// it cannot take effect in this state. The checker separately lets such an operation not take effect at all.
    /// </summary>
    (bool Ok, TState NewState) StepUnobserved(TState state, TInput input);

    /// <summary>
    /// True when <paramref name="input"/> never changes the state (a read). The checker drops such operations when
    /// they never returned, as Knossos and Jepsen drop indeterminate reads: whether they took effect cannot matter.
    /// </summary>
    bool IsReadOnly(TInput input);

    /// <summary>State equality, for the memo cache (Lowe's memoization of (linearized set, state)).</summary>
    bool StateEquals(TState left, TState right);

    /// <summary>
    /// A hash consistent with <see cref="StateEquals"/>. Only used for cache lookups, never to order anything, yet
    /// prefer a stable hash (not string.GetHashCode) so that performance does not vary between processes.
    /// </summary>
    int StateHash(TState state);

    /// <summary>
    /// Splits a history into independent sub-histories (per key for a key-value store): a history is linearizable iff
    /// each part is (Herlihy &amp; Wing's locality). Return the history itself when the object cannot be split.
    /// </summary>
    IReadOnlyList<History<TInput, TOutput>> Partition(History<TInput, TOutput> history);

    /// <summary>Renders an operation for failure explanations; <paramref name="output"/> is null when pending.</summary>
    string DescribeOperation(TInput input, TOutput? output, bool pending);

    /// <summary>Renders a state for failure explanations.</summary>
    string DescribeState(TState state);
}
