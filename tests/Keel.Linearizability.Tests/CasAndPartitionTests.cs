namespace Keel.Linearizability.Tests;

public class CasAndPartitionTests
{
    private static readonly LinearizabilityChecker<string?, KvInput, KvOutput> Checker = new(new KvModel());

    [Fact]
    public void Cas_succeeds_only_when_the_value_matches()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Put("x", "1"), 0, KvOutput.Ok, 10);
        history.AddCompleted(1, KvInput.Cas("x", "1", "2"), 20, KvOutput.Cas(true), 30);
        history.AddCompleted(1, KvInput.Cas("x", "1", "3"), 40, KvOutput.Cas(false), 50);
        history.AddCompleted(1, KvInput.Get("x"), 60, KvOutput.Found("2"), 70);
        Assert.Equal(LinearizabilityVerdict.Linearizable, Checker.Check(history).Verdict);
    }

    [Fact]
    public void Cas_that_reports_success_on_a_mismatch_is_not_linearizable()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Put("x", "1"), 0, KvOutput.Ok, 10);
        history.AddCompleted(1, KvInput.Cas("x", "5", "2"), 20, KvOutput.Cas(true), 30);
        Assert.Equal(LinearizabilityVerdict.NotLinearizable, Checker.Check(history).Verdict);
    }

    [Fact]
    public void Cas_on_a_missing_key_fails_as_in_etcd()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Cas("x", "", "1"), 0, KvOutput.Cas(false), 10);
        Assert.Equal(LinearizabilityVerdict.Linearizable, Checker.Check(history).Verdict);

        var succeeded = new History<KvInput, KvOutput>();
        succeeded.AddCompleted(1, KvInput.Cas("x", "", "1"), 0, KvOutput.Cas(true), 10);
        Assert.Equal(LinearizabilityVerdict.NotLinearizable, Checker.Check(succeeded).Verdict);
    }

    [Fact]
    public void Two_concurrent_cas_from_the_same_value_cannot_both_succeed()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Put("lock", "free"), 0, KvOutput.Ok, 10);
        history.AddCompleted(2, KvInput.Cas("lock", "free", "held-by-2"), 20, KvOutput.Cas(true), 40);
        history.AddCompleted(3, KvInput.Cas("lock", "free", "held-by-3"), 20, KvOutput.Cas(true), 40);
        Assert.Equal(LinearizabilityVerdict.NotLinearizable, Checker.Check(history).Verdict);
    }

    [Fact]
    public void A_pending_cas_may_have_succeeded()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Put("x", "1"), 0, KvOutput.Ok, 10);
        history.AddPending(2, KvInput.Cas("x", "1", "2"), 20);
        history.AddCompleted(3, KvInput.Get("x"), 100, KvOutput.Found("2"), 110);
        Assert.Equal(LinearizabilityVerdict.Linearizable, Checker.Check(history).Verdict);

        // ...but not with a value it would not have written.
        history.AddCompleted(3, KvInput.Get("x"), 120, KvOutput.Found("3"), 130);
        Assert.Equal(LinearizabilityVerdict.NotLinearizable, Checker.Check(history).Verdict);
    }

    [Fact]
    public void Each_key_is_checked_on_its_own_in_key_order()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Put("b", "1"), 0, KvOutput.Ok, 10);
        history.AddCompleted(1, KvInput.Put("a", "1"), 0, KvOutput.Ok, 10);
        history.AddCompleted(2, KvInput.Get("a"), 20, KvOutput.Found("1"), 30);
        var stale = history.AddCompleted(2, KvInput.Get("b"), 20, KvOutput.NotFound, 30);

        var report = Checker.Check(history);

        Assert.Equal(LinearizabilityVerdict.NotLinearizable, report.Verdict);
        Assert.Equal(["key \"a\"", "key \"b\""], report.Partitions.Select(p => p.Name));
        Assert.Equal(LinearizabilityVerdict.Linearizable, report.Partitions[0].Verdict);
        Assert.Equal(LinearizabilityVerdict.NotLinearizable, report.Partitions[1].Verdict);
        Assert.Equal("key \"b\"", report.Failure!.Partition.Name);
        Assert.Equal(stale, report.Failure.BlockedOperationId);
    }

    [Fact]
    public void Partitions_keep_the_recorded_operation_ids()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Put("a", "1"), 0, KvOutput.Ok, 10);
        history.AddCompleted(1, KvInput.Put("b", "1"), 0, KvOutput.Ok, 10);
        history.AddCompleted(1, KvInput.Get("a"), 20, KvOutput.Found("1"), 30);

        var partitions = new KvModel().Partition(history);

        Assert.Equal([0, 2], partitions[0].Operations.Select(o => o.Id));
        Assert.Equal([1], partitions[1].Operations.Select(o => o.Id));
    }

    [Fact]
    public void An_exhausted_budget_is_unknown_never_linearizable()
    {
        var honest = KvHistories.Honest(seed: 42, clients: 8, operationsPerClient: 20, keys: 1);
        var tiny = new LinearizabilityChecker<string?, KvInput, KvOutput>(new KvModel(), maxStepsPerPartition: 3);

        var report = tiny.Check(honest);

        Assert.Equal(LinearizabilityVerdict.Unknown, report.Verdict);
        Assert.False(report.IsLinearizable);
        Assert.Null(report.Failure);
        Assert.Contains("budget exhausted on partition 0", report.ToString());
        Assert.Equal(LinearizabilityVerdict.Linearizable, Checker.Check(honest).Verdict);
    }

    [Fact]
    public void A_failure_elsewhere_wins_over_an_exhausted_budget()
    {
        var history = KvHistories.Honest(seed: 7, clients: 8, operationsPerClient: 20, keys: 1);
        history.AddCompleted(50, KvInput.Put("z", "1"), 0, KvOutput.Ok, 10);
        history.AddCompleted(50, KvInput.Get("z"), 20, KvOutput.NotFound, 30);
        var tiny = new LinearizabilityChecker<string?, KvInput, KvOutput>(new KvModel(), maxStepsPerPartition: 3);

        var report = tiny.Check(history);

        Assert.Equal(LinearizabilityVerdict.NotLinearizable, report.Verdict);
        Assert.Equal(LinearizabilityVerdict.Unknown, report.Partitions[0].Verdict);
    }

    [Fact]
    public void Impossible_histories_are_refused_while_recording()
    {
        var history = new History<KvInput, KvOutput>();
        var id = history.Invoke(1, KvInput.Get("x"), 100);
        Assert.Throws<InvalidHistoryException>(() => history.Complete(id, KvOutput.NotFound, 99));
        Assert.Throws<InvalidHistoryException>(() => history.Complete(id + 1, KvOutput.NotFound, 200));
        history.Complete(id, KvOutput.NotFound, 100);
        var again = Assert.Throws<InvalidHistoryException>(() => history.Complete(id, KvOutput.NotFound, 200));
        Assert.Contains("already completed", again.Message);
        history.AssertInvariants();
    }
}
