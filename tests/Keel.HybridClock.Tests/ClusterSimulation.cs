using System.Text;

namespace Keel.HybridClock.Tests;

/// <summary>What a simulated driver does next. <see cref="Amount"/> is a duration, a count or a message index.</summary>
internal enum OpKind { Local, Send, Deliver, Advance, StepBack, StepForward, Restart, Burst }

internal readonly record struct Op(OpKind Kind, int Node, int Other, int Amount)
{
    public override string ToString() => Kind switch
    {
        OpKind.Send => $"Send({Node}->{Other})",
        OpKind.Deliver => $"Deliver(#{Amount})",
        OpKind.Advance => $"Advance({Amount}ms)",
        OpKind.StepBack or OpKind.StepForward => $"{Kind}({Node},{Amount}ms)",
        OpKind.Burst => $"Burst({Node},x{Amount})",
        _ => $"{Kind}({Node})",
    };
}

/// <summary>A node's wall clock: a fixed offset from true time and a drift rate in parts per thousand.</summary>
internal sealed record NodeWall(int OffsetMs, int DriftPerMille);

internal sealed record Scenario(NodeWall[] Walls, Op[] Ops)
{
    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append("walls [").AppendJoin(", ", Walls.Select(w => $"{w.OffsetMs:+#;-#;0}ms {w.DriftPerMille:+#;-#;0}‰")).Append("] ops [");
        text.AppendJoin(", ", Ops).Append(']');
        return text.ToString();
    }
}

/// <summary>What happened in a run, so that tests can check the generator reaches the interesting cases.</summary>
internal sealed record SimulationReport(int Events, int Deliveries, long Rejections, long Overflows, int Restarts, long BackwardJumps);

/// <summary>
/// Runs a scenario against real <see cref="HybridLogicalClock"/>s with simulated wall clocks, a network that delivers in any
/// order, and crash-restarts from the persisted upper bound, and checks the HLC laws after every step. Happens-before
/// is tracked independently with vector clocks (Fidge/Mattern), so law (a) is checked for every causal pair, not
/// only for direct send/receive pairs. Throws with a description when a law fails.
/// </summary>
internal static class ClusterSimulation
{
    public static readonly HybridClockOptions Options = new() { MaxOffsetMs = 500, UpperBoundLeadMs = 1000 };

    private sealed class Node(int id, int count)
    {
        public readonly int Id = id;
        public HybridLogicalClock Clock = new(Options);
        public long StepMs;
        public long MaxWallSeenMs = long.MinValue;
        public long DurableUpperBoundMs = -1;
        public HybridTimestamp Last;
        public bool HasIssued;
        public bool JustRestarted;
        public long PriorOverflows;
        public long PriorRejections;
        public long PriorBackwardJumps;
        public readonly int[] VectorClock = new int[count];
        public long Overflows => PriorOverflows + Clock.LogicalOverflowCount;
    }

    private readonly record struct Event(int Node, HybridTimestamp Timestamp, int[] VectorClock);

    private readonly record struct Message(int From, int To, HybridTimestamp Timestamp, int[] VectorClock);

