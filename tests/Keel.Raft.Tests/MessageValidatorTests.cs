using System.Text;
using FsCheck.Xunit;
using Keel.Core;
using Keel.Quorum;
using Keel.Raft.Tests.Harness;

namespace Keel.Raft.Tests;

/// <summary>
/// <see cref="MessageValidator"/>: each rule refuses what it should, genuine traffic of a running cluster always
/// passes, structurally broken copies of it never do, and nothing that passes makes a node throw.
/// </summary>
public sealed class MessageValidatorTests
{
    private static readonly Membership Voters = new([1UL, 2UL, 3UL]);

    private static Message Append(ulong index = 4, ulong logTerm = 2, ulong term = 3, params Entry[] entries) => new()
    {
        Type = MessageType.Append, From = 1, To = 2, Term = term, Index = index, LogTerm = logTerm, Commit = 5, Entries = entries,
    };

    private static Entry E(ulong index, ulong term) => Entry.Normal(index, term, new byte[] { 1 });

    private static Message Chunk(ulong offset, ulong total, int length, ulong snapTerm = 2) => new()
    {
        Type = MessageType.Snapshot, From = 1, To = 2, Term = 3,
        Snapshot = new SnapshotChunk(new SnapshotMetadata(10, snapTerm, Voters), offset, total, new byte[length]),
    };

    [Fact]
    public void WellFormedMessagesPass()
    {
        Assert.Null(MessageValidator.Validate(Append(4, 2, 3, E(5, 2), E(6, 3), E(7, 3)), self: 2));
        Assert.Null(MessageValidator.Validate(Append()));
        Assert.Null(MessageValidator.Validate(new Message { Type = MessageType.Heartbeat, From = 1, To = 2, Term = 3, Commit = 1_000_000 }));
        Assert.Null(MessageValidator.Validate(Chunk(0, 100, 40)));
        Assert.Null(MessageValidator.Validate(Chunk(60, 100, 40)));
        Assert.Null(MessageValidator.Validate(new Message { Type = MessageType.Propose, From = 2, To = 1, Entries = [E(0, 0)] }));
        Assert.Null(MessageValidator.Validate(new Message { Type = MessageType.VoteResponse, From = 2, To = 1, Term = 0, Reject = true }));
    }

    [Theory]
    [InlineData("gap")]
    [InlineData("wrong start")]
    [InlineData("term decreases")]
    [InlineData("term above message")]
    [InlineData("term below prev log term")]
    [InlineData("log term above term")]
    [InlineData("from zero")]
    [InlineData("to zero")]
    [InlineData("to self")]
    [InlineData("other recipient")]
    [InlineData("unknown type")]
    [InlineData("entries on heartbeat")]
    [InlineData("append in term 0")]
    [InlineData("index overflow")]
    [InlineData("chunk beyond total")]
    [InlineData("offset beyond total")]
    [InlineData("huge snapshot")]
    [InlineData("snapshot term above")]
    [InlineData("snapshot missing")]
    [InlineData("empty proposal")]
    [InlineData("bad conf change")]
    public void MalformedMessagesAreRefused(string what)
    {
        var m = what switch
        {
            "gap" => Append(4, 2, 3, E(5, 2), E(7, 3)),
            "wrong start" => Append(4, 2, 3, E(6, 2)),
            "term decreases" => Append(4, 2, 3, E(5, 3), E(6, 2)),
            "term above message" => Append(4, 2, 3, E(5, 4)),
            "term below prev log term" => Append(4, 2, 3, E(5, 1)),
            "log term above term" => Append(4, 4, 3),
            "from zero" => Append() with { From = 0 },
            "to zero" => Append() with { To = 0 },
            "to self" => Append() with { To = 1 },
            "other recipient" => Append() with { To = 3 },
            "unknown type" => Append() with { Type = (MessageType)99 },
            "entries on heartbeat" => Append(4, 2, 3, E(5, 2)) with { Type = MessageType.Heartbeat },
            "append in term 0" => Append(0, 0, 0),
            "index overflow" => Append(ulong.MaxValue, 2, 3, E(0, 2)),
            "chunk beyond total" => Chunk(80, 100, 40),
            "offset beyond total" => Chunk(200, 100, 0),
            "huge snapshot" => Chunk(0, ulong.MaxValue / 2, 10),
            "snapshot term above" => Chunk(0, 100, 10, snapTerm: 4),
            "snapshot missing" => new Message { Type = MessageType.Snapshot, From = 1, To = 2, Term = 3 },
            "empty proposal" => new Message { Type = MessageType.Propose, From = 2, To = 1 },
            "bad conf change" => new Message { Type = MessageType.Propose, From = 2, To = 1, Entries = [new Entry(0, 0, EntryType.ConfChange, new byte[] { 9, 9 })] },
            _ => throw new ArgumentException(what),
        };
        var reason = MessageValidator.Validate(m, self: 2);
        Assert.NotNull(reason);
    }

