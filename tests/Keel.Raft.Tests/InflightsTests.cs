using FsCheck.Xunit;
using Keel.Core;

namespace Keel.Raft.Tests;

public sealed class InflightsTests
{
    [Fact]
    public void FullByCountThenFreedInOrder()
    {
        var inflights = new Inflights(capacity: 3, maxBytes: 0);
        inflights.Add(5, 10);
        inflights.Add(7, 10);
        inflights.Add(9, 10);
        Assert.True(inflights.Full);
        inflights.FreeLe(7);
        Assert.Equal(1, inflights.Count);
        Assert.Equal(10, inflights.Bytes);
        Assert.False(inflights.Full);
        inflights.Add(12, 1);
        inflights.Add(13, 1);
        Assert.True(inflights.Full);
        inflights.AssertInvariants();
    }

    [Fact]
    public void FullByBytes()
    {
        var inflights = new Inflights(capacity: 100, maxBytes: 50);
        inflights.Add(1, 30);
        Assert.False(inflights.Full);
        inflights.Add(2, 30);
        Assert.True(inflights.Full);
        inflights.FreeFirstOne();
        Assert.False(inflights.Full);
        Assert.Equal(30, inflights.Bytes);
    }

    [Fact]
    public void AddingToAFullWindowIsABug()
    {
        var inflights = new Inflights(capacity: 1, maxBytes: 0);
        inflights.Add(1, 1);
        Assert.Throws<InvariantViolationException>(() => inflights.Add(2, 1));
    }

    /// <summary>The ring agrees with a simple queue model under any sequence of adds and frees.</summary>
    [Property(MaxTest = 200, Replay = "(20261126,1)")]
    public bool MatchesAQueueModel(byte[] operations)
    {
        var inflights = new Inflights(capacity: 8, maxBytes: 0);
        var model = new Queue<(ulong Index, long Bytes)>();
        ulong next = 1;
        foreach (var op in operations)
        {
            if (op % 3 != 0 && !inflights.Full)
            {
                next += (ulong)(op % 4) + 1;
                inflights.Add(next, op);
                model.Enqueue((next, op));
            }
            else
            {
                var upTo = next - (ulong)(op % 5);
                inflights.FreeLe(upTo);
                while (model.Count > 0 && model.Peek().Index <= upTo) model.Dequeue();
            }
            inflights.AssertInvariants();
            if (inflights.Count != model.Count || inflights.Bytes != model.Sum(m => m.Bytes)) return false;
        }
        return true;
    }
}