    public static SimulationReport Run(Scenario scenario)
    {
        var n = scenario.Walls.Length;
        var nodes = Enumerable.Range(0, n).Select(i => new Node(i, n)).ToArray();
        var events = new List<Event>();
        var inFlight = new List<Message>();
        long trueMs = 0;
        var deliveries = 0;
        var restarts = 0;
        long expectedRejections = 0;

        long WallOf(Node node)
        {
            var wall = scenario.Walls[node.Id];
            return Generators.BaseWallMs + trueMs + wall.OffsetMs + trueMs * wall.DriftPerMille / 1000 + node.StepMs;
        }

        HybridTimestamp Issue(Node node, long wallMs, HybridTimestamp issued, string what)
        {
            // A driver persists the requested bound before it uses the timestamp (synchronous protocol).
            if (node.Clock.IsUpperBoundPersistPending)
            {
                node.DurableUpperBoundMs = node.Clock.UpperBoundMs;
                node.Clock.UpperBoundPersisted(node.DurableUpperBoundMs);
            }
            if (node.HasIssued && issued <= node.Last)
            {
                var law = node.JustRestarted ? "(c) after a restart" : "(b)";
                throw new Xunit.Sdk.XunitException($"{law} node {node.Id} went backwards on {what}: {node.Last} then {issued}");
            }
            var ceilingMs = node.MaxWallSeenMs + Options.MaxOffsetMs + node.Overflows;
            if (issued.PhysicalMs > ceilingMs)
                throw new Xunit.Sdk.XunitException(
                    $"(d) node {node.Id} issued {issued} on {what}, physical more than max offset ahead of its highest wall {node.MaxWallSeenMs}");
            if (issued.PhysicalMs > node.DurableUpperBoundMs)
                throw new Xunit.Sdk.XunitException($"node {node.Id} would use {issued} above its durable bound {node.DurableUpperBoundMs}");
            node.Clock.AssertInvariants();
            node.Last = issued;
            node.HasIssued = true;
            node.JustRestarted = false;
            return issued;
        }

        long ReadWall(Node node)
        {
            var wall = WallOf(node);
            node.MaxWallSeenMs = Math.Max(node.MaxWallSeenMs, wall);
            return wall;
        }

        void LocalEvent(Node node, string what, bool record)
        {
            var wall = ReadWall(node);
            node.VectorClock[node.Id]++;
            var ts = Issue(node, wall, node.Clock.Now(wall), what);
            if (record) events.Add(new Event(node.Id, ts, (int[])node.VectorClock.Clone()));
        }

        foreach (var op in scenario.Ops)
        {
            var node = nodes[op.Node % n];
            switch (op.Kind)
            {
                case OpKind.Local:
                    LocalEvent(node, "a local event", record: true);
                    break;
                case OpKind.Send:
                    LocalEvent(node, "a send", record: true);
                    inFlight.Add(new Message(node.Id, op.Other % n, node.Last, (int[])node.VectorClock.Clone()));
                    break;
                case OpKind.Burst:
                    for (var i = 0; i < op.Amount; i++) LocalEvent(node, "a burst", record: i == op.Amount - 1);
                    break;
                case OpKind.Deliver:
                {
                    if (inFlight.Count == 0) break;
                    var index = op.Amount % inFlight.Count;
                    var message = inFlight[index];
                    inFlight.RemoveAt(index);
                    var receiver = nodes[message.To];
                    var wall = ReadWall(receiver);
                    var tooFarAhead = message.Timestamp.PhysicalMs - wall > Options.MaxOffsetMs;
                    var accepted = receiver.Clock.TryUpdate(message.Timestamp, wall, out var ts);
                    if (accepted == tooFarAhead)
                        throw new Xunit.Sdk.XunitException(
                            $"node {receiver.Id} {(accepted ? "accepted" : "rejected")} {message.Timestamp} at wall {wall}");
                    if (!accepted)
                    {
                        expectedRejections++;
                        receiver.Clock.AssertInvariants();
                        break; // the driver drops the message: no receive event, no causal edge
                    }
                    for (var i = 0; i < n; i++)
                        receiver.VectorClock[i] = Math.Max(receiver.VectorClock[i], message.VectorClock[i]);
                    receiver.VectorClock[receiver.Id]++;
                    Issue(receiver, wall, ts, $"receiving {message.Timestamp} from node {message.From}");
                    if (ts <= message.Timestamp)
                        throw new Xunit.Sdk.XunitException($"(a) receive {ts} on node {receiver.Id} is not after the send {message.Timestamp}");
                    events.Add(new Event(receiver.Id, ts, (int[])receiver.VectorClock.Clone()));
                    deliveries++;
                    break;
                }
                case OpKind.Advance:
                    trueMs += op.Amount;
                    break;
                case OpKind.StepBack:
                    node.StepMs -= op.Amount;
                    break;
                case OpKind.StepForward:
                    node.StepMs += op.Amount;
                    break;
                case OpKind.Restart:
                {
                    restarts++;
                    node.PriorOverflows += node.Clock.LogicalOverflowCount;
                    node.PriorRejections += node.Clock.RejectedRemoteCount;
                    node.PriorBackwardJumps += node.Clock.BackwardJumpCount;
                    node.Clock = node.DurableUpperBoundMs < 0
                        ? new HybridLogicalClock(Options)
                        : HybridLogicalClock.Restore(Options, node.DurableUpperBoundMs);
                    node.Clock.AssertInvariants();
                    node.JustRestarted = node.HasIssued;
                    // Like CockroachDB's ensureClockMonotonicity: do not serve until the wall passes the bound. The
                    // driver reads its wall while waiting, so those readings count as seen for law (d).
                    long waitMs;
                    while ((waitMs = node.Clock.RestoreWaitMs(ReadWall(node))) > 0) trueMs += waitMs;
                    break;
                }
                default:
                    throw new ArgumentOutOfRangeException(nameof(scenario), op.Kind, "unknown op");
            }
        }

        // (a) for every causal pair, not only direct messages: e happened before f iff vc(e) <= vc(f) and e != f.
        for (var i = 0; i < events.Count; i++)
        {
            for (var j = 0; j < events.Count; j++)
            {
                if (i != j && HappenedBefore(events[i].VectorClock, events[j].VectorClock) && events[i].Timestamp >= events[j].Timestamp)
                    throw new Xunit.Sdk.XunitException(
                        $"(a) event {events[i].Timestamp} on node {events[i].Node} happened before {events[j].Timestamp} on node {events[j].Node}");
            }
        }

        var rejections = nodes.Sum(x => x.PriorRejections + x.Clock.RejectedRemoteCount);
        if (rejections != expectedRejections)
            throw new Xunit.Sdk.XunitException($"clocks counted {rejections} rejections, the network saw {expectedRejections}");
        return new SimulationReport(events.Count, deliveries, rejections, nodes.Sum(x => x.Overflows), restarts,
            nodes.Sum(x => x.PriorBackwardJumps + x.Clock.BackwardJumpCount));
    }

    private static bool HappenedBefore(int[] a, int[] b)
    {
        var strictly = false;
        for (var i = 0; i < a.Length; i++)
        {
            if (a[i] > b[i]) return false;
            if (a[i] < b[i]) strictly = true;
        }
        return strictly;
    }
}