    [Fact]
    public void HostileCommitAndAckIndexesDoNotBreakInvariants()
    {
        var cluster = StartCluster(7);
        var leader = cluster.Nodes.Values.Single(h => h.Node.Role == RaftRole.Leader).Id;
        var follower = cluster.Nodes.Keys.First(id => id != leader);
        var term = cluster[leader].Node.Term;
        // A heartbeat or an append whose commit is far beyond the follower's log: clamped, never an invariant failure.
        cluster.StepInto(new Message { Type = MessageType.Heartbeat, From = leader, To = follower, Term = term, Commit = 1_000_000 });
        cluster.StepInto(new Message { Type = MessageType.Append, From = leader, To = follower, Term = term, Index = 0, LogTerm = 0, Commit = ulong.MaxValue });
        // An ack beyond the leader's log is ignored rather than counted.
        var last = cluster[leader].Node.Log.LastIndex;
        cluster.StepInto(new Message { Type = MessageType.AppendResponse, From = follower, To = leader, Term = term, Index = last + 1000 });
        Assert.True(cluster[leader].Node.Tracker.Progress[follower].Match <= last);
        cluster.Stabilize();
        foreach (var host in cluster.Nodes.Values) host.Node.AssertInvariants();
    }

    /// <summary>
    /// Genuine traffic of a 3-node cluster under loss, reordering and duplication always passes the validator;
    /// structurally broken copies of it never do; the cluster stays safe.
    /// </summary>
    [Property(MaxTest = 40, Replay = "(20261202,1)")]
    public void GenuineTrafficPassesAndBrokenCopiesAreRefused(ulong seed)
    {
        var random = new DeterministicRandom(seed);
        var cluster = StartCluster(seed);
        var checker = new SafetyChecker(cluster);
        var proposals = 0;
        for (var step = 0; step < 600; step++)
        {
            var ids = cluster.Nodes.Keys.ToArray();
            var id = ids[random.NextInt32(ids.Length)];
            switch (random.NextInt32(100))
            {
                case < 15:
                    cluster.Tick(id, 1);
                    break;
                case < 60 when cluster.Network.Count > 0:
                {
                    var index = random.Chance(0.7) ? 0 : random.NextInt32(cluster.Network.Count);
                    var m = cluster.Network[index];
                    var reason = MessageValidator.Validate(m, self: m.To);
                    Assert.True(reason is null, $"seed {seed}: genuine {m} refused: {reason}");
                    if (Break(m, random) is { } broken)
                        Assert.True(MessageValidator.Validate(broken, self: m.To) is not null, $"seed {seed}: broken {broken} passed");
                    if (random.Chance(0.1)) cluster.Network.Add(m); // duplicated, delivered late
                    cluster.DeliverAt(index);
                    break;
                }
                case < 65 when cluster.Network.Count > 0:
                    cluster.Network.RemoveAt(random.NextInt32(cluster.Network.Count));
                    break;
                case < 85:
                    cluster.ProcessReady(id);
                    break;
                default:
                    cluster[id].Node.Propose(Encoding.UTF8.GetBytes($"v{proposals++}"));
                    break;
            }
            checker.CheckStep();
        }
        checker.CheckLogMatching();
    }

    /// <summary>
    /// Arbitrary messages (small numbers, so they often look plausible) that pass the validator never make a node of
    /// a running cluster throw or break its own invariants. No safety claim: a well-formed lie is beyond Raft's model.
    /// </summary>
    [Property(MaxTest = 40, Replay = "(20261203,1)")]
    public void NothingThatPassesMakesANodeThrow(ulong seed)
    {
        var random = new DeterministicRandom(seed);
        var cluster = StartCluster(seed);
        for (var step = 0; step < 400; step++)
        {
            var ids = cluster.Nodes.Keys.ToArray();
            var to = ids[random.NextInt32(ids.Length)];
            if (random.Chance(0.5))
            {
                var m = RandomMessage(random, to);
                if (MessageValidator.Validate(m, self: to) is null) cluster.StepInto(m);
            }
            else if (random.Chance(0.3))
            {
                cluster.Tick(to, 1);
            }
            else if (random.Chance(0.3))
            {
                cluster[to].Node.Propose(new byte[] { (byte)step });
            }
            else
            {
                cluster.ProcessReady(to);
                if (cluster.Network.Count > 0) cluster.DeliverAt(0);
            }
        }
    }

