using Keel.Mvcc;
using Keel.Node;
using Keel.Server.Hosting;
using Xunit;

namespace Keel.Server.Tests;

/// <summary>
/// The loop finishes small answers itself (the RPC's continuation runs on the loop thread, saving a pool hand-off) and
/// hands large ones to the pool, so a range of many keys is never mapped and written on the thread that sends heartbeats.
/// </summary>
public sealed class InlineAnswerTests
{
    private static KeyValue Kv(int i, int valueBytes = 8) =>
        new(System.Text.Encoding.ASCII.GetBytes($"key-{i:D4}"), 1, 1, 1, new byte[valueBytes], 0);

    [Fact]
    public void Small_answers_are_finished_on_the_loop_and_large_ones_are_not()
    {
        Assert.True(InlineAnswers.CheapToFinishOnLoop(new KvResult { RequestId = 1, Put = new PutResponse(5, null) }));
        Assert.True(InlineAnswers.CheapToFinishOnLoop(KvResult.Failed(1, KeelError.RequestTimedOut)));
        Assert.True(InlineAnswers.CheapToFinishOnLoop(new KvResult
        {
            RequestId = 1,
            Range = new RangeResponse(5, Enumerable.Range(0, InlineAnswers.MaxKeyValues).Select(i => Kv(i)).ToArray(), false, 16),
        }));
        // One key-value too many, one value too large, or a prev_kv list too long: the pool finishes them.
        Assert.False(InlineAnswers.CheapToFinishOnLoop(new KvResult
        {
            RequestId = 1,
            Range = new RangeResponse(5, Enumerable.Range(0, InlineAnswers.MaxKeyValues + 1).Select(i => Kv(i)).ToArray(), false, 17),
        }));
        Assert.False(InlineAnswers.CheapToFinishOnLoop(new KvResult { RequestId = 1, Put = new PutResponse(5, Kv(0, InlineAnswers.MaxBytes)) }));
        Assert.False(InlineAnswers.CheapToFinishOnLoop(new KvResult
        {
            RequestId = 1,
            DeleteRange = new DeleteRangeResponse(5, 40, Enumerable.Range(0, 40).Select(i => Kv(i)).ToArray()),
        }));
        // Budgets add up across a transaction's operations, nested ones included.
        var tenKeys = new ResponseOp(new RangeResponse(5, Enumerable.Range(0, 10).Select(i => Kv(i)).ToArray(), false, 10), null, null, null);
        var nested = new TxnResponse(5, true, [tenKeys]);
        Assert.True(InlineAnswers.CheapToFinishOnLoop(new KvResult { RequestId = 1, Txn = new TxnResponse(5, true, [tenKeys]) }));
        Assert.False(InlineAnswers.CheapToFinishOnLoop(new KvResult
        {
            RequestId = 1,
            Txn = new TxnResponse(5, true, [tenKeys, new ResponseOp(null, null, null, nested)]),
        }));
    }

    [Fact]
    public async Task A_put_is_finished_on_the_loop_thread_and_a_range_of_many_keys_on_the_pool()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1);
        var host = cluster.Servers[0]!.Host;
        for (var i = 0; i < 40; i++)
            Assert.False((await host.WriteAsync(KvCommand.Of(new PutRequest { Key = Kv(i).Key, Value = [1, 2, 3] }))).IsError);

        var put = await FinishingThread(host, () => host.WriteAsync(KvCommand.Of(new PutRequest { Key = "one"u8.ToArray(), Value = [1] })));
        Assert.Equal(NodeHost.LoopThreadName, put);
        var smallRange = await FinishingThread(host, () => host.ReadAsync(new RangeRequest { Key = Kv(0).Key }, linearizable: true));
        Assert.Equal(NodeHost.LoopThreadName, smallRange);
        var largeRange = await FinishingThread(host, () => host.ReadAsync(new RangeRequest { Key = "key-"u8.ToArray(), RangeEnd = "key."u8.ToArray() }, linearizable: true));
        Assert.NotEqual(NodeHost.LoopThreadName, largeRange);
    }

    // The loop is held until the continuation is attached, so it is attached before the answer exists and runs where
    // the task is completed (ExecuteSynchronously), not on this thread.
    private static async Task<string?> FinishingThread(NodeHost host, Func<Task<KvResult>> request)
    {
        using var hold = new ManualResetEventSlim(false);
        host.Post(() => hold.Wait(TimeSpan.FromSeconds(10)));
        var pending = request();
        var finishedOn = pending.ContinueWith(
            answer => (answer.Result.IsError ? "error " + answer.Result.Error : null, Thread.CurrentThread.Name),
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        hold.Set();
        var (error, thread) = await finishedOn.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Null(error);
        return thread;
    }
}
