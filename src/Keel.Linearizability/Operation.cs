namespace Keel.Linearizability;

/// <summary>
/// One client operation as a simulator recorded it: who called it, when it was called, what it asked for and, if it
/// returned, when and with what answer. An operation that never returned (a timeout, a crashed client) is
/// <see cref="IsPending"/>: it may have taken effect at any moment after its call, or not at all, and its output is
/// unknown, exactly as Jepsen's "info" operations and Porcupine's unknown outputs are treated.
/// </summary>
/// <typeparam name="TInput">What the client asked for.</typeparam>
/// <typeparam name="TOutput">What the client was told.</typeparam>
/// <param name="Id">Index of the operation in the history it was recorded in; explanations quote it.</param>
/// <param name="ClientId">The client that issued the operation (informational: the checker orders by time only).</param>
/// <param name="Input">The request.</param>
/// <param name="CallMs">Virtual time at which the request was issued.</param>
/// <param name="Output">The response; <c>default</c> while <see cref="IsPending"/>.</param>
/// <param name="ReturnMs">Virtual time at which the response arrived, or <c>null</c> if it never did.</param>
public readonly record struct Operation<TInput, TOutput>(
    int Id, int ClientId, TInput Input, long CallMs, TOutput Output, long? ReturnMs)
{
    /// <summary>True when the operation never returned: its effect and output are unknown.</summary>
    public bool IsPending => ReturnMs is null;
}
