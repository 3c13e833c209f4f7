namespace Keel.Linearizability.Tests;

/// <summary>A model that is not a key-value store, to show the checker is generic: a counter with add and read.</summary>
internal sealed class CounterModel : IModel<long, (bool IsAdd, long Amount), long>
{
    public long Init() => 0;

    public (bool Ok, long NewState) Step(long state, (bool IsAdd, long Amount) input, long output) =>
        input.IsAdd ? (true, state + input.Amount) : (output == state, state);

    public (bool Ok, long NewState) StepUnobserved(long state, (bool IsAdd, long Amount) input) =>
        (true, input.IsAdd ? state + input.Amount : state);

    public bool IsReadOnly((bool IsAdd, long Amount) input) => !input.IsAdd;

    public bool StateEquals(long left, long right) => left == right;

    public int StateHash(long state) => state.GetHashCode();

    public IReadOnlyList<History<(bool IsAdd, long Amount), long>> Partition(History<(bool IsAdd, long Amount), long> history) =>
        [history];

    public string DescribeOperation((bool IsAdd, long Amount) input, long output, bool pending) =>
        input.IsAdd ? $"add({input.Amount})" : pending ? "read -> ?" : $"read -> {output}";

    public string DescribeState(long state) => state.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

public class GenericModelTests
{
    private static readonly LinearizabilityChecker<long, (bool IsAdd, long Amount), long> Checker = new(new CounterModel());

    [Fact]
    public void Concurrent_adds_may_be_seen_in_either_order()
    {
        var history = new History<(bool IsAdd, long Amount), long>();
        history.AddCompleted(1, (true, 1), 0, 0, 100);
        history.AddCompleted(2, (true, 10), 0, 0, 100);
        history.AddCompleted(3, (false, 0), 10, 10, 20);
        history.AddCompleted(3, (false, 0), 30, 11, 40);
        Assert.Equal(LinearizabilityVerdict.Linearizable, Checker.Check(history).Verdict);
    }

    [Fact]
    public void A_sum_no_subset_of_adds_explains_is_caught()
    {
        var history = new History<(bool IsAdd, long Amount), long>();
        history.AddCompleted(1, (true, 1), 0, 0, 100);
        history.AddCompleted(2, (true, 10), 0, 0, 100);
        history.AddPending(4, (true, 100), 0);
        history.AddCompleted(3, (false, 0), 10, 111, 20);
        Assert.Equal(LinearizabilityVerdict.Linearizable, Checker.Check(history).Verdict);

        history.AddCompleted(3, (false, 0), 30, 12, 40);
        var report = Checker.Check(history);
        Assert.Equal(LinearizabilityVerdict.NotLinearizable, report.Verdict);
        Assert.Equal("partition 0", report.Failure!.Partition.Name);
    }

    [Fact]
    public void Dropped_pending_reads_do_not_shift_the_blamed_operation_id()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddPending(9, KvInput.Get("x"), 0);
        history.AddCompleted(1, KvInput.Put("x", "1"), 0, KvOutput.Ok, 10);
        history.AddPending(9, KvInput.Get("x"), 5);
        var stale = history.AddCompleted(2, KvInput.Get("x"), 20, KvOutput.NotFound, 30);

        var report = new LinearizabilityChecker<string?, KvInput, KvOutput>(new KvModel()).Check(history);

        Assert.Equal(stale, report.Failure!.BlockedOperationId);
        Assert.Contains("#1 client 1: put(x, \"1\")", report.Failure.LongestPrefix[0]);
    }
}

public class PartitionContractTests
{
    private sealed class LossyKvModel : IModel<string?, KvInput, KvOutput>
    {
        private readonly KvModel _inner = new();
        public string? Init() => _inner.Init();
        public (bool Ok, string? NewState) Step(string? state, KvInput input, KvOutput output) => _inner.Step(state, input, output);
        public (bool Ok, string? NewState) StepUnobserved(string? state, KvInput input) => _inner.StepUnobserved(state, input);
        public bool IsReadOnly(KvInput input) => _inner.IsReadOnly(input);
        public bool StateEquals(string? left, string? right) => _inner.StateEquals(left, right);
        public int StateHash(string? state) => _inner.StateHash(state);
        public string DescribeOperation(KvInput input, KvOutput output, bool pending) => _inner.DescribeOperation(input, output, pending);
        public string DescribeState(string? state) => _inner.DescribeState(state);

        // Forgets the last key: a bug that would hide its violations.
        public IReadOnlyList<History<KvInput, KvOutput>> Partition(History<KvInput, KvOutput> history) =>
            _inner.Partition(history).SkipLast(1).ToArray();
    }

    [Fact]
    public void A_model_whose_partitions_lose_operations_is_stopped_not_trusted()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Put("a", "1"), 0, KvOutput.Ok, 10);
        history.AddCompleted(1, KvInput.Get("b"), 20, KvOutput.Found("never"), 30);

        var checker = new LinearizabilityChecker<string?, KvInput, KvOutput>(new LossyKvModel());

        Assert.Throws<Keel.Core.InvariantViolationException>(() => checker.Check(history));
    }
}
