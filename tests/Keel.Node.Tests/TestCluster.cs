using System.Text;
using Keel.Core;
using Keel.Raft;
using Keel.Simulation;

namespace Keel.Node.Tests;

/// <summary>
/// A few KeelNodes wired together in memory for unit tests: messages are delivered in order, synchronously, unless a
/// node is isolated; time advances in steps of <see cref="StepMs"/> for every node. Deterministic.
/// </summary>
internal sealed class TestCluster
{
    private sealed class Idle : ISimProcess
    {
        public void Start(NodeContext context) { }
        public void OnMessage(NodeContext context, int from, object message) { }
        public void OnTimer(NodeContext context, long timerId, int tag) { }
    }

    public const long StartWallMs = 1_767_225_600_000;
    public long StepMs { get; }
    public long NowMs { get; private set; }
    public SortedDictionary<ulong, KeelNode> Nodes { get; } = [];
    public Dictionary<ulong, SimStorageDirectory> Directories { get; } = [];
    public HashSet<ulong> Isolated { get; } = [];
    /// <summary>Per node, how far its wall clock is off (a clock jump); monotonic time is shared.</summary>
    public Dictionary<ulong, long> WallOffsetMs { get; } = [];
    public List<KvResult> Responses { get; } = [];

    /// <summary>Snapshots nodes took in background mode, not yet encoded and written (see <see cref="CompleteSnapshots"/>).</summary>
    public Dictionary<ulong, SnapshotToPersist> PendingSnapshots { get; } = [];
    private readonly Func<ulong, KeelNodeOptions> _options;

    public TestCluster(ulong[] voters, long tickMs = 10, Func<KeelNodeOptions, KeelNodeOptions>? configure = null, ulong seed = 1)
    {
        StepMs = tickMs;
        _options = id => (configure ?? (o => o))(new KeelNodeOptions
        {
            NodeId = id, Voters = voters, Random = new DeterministicRandom(seed * 1000 + id), TickMs = tickMs, RequestTimeoutMs = 3_000,
        });
        foreach (var id in voters) Start(id);
    }

    public static SimStorageDirectory NewDirectory(ulong seed) =>
        new(new Keel.Simulation.Simulation(seed).AddNode(_ => new Idle()).Disk, "wal/");

    public KeelNode Start(ulong id, Func<KeelNodeOptions, KeelNodeOptions>? adjust = null)
    {
        if (!Directories.TryGetValue(id, out var directory)) Directories[id] = directory = NewDirectory(id);
        var options = _options(id);
        var node = KeelNode.Open(adjust is null ? options : adjust(options), directory);
        Nodes[id] = node;
        return node;
    }

    public KeelNode Leader => Nodes.Values.Single(n => n.IsLeader && !Isolated.Contains(n.Id));

    public bool HasLeader => Nodes.Values.Count(n => n.IsLeader && !Isolated.Contains(n.Id)) == 1;

    public void Step(long ms)
    {
        for (long t = 0; t < ms; t += StepMs)
        {
            NowMs += StepMs;
            foreach (var node in Nodes.Values) node.Tick(NowMs, StartWallMs + NowMs + WallOffsetMs.GetValueOrDefault(node.Id));
            Deliver();
        }
    }

    /// <summary>Whom each member's transport sends to: its peers as of its previous batch of messages.</summary>
    public Dictionary<ulong, HashSet<ulong>> PeerViews { get; } = [];

    public void Deliver()
    {
        for (var round = 0; round < 1_000; round++)
        {
            var moved = false;
            foreach (var node in Nodes.Values.ToArray())
            {
                var messages = new List<Message>();
                node.Outbox.DrainTo(messages, Responses);
                if (node.Outbox.TakeSnapshotToPersist() is { } snapshot)
                {
                    Assert.False(PendingSnapshots.ContainsKey(node.Id), "one background snapshot at a time");
                    PendingSnapshots[node.Id] = snapshot;
                }
                foreach (var message in messages)
                {
                    moved = true;
                    if (Isolated.Contains(message.From) || Isolated.Contains(message.To)) continue;
                    // As the server's transport: a member sends only to those that were its peers (its member table
                    // and its Raft configuration) when its previous batch of messages went out.
                    if (PeerViews.TryGetValue(node.Id, out var peers) && !peers.Contains(message.To)) continue;
                    if (Nodes.TryGetValue(message.To, out var to)) to.Step(message);
                }
                PeerViews[node.Id] = [.. Nodes.Keys.Where(node.IsPeer)];
            }
            if (!moved) return;
        }
    }

    /// <summary>What a driver does off its loop: encode each pending snapshot, write it, report it durable.</summary>
    public void CompleteSnapshots()
    {
        foreach (var (id, snapshot) in PendingSnapshots.ToArray())
        {
            new Keel.Storage.SnapshotStore(Directories[id]).Save(snapshot.Index, snapshot.Term, snapshot.Data.Span);
            PendingSnapshots.Remove(id);
            Nodes[id].OnSnapshotPersisted(snapshot.Index, snapshot.Term);
        }
        Deliver();
    }

    public void StepUntil(Func<bool> done, long maxMs = 20_000)
    {
        for (long t = 0; t < maxMs && !done(); t += StepMs) Step(StepMs);
        Assert.True(done(), $"condition not reached within {maxMs} ms");
    }

    public KeelNode ElectLeader()
    {
        StepUntil(() => HasLeader);
        return Leader;
    }

    public KvResult Await(ulong requestId, long maxMs = 10_000)
    {
        Deliver();
        StepUntil(() => Responses.Any(r => r.RequestId == requestId), maxMs);
        var result = Responses.Single(r => r.RequestId == requestId);
        Responses.Remove(result);
        return result;
    }

    public KvResult Submit(KeelNode node, ulong requestId, KvCommand command, string? key = null)
    {
        node.Submit(requestId, command, key);
        return Await(requestId);
    }

    public void AssertInvariants()
    {
        foreach (var node in Nodes.Values) node.AssertInvariants();
    }

    public static byte[] B(string text) => Encoding.UTF8.GetBytes(text);
}
