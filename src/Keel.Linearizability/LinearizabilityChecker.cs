using System.Globalization;
using Keel.Core;

namespace Keel.Linearizability;

/// <summary>
/// Decides whether a concurrent history is linearizable against a sequential model, as Porcupine does
/// (github.com/anishathalye/porcupine, checker.go): the history is split into independent partitions (per key), and
/// each is searched with Wing &amp; Gong's algorithm ("Testing and Verifying Concurrent Objects", 1993) over a linked
/// list of call and return entries with an undo stack, pruned by Lowe's memoization ("Testing for linearizability",
/// 2017) of every (set of linearized operations, model state) pair already explored.
/// </summary>
/// <remarks>
/// Intervals are closed: an operation that returns at the same instant another is called counts as concurrent with
/// it (calls sort before returns at equal times), which is the lenient choice and never produces a false failure from
/// coarse simulator clocks. Operations that never returned may take effect anywhere after their call or not at all.
/// The search is bounded by <see cref="MaxStepsPerPartition"/> model steps (a deterministic budget, unlike a wall-clock
/// timeout); exhausting it yields <see cref="LinearizabilityVerdict.Unknown"/>, never a wrong "linearizable".
/// </remarks>
/// <typeparam name="TState">Model state.</typeparam>
/// <typeparam name="TInput">Request type.</typeparam>
/// <typeparam name="TOutput">Response type.</typeparam>
public sealed class LinearizabilityChecker<TState, TInput, TOutput>
{
    /// <summary>The default budget: ten million model steps per partition.</summary>
    public const long DefaultMaxStepsPerPartition = 10_000_000;

    private readonly IModel<TState, TInput, TOutput> _model;

    /// <summary>Creates a checker for <paramref name="model"/> with a step budget per partition.</summary>
    public LinearizabilityChecker(IModel<TState, TInput, TOutput> model, long maxStepsPerPartition = DefaultMaxStepsPerPartition)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxStepsPerPartition);
        _model = model;
        MaxStepsPerPartition = maxStepsPerPartition;
    }

    /// <summary>Model steps a single partition may take before its verdict is Unknown.</summary>
    public long MaxStepsPerPartition { get; }

    /// <summary>Checks every partition of <paramref name="history"/> and explains the first failure.</summary>
    public LinearizabilityReport Check(History<TInput, TOutput> history)
    {
        ArgumentNullException.ThrowIfNull(history);
        history.AssertInvariants();
        var partitions = _model.Partition(history);
        AssertPartitionsCover(history, partitions);
        var results = new List<PartitionResult>(partitions.Count);
        FailureExplanation? failure = null;
        var anyUnknown = false;
        for (var index = 0; index < partitions.Count; index++)
        {
            var partition = partitions[index];
            var operations = partition.Operations.Where(o => !(o.IsPending && _model.IsReadOnly(o.Input))).ToArray();
            var search = new Search<TState, TInput, TOutput>(_model, operations, MaxStepsPerPartition);
            var verdict = search.Run();
            var result = new PartitionResult(index, partition.Name ?? $"partition {index.ToString(CultureInfo.InvariantCulture)}",
                partition.Count, verdict, search.Steps);
            results.Add(result);
            if (verdict == LinearizabilityVerdict.Unknown) anyUnknown = true;
            if (verdict == LinearizabilityVerdict.NotLinearizable && failure is null) failure = Explain(result, search);
        }

        var overall = failure is not null ? LinearizabilityVerdict.NotLinearizable
            : anyUnknown ? LinearizabilityVerdict.Unknown
            : LinearizabilityVerdict.Linearizable;
        return new LinearizabilityReport(overall, results, failure);
    }

    /// <summary>
    /// A partition that lost or duplicated an operation could turn a violation into a pass, so the model's split is
    /// checked: every recorded operation lands in exactly one partition.
    /// </summary>
    private static void AssertPartitionsCover(History<TInput, TOutput> history,
        IReadOnlyList<History<TInput, TOutput>> partitions)
    {
        var placed = new bool[history.Count];
        var total = 0;
        foreach (var partition in partitions)
        {
            foreach (var operation in partition.Operations)
            {
                Invariant.Check((uint)operation.Id < (uint)placed.Length && !placed[operation.Id],
                    "the model's partitions hold each recorded operation exactly once");
                placed[operation.Id] = true;
                total++;
            }
        }

        Invariant.Check(total == history.Count, "the model's partitions hold every recorded operation");
    }

    private FailureExplanation Explain(PartitionResult result, Search<TState, TInput, TOutput> search)
    {
        Invariant.Check(search.BlockedOperation >= 0, "a failed search always records the operation it could not place");
        var operations = search.Operations;
        var prefix = search.LongestPrefix.Select(local => Describe(operations[local])).ToArray();
        var blocked = operations[search.BlockedOperation];
        return new FailureExplanation(result, prefix, _model.DescribeState(search.StateAfterLongestPrefix!),
            Describe(blocked), blocked.Id);
    }

    private string Describe(Operation<TInput, TOutput> operation)
    {
        var what = _model.DescribeOperation(operation.Input, operation.IsPending ? default : operation.Output, operation.IsPending);
        var returned = operation.ReturnMs is { } returnMs
            ? returnMs.ToString(CultureInfo.InvariantCulture) + " ms"
            : "never";
        return string.Create(CultureInfo.InvariantCulture,
            $"#{operation.Id} client {operation.ClientId}: {what}  [called {operation.CallMs} ms, returned {returned}]");
    }
}
