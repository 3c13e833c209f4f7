using Keel.Core;

namespace Keel.Simulation;

/// <summary>
/// How the simulated network behaves. Latency = <see cref="MinLatencyUs"/> + an exponential tail with mean
/// <see cref="MeanExtraLatencyUs"/>, capped at <see cref="MaxLatencyUs"/>; reordering falls out of that jitter and is
/// strengthened by <see cref="ReorderProbability"/>, which delays a message by up to <see cref="ReorderDelayUs"/>.
/// </summary>
public sealed record NetworkOptions
{
    /// <summary>Smallest one-way latency.</summary>
    public long MinLatencyUs { get; init; } = 100;
    /// <summary>Mean of the exponential part of the latency.</summary>
    public long MeanExtraLatencyUs { get; init; } = 400;
    /// <summary>Latency cap (before clogging and reordering delays).</summary>
    public long MaxLatencyUs { get; init; } = 20_000;
    /// <summary>Probability that a message is lost.</summary>
    public double LossProbability { get; init; }
    /// <summary>Probability that a message is delivered twice.</summary>
    public double DuplicateProbability { get; init; }
    /// <summary>Probability that a message is held back (and so overtaken by later ones).</summary>
    public double ReorderProbability { get; init; }
    /// <summary>How long a reordered message may be held back.</summary>
    public long ReorderDelayUs { get; init; } = 50_000;
}

/// <summary>A message in flight.</summary>
internal sealed record Envelope(int From, int To, object Message, int SizeBytes);

/// <summary>
/// The simulated network: per-link loss, duplication, reordering, latency, symmetric and asymmetric partitions, and
/// clogged links (a link that still works, but slowly). Sending only enqueues a delivery event; nothing is synchronous.
/// </summary>
public sealed class SimNetwork
{
    private readonly Simulation _simulation;
    private readonly DeterministicRandom _random;
    // Memory stays O(nodes + faulty links), so a simulation of 10,000 gossip members does not need 10^8 link objects:
    // symmetric partitions are group labels (messages cross only within a group); one-way blocks and clogs are sparse.
    private readonly List<int> _group = [];
    private readonly Dictionary<(int From, int To), LinkState> _faultyLinks = [];
    private int _nextGroup = 1;

    internal SimNetwork(Simulation simulation, NetworkOptions options, DeterministicRandom random)
    {
        _simulation = simulation;
        Options = options;
        _random = random;
    }

    /// <summary>The current behaviour; may be replaced mid-run (the nemesis raises loss, then heals it).</summary>
    public NetworkOptions Options { get; set; }

    /// <summary>Messages handed to the network.</summary>
    public long SentCount { get; private set; }
    /// <summary>Messages delivered (duplicates counted).</summary>
    public long DeliveredCount { get; private set; }
    /// <summary>Messages dropped by loss or partitions.</summary>
    public long DroppedCount { get; private set; }
    /// <summary>Bytes handed to the network.</summary>
    public long SentBytes { get; private set; }

    internal void OnNodeAdded(int id)
    {
        Invariant.Check(id == _group.Count, "nodes are added with consecutive ids");
        _group.Add(0);
    }

    /// <summary>Blocks the link from <paramref name="from"/> to <paramref name="to"/> only (an asymmetric partition).</summary>
    public void BlockOneWay(int from, int to) => Link(from, to).Blocked = true;

    /// <summary>Blocks both directions between two nodes.</summary>
    public void Block(int a, int b)
    {
        BlockOneWay(a, b);
        BlockOneWay(b, a);
    }

    /// <summary>
    /// Cuts <paramref name="side"/> off from the rest: no message crosses in either direction. Earlier cuts stay, so
    /// repeated partitions can split the cluster into more than two groups.
    /// </summary>
    public void Partition(IReadOnlyCollection<int> side)
    {
        // Nodes of one side that were in the same group stay together; each old group is split by the cut.
        var renamed = new Dictionary<int, int>();
        foreach (var node in side.Order())
        {
            var old = _group[node];
            if (!renamed.TryGetValue(old, out var fresh)) renamed[old] = fresh = _nextGroup++;
            _group[node] = fresh;
        }
    }

    /// <summary>Isolates one node from every other.</summary>
    public void Isolate(int node) => _group[node] = _nextGroup++;

    /// <summary>Clogs the link: messages take <paramref name="extraDelayUs"/> longer.</summary>
    public void Clog(int from, int to, long extraDelayUs) => Link(from, to).ExtraDelayUs = extraDelayUs;

    /// <summary>Removes every partition and clog.</summary>
    public void HealAll()
    {
        for (var i = 0; i < _group.Count; i++) _group[i] = 0;
        _faultyLinks.Clear();
        _simulation.Trace(0x4845414C /* HEAL */);
    }

    /// <summary>True when messages from <paramref name="from"/> to <paramref name="to"/> currently get through.</summary>
    public bool IsConnected(int from, int to) =>
        _group[from] == _group[to] && !(_faultyLinks.TryGetValue((from, to), out var link) && link.Blocked);

    private LinkState Link(int from, int to)
    {
        if (!_faultyLinks.TryGetValue((from, to), out var link)) _faultyLinks[(from, to)] = link = new LinkState();
        return link;
    }

    internal void Send(int from, int to, object message, int sizeBytes)
    {
        Invariant.Check(to >= 0 && to < _group.Count, "message to an unknown node");
        SentCount++;
        SentBytes += sizeBytes;
        if (!IsConnected(from, to) || _random.Chance(Options.LossProbability))
        {
            DroppedCount++;
            return;
        }
        var envelope = new Envelope(from, to, message, sizeBytes);
        var extraDelayUs = _faultyLinks.TryGetValue((from, to), out var link) ? link.ExtraDelayUs : 0;
        ScheduleDelivery(envelope, extraDelayUs);
        if (_random.Chance(Options.DuplicateProbability)) ScheduleDelivery(envelope, extraDelayUs);
    }

    private void ScheduleDelivery(Envelope envelope, long extraDelayUs)
    {
        var options = Options;
        var latencyUs = options.MinLatencyUs + (long)_random.NextExponential(options.MeanExtraLatencyUs);
        latencyUs = Math.Min(latencyUs, options.MaxLatencyUs) + extraDelayUs;
        if (_random.Chance(options.ReorderProbability)) latencyUs += _random.NextInt64(options.ReorderDelayUs);
        _simulation.Schedule(latencyUs, () => Deliver(envelope), "deliver");
    }

    private void Deliver(Envelope envelope)
    {
        // A partition that started while the message was in flight drops it too. A message sent to an earlier
        // incarnation of a restarted node is still delivered, as a stale datagram would be: protocols must cope.
        if (!IsConnected(envelope.From, envelope.To))
        {
            DroppedCount++;
            return;
        }
        DeliveredCount++;
        var node = _simulation.Nodes[envelope.To];
        _simulation.Trace(envelope.From, envelope.To, envelope.SizeBytes);
        node.Dispatch(new ScheduledEvent(EventKind.Deliver, envelope.To, node.Incarnation, 0, envelope, (ulong)envelope.From));
    }

    private sealed class LinkState
    {
        public bool Blocked;
        public long ExtraDelayUs;
    }
}
