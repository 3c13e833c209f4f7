using Keel.Core;
using Keel.Gossip;

namespace Keel.Gossip.Tests;

/// <summary>
/// A deterministic in-memory cluster for tests: every message goes through the real codec and HMAC envelope, with a
/// fixed latency, optional link drops, crashes and pauses. Time advances in 10 ms steps.
/// </summary>
internal sealed class TestCluster
{
    public static readonly byte[] Key = "keel-gossip-test-key-0123456789a"u8.ToArray();

    private readonly SortedDictionary<ulong, Node> _nodes = [];
    private readonly List<(long AtMs, long Order, ulong From, ulong To, byte[] Packet)> _inFlight = [];
    private readonly DeterministicRandom _random;
    private long _order;

    public sealed class Node
    {
        public required SwimMember Member;
        public required GossipSecureChannel Channel;
        public bool Crashed;
        public long PausedUntilMs;
    }

    public TestCluster(ulong seed, GossipOptions options)
    {
        _random = new DeterministicRandom(seed);
        Options = options;
    }

    public GossipOptions Options { get; }
    public long NowMs { get; private set; }
    public long LatencyMs { get; set; } = 5;
    public double LossRate { get; set; }
    public Func<ulong, ulong, bool>? DropLink { get; set; }
    public long PacketsSent { get; private set; }
    public long BytesSent { get; private set; }
    public int LargestPacketBytes { get; private set; }
    public IEnumerable<Node> Nodes => _nodes.Values;
    public Node this[ulong id] => _nodes[id];

    public Node Add(ulong id, ulong? seedId = null, MemberTags? tags = null)
    {
        var member = new SwimMember(id, Options, _random.Split("member", (long)id), NowMs, tags);
        var node = new Node { Member = member, Channel = new GossipSecureChannel(id, new GossipKeyring(Key), 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(id) << 40 ^ (ulong)(1)))) };
        _nodes.Add(id, node);
        if (seedId is { } s)
        {
            var outbox = new List<OutboundMessage>();
            member.Join(s, NowMs, outbox);
            Send(node, outbox);
        }
        return node;
    }

    /// <summary>Builds n members, all joining member 1, and runs until they know each other.</summary>
    public static TestCluster Converged(int n, ulong seed, GossipOptions? options = null)
    {
        var cluster = new TestCluster(seed, options ?? new GossipOptions());
        cluster.Add(1);
        for (ulong id = 2; id <= (ulong)n; id++) cluster.Add(id, 1);
        cluster.RunUntil(() => cluster.Nodes.All(x => x.Member.LiveCount == n), 120_000);
        return cluster;
    }

    public void Inject(ulong from, ulong to, byte[] packet) =>
        _inFlight.Add((NowMs + LatencyMs, _order++, from, to, packet));

    /// <summary>Hands a message straight to a member's core (as if it had arrived authenticated) and sends its replies.</summary>
    public void Deliver(ulong from, ulong to, GossipMessage message)
    {
        var outbox = new List<OutboundMessage>();
        _nodes[to].Member.Receive(from, message, NowMs, outbox);
        Send(_nodes[to], outbox);
    }

    public void Run(long durationMs)
    {
        var end = NowMs + durationMs;
        while (NowMs < end) Step();
    }

    public bool RunUntil(Func<bool> condition, long maxMs)
    {
        var end = NowMs + maxMs;
        while (NowMs < end)
        {
            if (condition()) return true;
            Step();
        }
        return condition();
    }

    private void Step()
    {
        NowMs += 10;
        _inFlight.Sort((a, b) => a.AtMs != b.AtMs ? a.AtMs.CompareTo(b.AtMs) : a.Order.CompareTo(b.Order));
        var due = new List<(long AtMs, long Order, ulong From, ulong To, byte[] Packet)>();
        for (var i = 0; i < _inFlight.Count && _inFlight[i].AtMs <= NowMs;)
        {
            var p = _inFlight[i];
            var target = _nodes.GetValueOrDefault(p.To);
            if (target is not null && target.PausedUntilMs > NowMs) { i++; continue; } // waits in the socket buffer
            due.Add(p);
            _inFlight.RemoveAt(i);
        }
        foreach (var p in due)
        {
            if (!_nodes.TryGetValue(p.To, out var node) || node.Crashed) continue;
            if (node.Channel.Open(p.Packet, out var sender, out var message) != OpenOutcome.Accepted) continue;
            var outbox = new List<OutboundMessage>();
            node.Member.Receive(sender, message!, NowMs, outbox);
            Send(node, outbox);
        }
        foreach (var node in _nodes.Values)
        {
            if (node.Crashed || node.PausedUntilMs > NowMs) continue;
            var outbox = new List<OutboundMessage>();
            node.Member.Tick(NowMs, outbox);
            Send(node, outbox);
            node.Member.AssertInvariants();
        }
    }

    private void Send(Node from, List<OutboundMessage> outbox)
    {
        foreach (var m in outbox)
        {
            var packet = from.Channel.Seal(m.Message);
            if (!m.Message.IsStream)
            {
                Invariant.Check(packet.Length <= Options.MaxMessageBytes, "packets respect the size limit");
                LargestPacketBytes = Math.Max(LargestPacketBytes, packet.Length);
            }
            PacketsSent++;
            BytesSent += packet.Length;
            if (DropLink?.Invoke(from.Member.SelfId, m.To) == true) continue;
            if (LossRate > 0 && _random.Chance(LossRate)) continue;
            _inFlight.Add((NowMs + LatencyMs, _order++, from.Member.SelfId, m.To, packet));
        }
    }

    public bool AllSee(ulong id, MemberStatus status, bool includeSelf = false) =>
        _nodes.Values.Where(n => !n.Crashed && !n.Member.HasLeft && (includeSelf || n.Member.SelfId != id))
            .All(n => n.Member.Find(id, NowMs)?.Status == status);

    public int CountSeeing(ulong id, MemberStatus status) =>
        _nodes.Values.Count(n => !n.Crashed && n.Member.SelfId != id && n.Member.Find(id, NowMs)?.Status == status);
}
