namespace Keel.Raft.Tests;

public sealed class ProgressTests
{
    private static Progress NewProgress(ulong next = 10) => new RaftTestAccess.ProgressFactory().Create(next);

    [Fact]
    public void ProbeSendsOneMessageUntilAnswered()
    {
        var pr = NewProgress();
        Assert.False(pr.IsPaused);
        RaftTestAccess.SentEntries(pr, 2, 20, 11);
        Assert.True(pr.IsPaused);
        Assert.True(pr.MaybeUpdate(11));
        Assert.False(pr.IsPaused);
        Assert.Equal(12ul, pr.Next);
    }

    [Fact]
    public void ReplicatePipelinesUntilTheWindowIsFull()
    {
        var pr = NewProgress();
        pr.MaybeUpdate(9);
        pr.BecomeReplicate();
        Assert.Equal(10ul, pr.Next);
        RaftTestAccess.SentEntries(pr, 1, 1, 10);
        RaftTestAccess.SentEntries(pr, 1, 1, 11);
        Assert.Equal(12ul, pr.Next);
        Assert.Equal(2, pr.Inflights.Count);
        pr.AssertInvariants();
    }

    [Fact]
    public void StaleRejectionsAreIgnored()
    {
        var pr = NewProgress();
        pr.MaybeUpdate(5);
        pr.BecomeReplicate();
        Assert.False(pr.MaybeDecreaseTo(rejected: 5, matchHint: 0)); // concerns an acked entry
        Assert.True(pr.MaybeDecreaseTo(rejected: 8, matchHint: 0));
        Assert.Equal(6ul, pr.Next); // back to Match + 1

        var probe = NewProgress(next: 10);
        Assert.False(probe.MaybeDecreaseTo(rejected: 5, matchHint: 3)); // not the index we probed (Next - 1 = 9)
        Assert.True(probe.MaybeDecreaseTo(rejected: 9, matchHint: 3));
        Assert.Equal(4ul, probe.Next); // the hint skips ahead of one-by-one backtracking
    }

    [Fact]
    public void SnapshotStateIsPausedAndProbesAfterTheSnapshot()
    {
        var pr = NewProgress();
        pr.BecomeSnapshot(20);
        Assert.True(pr.IsPaused);
        Assert.Equal(20ul, pr.PendingSnapshot);
        pr.BecomeProbe();
        Assert.Equal(21ul, pr.Next);
        Assert.Equal(0ul, pr.PendingSnapshot);
    }
}