    private static ClusterDriver StartCluster(ulong seed)
    {
        var cluster = new ClusterDriver(seed);
        foreach (var id in new ulong[] { 1, 2, 3 })
        {
            cluster.AddNode(id, Voters, o => o with
            {
                PreVote = true, CheckQuorum = true, ElectionTimeoutTicks = 5, MaxInflightMessages = 4,
                MaxSizePerMessageBytes = 64, SnapshotChunkBytes = 32,
            });
        }
        cluster[1].Node.Campaign();
        cluster.Stabilize();
        return cluster;
    }

    private static Message RandomMessage(DeterministicRandom random, ulong to)
    {
        ulong Small() => (ulong)random.NextInt64(12);
        var type = (MessageType)random.NextInt32(Enum.GetValues<MessageType>().Length);
        var from = (ulong)random.NextInt64(1, 4);
        var term = Small();
        var index = Small();
        var entries = new List<Entry>();
        if (type is MessageType.Append or MessageType.Propose)
        {
            var count = random.NextInt32(4);
            var entryTerm = random.Chance(0.5) ? term : Small();
            for (var i = 0; i < count; i++)
                entries.Add(Entry.Normal(random.Chance(0.9) ? index + 1 + (ulong)i : Small(), entryTerm, new byte[] { (byte)i }));
        }
        SnapshotChunk? chunk = null;
        if (type == MessageType.Snapshot)
        {
            var total = (ulong)random.NextInt64(0, 64);
            var offset = random.Chance(0.8) ? 0 : Small();
            var length = (int)Math.Min(total - Math.Min(offset, total), (ulong)random.NextInt64(0, 40));
            // Newlines: the harness's state machine reads them as an empty image (the application's own decoding of a
            // snapshot is not what this test is about).
            var data = Enumerable.Repeat((byte)'\n', length).ToArray();
            chunk = new SnapshotChunk(new SnapshotMetadata(Small() + 1, Math.Max(1, term), Voters), offset, total, data);
        }
        return new Message
        {
            Type = type, From = from, To = to, Term = term, Index = index, LogTerm = random.Chance(0.5) ? Small() : Math.Min(term, Small()),
            Commit = random.Chance(0.5) ? Small() : (ulong)random.NextInt64(long.MaxValue), Reject = random.Chance(0.3),
            RejectHint = Small(), Context = Small(), Entries = entries, Snapshot = chunk, LeaderTransfer = random.Chance(0.1),
        };
    }

    // A copy of a genuine message with one structural defect the validator must catch, or null when the message has
    // no field that defect applies to.
    private static Message? Break(Message m, DeterministicRandom random)
    {
        switch (random.NextInt32(6))
        {
            case 0: return m with { From = 0 };
            case 1: return m with { To = m.From };
            case 2 when m.Term > 0 && m.Type is not (MessageType.Propose or MessageType.ReadIndex): return m with { LogTerm = m.Term + 1 + (ulong)random.NextInt64(5) };
            case 3 when m.Type == MessageType.Append && m.Entries.Count > 1:
            {
                var entries = m.Entries.ToArray();
                (entries[0], entries[^1]) = (entries[^1], entries[0]);
                return m with { Entries = entries };
            }
            case 4 when m.Type == MessageType.Append && m.Entries.Count > 0:
            {
                var entries = m.Entries.ToArray();
                entries[^1] = entries[^1] with { Term = m.Term + 1 };
                return m with { Entries = entries };
            }
            case 5 when m.Snapshot is { } chunk:
                return m with { Snapshot = chunk with { Offset = chunk.TotalBytes + 1 } };
            case 5 when m.Type is not (MessageType.Append or MessageType.Propose):
                return m with { Entries = [Entry.Normal(1, 1, new byte[] { 1 })] };
            default: return null;
        }
    }
}
