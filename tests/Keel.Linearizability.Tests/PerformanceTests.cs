using System.Diagnostics;
using Xunit.Abstractions;

namespace Keel.Linearizability.Tests;

public class PerformanceTests(ITestOutputHelper output)
{
    [Fact]
    public void Ten_thousand_operations_over_a_hundred_keys_are_checked_quickly()
    {
        // 20 clients x 500 operations = 10,000 operations (fewer if some clients time out), 100 keys.
        var history = KvHistories.Honest(seed: 2026, clients: 20, operationsPerClient: 500, keys: 100);
        var checker = new LinearizabilityChecker<string?, KvInput, KvOutput>(new KvModel());

        var clock = Stopwatch.StartNew();
        var report = checker.Check(history);
        clock.Stop();

        output.WriteLine($"{history.Count} operations, {report.Partitions.Count} partitions, {report.TotalSteps} steps, {clock.ElapsedMilliseconds} ms");
        Assert.Equal(LinearizabilityVerdict.Linearizable, report.Verdict);
        Assert.True(history.Count > 9_000);
        Assert.Equal(100, report.Partitions.Count);

        var (tampered, victim) = KvHistories.TamperOneRead(history, 99);
        clock.Restart();
        var failed = checker.Check(tampered);
        clock.Stop();
        output.WriteLine($"tampered: {failed.Verdict}, {failed.TotalSteps} steps, {clock.ElapsedMilliseconds} ms");
        Assert.Equal(victim, failed.Failure!.BlockedOperationId);
    }

    [Fact]
    public void Two_thousand_operations_on_one_hot_key_are_checked()
    {
        // Every operation on one key with 10 concurrent clients: no partitioning to help, the search alone.
        var history = KvHistories.Honest(seed: 2027, clients: 10, operationsPerClient: 200, keys: 1);
        var checker = new LinearizabilityChecker<string?, KvInput, KvOutput>(new KvModel());

        var clock = Stopwatch.StartNew();
        var report = checker.Check(history);
        clock.Stop();

        output.WriteLine($"hot key: {history.Count} operations, {report.TotalSteps} steps, {clock.ElapsedMilliseconds} ms");
        Assert.Equal(LinearizabilityVerdict.Linearizable, report.Verdict);
    }
}
