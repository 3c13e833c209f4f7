using System.Globalization;
using System.Text;

namespace Keel.Linearizability;

/// <summary>The verdict of a linearizability check.</summary>
public enum LinearizabilityVerdict
{
    /// <summary>Every partition has a linearization: the history is linearizable.</summary>
    Linearizable,

    /// <summary>Some partition provably has none: the history is not linearizable.</summary>
    NotLinearizable,

    /// <summary>
    /// The search budget ran out on some partition before a verdict and no partition failed: nothing is claimed. A
    /// simulator should treat this as "not checked", never as a pass.
    /// </summary>
    Unknown,
}

/// <summary>How one sub-history fared.</summary>
/// <param name="Index">Position of the partition in the model's partition list.</param>
/// <param name="Name">The partition's label (for example <c>key "a"</c>).</param>
/// <param name="OperationCount">Operations in the partition, pending ones included.</param>
/// <param name="Verdict">The partition's verdict.</param>
/// <param name="Steps">Model steps spent on it.</param>
public readonly record struct PartitionResult(int Index, string Name, int OperationCount, LinearizabilityVerdict Verdict, long Steps);

/// <summary>
/// Why a partition is not linearizable, in the shape Porcupine's visualisation and Knossos's reports use: the longest
/// prefix of operations the search managed to linearize, the state it reached, and the operation that then could not
/// be placed before its return.
/// </summary>
/// <param name="Partition">The failing partition.</param>
/// <param name="LongestPrefix">The longest linearizable prefix found, in linearization order (descriptions).</param>
/// <param name="StateAfterPrefix">The model state after that prefix.</param>
/// <param name="BlockedOperation">The operation whose return came before any valid place for it (description).</param>
/// <param name="BlockedOperationId">Id of that operation in the recorded history.</param>
public sealed record FailureExplanation(
    PartitionResult Partition,
    IReadOnlyList<string> LongestPrefix,
    string StateAfterPrefix,
    string BlockedOperation,
    int BlockedOperationId)
{
    /// <summary>A multi-line explanation for a simulator failure report.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture,
            $"partition {Partition.Index} ({Partition.Name}, {Partition.OperationCount} operations) is not linearizable\n");
        text.Append(CultureInfo.InvariantCulture, $"  longest linearizable prefix ({LongestPrefix.Count} operations):\n");
        foreach (var operation in LongestPrefix) text.Append("    ").Append(operation).Append('\n');
        text.Append("  state after the prefix: ").Append(StateAfterPrefix).Append('\n');
        text.Append("  could not place: ").Append(BlockedOperation).Append('\n');
        return text.ToString();
    }
}

/// <summary>The result of <see cref="LinearizabilityChecker{TState,TInput,TOutput}.Check"/>.</summary>
/// <param name="Verdict">Overall verdict: NotLinearizable if any partition fails, else Unknown if any ran out of budget.</param>
/// <param name="Partitions">Per-partition results, in partition order.</param>
/// <param name="Failure">The explanation of the first failing partition, when <see cref="Verdict"/> is NotLinearizable.</param>
public sealed record LinearizabilityReport(
    LinearizabilityVerdict Verdict,
    IReadOnlyList<PartitionResult> Partitions,
    FailureExplanation? Failure)
{
    /// <summary>True only for a proven linearizable history.</summary>
    public bool IsLinearizable => Verdict == LinearizabilityVerdict.Linearizable;

    /// <summary>Total model steps spent.</summary>
    public long TotalSteps => Partitions.Sum(p => p.Steps);

    /// <summary>A summary line, followed by the failure explanation or the exhausted partitions.</summary>
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture,
            $"linearizability: {Verdict} ({Partitions.Count} partition{(Partitions.Count == 1 ? "" : "s")}, {TotalSteps} steps)\n");
        if (Failure is not null) text.Append(Failure);
        foreach (var partition in Partitions.Where(p => p.Verdict == LinearizabilityVerdict.Unknown))
            text.Append(CultureInfo.InvariantCulture,
                $"  budget exhausted on partition {partition.Index} ({partition.Name}, {partition.OperationCount} operations) after {partition.Steps} steps\n");
        return text.ToString();
    }
}
