namespace Keel.Linearizability.Tests;

public class TextbookHistoryTests
{
    private static readonly LinearizabilityChecker<string?, KvInput, KvOutput> Checker = new(new KvModel());

    private static LinearizabilityReport Check(History<KvInput, KvOutput> history) => Checker.Check(history);

    [Fact]
    public void Stale_read_after_a_later_write_is_not_linearizable()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Put("x", "1"), 0, KvOutput.Ok, 10);
        history.AddCompleted(1, KvInput.Put("x", "2"), 20, KvOutput.Ok, 30);
        var stale = history.AddCompleted(2, KvInput.Get("x"), 40, KvOutput.Found("1"), 50);

        var report = Check(history);

        Assert.Equal(LinearizabilityVerdict.NotLinearizable, report.Verdict);
        var failure = Assert.IsType<FailureExplanation>(report.Failure);
        Assert.Equal(stale, failure.BlockedOperationId);
        Assert.Equal(2, failure.LongestPrefix.Count);
        Assert.Equal("\"2\"", failure.StateAfterPrefix);
        Assert.Contains("get(x) -> \"1\"", failure.BlockedOperation);
    }

    [Fact]
    public void Concurrent_writes_and_reads_that_agree_on_one_order_are_linearizable()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Put("x", "1"), 0, KvOutput.Ok, 100);
        history.AddCompleted(2, KvInput.Put("x", "2"), 10, KvOutput.Ok, 90);
        history.AddCompleted(3, KvInput.Get("x"), 20, KvOutput.Found("2"), 30);
        history.AddCompleted(3, KvInput.Get("x"), 40, KvOutput.Found("1"), 50);
        history.AddCompleted(4, KvInput.Get("x"), 5, KvOutput.NotFound, 15);

        var report = Check(history);

        Assert.Equal(LinearizabilityVerdict.Linearizable, report.Verdict);
        Assert.Null(report.Failure);
    }

    [Fact]
    public void Concurrent_reads_that_disagree_on_the_order_of_writes_are_not_linearizable()
    {
        // Reader 3 sees 1 then 2, reader 4 sees 2 then 1, all while both writes are in flight.
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Put("x", "1"), 0, KvOutput.Ok, 100);
        history.AddCompleted(2, KvInput.Put("x", "2"), 0, KvOutput.Ok, 100);
        history.AddCompleted(3, KvInput.Get("x"), 10, KvOutput.Found("1"), 20);
        history.AddCompleted(3, KvInput.Get("x"), 30, KvOutput.Found("2"), 40);
        history.AddCompleted(4, KvInput.Get("x"), 10, KvOutput.Found("2"), 20);
        history.AddCompleted(4, KvInput.Get("x"), 30, KvOutput.Found("1"), 40);

        Assert.Equal(LinearizabilityVerdict.NotLinearizable, Check(history).Verdict);
    }

    [Fact]
    public void Read_of_a_value_before_its_write_was_called_is_not_linearizable()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Get("x"), 0, KvOutput.Found("1"), 10);
        history.AddCompleted(2, KvInput.Put("x", "1"), 20, KvOutput.Ok, 30);

        var report = Check(history);

        Assert.Equal(LinearizabilityVerdict.NotLinearizable, report.Verdict);
        Assert.Empty(report.Failure!.LongestPrefix);
        Assert.Equal(0, report.Failure.BlockedOperationId);
    }

    [Fact]
    public void Operations_touching_at_one_instant_count_as_concurrent()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Get("x"), 0, KvOutput.Found("1"), 10);
        history.AddCompleted(2, KvInput.Put("x", "1"), 10, KvOutput.Ok, 30);

        Assert.Equal(LinearizabilityVerdict.Linearizable, Check(history).Verdict);
    }

    [Fact]
    public void A_pending_write_may_take_effect_later()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddPending(1, KvInput.Put("x", "1"), 0);
        history.AddCompleted(2, KvInput.Get("x"), 5, KvOutput.NotFound, 8);
        history.AddCompleted(2, KvInput.Get("x"), 500, KvOutput.Found("1"), 600);

        Assert.Equal(LinearizabilityVerdict.Linearizable, Check(history).Verdict);
    }

    [Fact]
    public void A_pending_write_may_never_take_effect()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddPending(1, KvInput.Put("x", "1"), 0);
        history.AddCompleted(2, KvInput.Get("x"), 500, KvOutput.NotFound, 600);

        Assert.Equal(LinearizabilityVerdict.Linearizable, Check(history).Verdict);
    }

    [Fact]
    public void A_pending_write_cannot_take_effect_before_its_call()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Get("x"), 0, KvOutput.Found("1"), 10);
        history.AddPending(2, KvInput.Put("x", "1"), 20);

        Assert.Equal(LinearizabilityVerdict.NotLinearizable, Check(history).Verdict);
    }

    [Fact]
    public void A_pending_write_takes_effect_at_most_once()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddPending(1, KvInput.Put("x", "1"), 0);
        history.AddCompleted(2, KvInput.Get("x"), 50, KvOutput.Found("1"), 60);
        history.AddCompleted(2, KvInput.Put("x", "2"), 70, KvOutput.Ok, 80);
        history.AddCompleted(2, KvInput.Get("x"), 90, KvOutput.Found("1"), 100);

        var report = Check(history);

        Assert.Equal(LinearizabilityVerdict.NotLinearizable, report.Verdict);
        Assert.Equal(3, report.Failure!.BlockedOperationId);
    }

    [Fact]
    public void A_delete_makes_the_key_absent()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(1, KvInput.Put("x", "1"), 0, KvOutput.Ok, 10);
        history.AddCompleted(1, KvInput.Delete("x"), 20, KvOutput.Ok, 30);
        history.AddCompleted(1, KvInput.Get("x"), 40, KvOutput.NotFound, 50);
        Assert.Equal(LinearizabilityVerdict.Linearizable, Check(history).Verdict);

        history.AddCompleted(1, KvInput.Get("x"), 60, KvOutput.Found("1"), 70);
        Assert.Equal(LinearizabilityVerdict.NotLinearizable, Check(history).Verdict);
    }

    [Fact]
    public void Empty_and_pending_only_histories_are_linearizable()
    {
        var history = new History<KvInput, KvOutput>();
        Assert.Equal(LinearizabilityVerdict.Linearizable, Check(history).Verdict);
        history.AddPending(1, KvInput.Put("x", "1"), 0);
        Assert.Equal(LinearizabilityVerdict.Linearizable, Check(history).Verdict);
    }

    [Fact]
    public void The_explanation_names_the_partition_the_prefix_and_the_blocked_operation()
    {
        var history = new History<KvInput, KvOutput>();
        history.AddCompleted(7, KvInput.Put("x", "1"), 0, KvOutput.Ok, 10);
        history.AddCompleted(8, KvInput.Get("x"), 20, KvOutput.NotFound, 30);

        var text = Check(history).ToString();

        Assert.StartsWith("linearizability: NotLinearizable (1 partition, ", text);
        Assert.Contains("partition 0 (key \"x\", 2 operations) is not linearizable", text);
        Assert.Contains("#0 client 7: put(x, \"1\") -> ok  [called 0 ms, returned 10 ms]", text);
        Assert.Contains("state after the prefix: \"1\"", text);
        Assert.Contains("could not place: #1 client 8: get(x) -> not found", text);
    }
}
