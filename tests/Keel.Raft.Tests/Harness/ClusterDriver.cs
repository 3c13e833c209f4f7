using System.Text;
using Keel.Core;
using Keel.Quorum;

namespace Keel.Raft.Tests.Harness;

/// <summary>One node of the test cluster: the Raft core, its in-memory storage and a tiny state machine.</summary>
public sealed class NodeHost
{
    public NodeHost(ulong id, RaftOptions options, MemoryRaftStorage storage)
    {
        Id = id;
        Options = options;
        Storage = storage;
        Node = new RaftNode(options, storage);
    }

    public ulong Id { get; }
    public RaftOptions Options { get; private set; }
    public MemoryRaftStorage Storage { get; }
    public RaftNode Node { get; private set; }

    /// <summary>The state machine: applied normal entries' payloads, in order, keyed by index.</summary>
    public SortedDictionary<ulong, string> State { get; private set; } = [];
    public ulong AppliedIndex { get; private set; }
    public List<ReadState> ReadStates { get; } = [];
    public List<ProposalOutcome> Outcomes { get; } = [];

    /// <summary>Readies taken but not yet durable (asynchronous storage); lost in a crash.</summary>
    public Queue<Ready> PendingReadies { get; } = new();

    public void Apply(Entry entry)
    {
        if (entry.Type == EntryType.Normal && entry.Data.Length > 0) State[entry.Index] = Encoding.UTF8.GetString(entry.Data.Span);
        AppliedIndex = entry.Index;
    }

    /// <summary>
    /// Folds applied entries up to <paramref name="index"/> out of memory, as a real state machine does once they are
    /// in a snapshot (used by tests that measure memory over long runs).
    /// </summary>
    public void ForgetThrough(ulong index)
    {
        while (State.Count > 0 && State.First().Key <= index) State.Remove(State.First().Key);
        Outcomes.Clear();
        ReadStates.Clear();
    }

    /// <summary>The state machine image as of <paramref name="index"/> (which must be applied).</summary>
    public byte[] SnapshotData(ulong index) =>
        Encoding.UTF8.GetBytes(string.Join('\n', State.Where(kv => kv.Key <= index).Select(kv => $"{kv.Key}={kv.Value}")));

    public void RestoreFrom(Snapshot snapshot)
    {
        State = [];
        var text = Encoding.UTF8.GetString(snapshot.Data.Span);
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = line.IndexOf('=');
            State[ulong.Parse(line[..eq])] = line[(eq + 1)..];
        }
        AppliedIndex = snapshot.Metadata.Index;
    }

    /// <summary>Crash and restart from storage: everything volatile is gone.</summary>
    public void Restart(DeterministicRandom random)
    {
        PendingReadies.Clear();
        var snapshot = Storage.Snapshot;
        RestoreFrom(snapshot);
        Options = Options with { Random = random, AppliedIndex = 0 };
        Node = new RaftNode(Options, Storage);
        // The state machine is volatile: it replays the committed log from the snapshot on.
    }
}

/// <summary>
/// A deterministic in-memory cluster driver: hosts nodes, a message network with partitions, and the Ready loop
/// (persist, send, apply, advance). Kept small and free of test-framework types so it can move onto Keel.Simulation.
/// </summary>
public sealed class ClusterDriver
{
    private readonly HashSet<(ulong From, ulong To)> _blocked = [];

    public ClusterDriver(ulong seed) => Random = new DeterministicRandom(seed);

    public DeterministicRandom Random { get; }
    public SortedDictionary<ulong, NodeHost> Nodes { get; } = [];

    /// <summary>Messages sent and not yet delivered, in send order.</summary>
    public List<Message> Network { get; } = [];

    /// <summary>Receives a line for each thing that happened, when set.</summary>
    public Action<string>? Trace { get; set; }

    /// <summary>Observes every committed entry as it is applied (for checkers).</summary>
    public Action<NodeHost, Entry>? OnApply { get; set; }

    public NodeHost AddNode(ulong id, Membership bootstrap, Func<RaftOptions, RaftOptions>? configure = null)
    {
        var options = new RaftOptions { Id = id, Random = Random.Split("node", (long)id) };
        if (configure is not null) options = configure(options);
        var storage = new MemoryRaftStorage(bootstrap);
        // Like etcd's interaction tests: members of the initial configuration start from a snapshot at index 1 that
        // holds it, so members added later learn the configuration from a snapshot, not from a log they never had.
        if (bootstrap.Voters.AllVoters.Count > 0)
            storage.ApplySnapshot(new Snapshot(new SnapshotMetadata(1, 1, bootstrap), ReadOnlyMemory<byte>.Empty));
        var host = new NodeHost(id, options, storage);
        Nodes.Add(id, host);
        return host;
    }

    public NodeHost this[ulong id] => Nodes[id];

    public bool IsBlocked(ulong from, ulong to) => _blocked.Contains((from, to));

    /// <summary>Cuts every link between <paramref name="group"/> and the other nodes.</summary>
    public void Partition(IReadOnlyCollection<ulong> group)
    {
        foreach (var a in group)
        {
            foreach (var b in Nodes.Keys)
            {
                if (group.Contains(b)) continue;
                _blocked.Add((a, b));
                _blocked.Add((b, a));
            }
        }
    }

    public void Heal() => _blocked.Clear();

    /// <summary>
    /// When set, storage writes complete later (<see cref="CompletePersistence"/>), as with etcd's AsyncStorageWrites:
    /// messages that may go early are sent when the Ready is taken, the rest only once its writes are durable.
    /// </summary>
    public bool AsyncStorage { get; set; }

    /// <summary>Takes one Ready of a node; with synchronous storage also persists, applies and advances it.</summary>
    public bool ProcessReady(ulong id)
    {
        var host = Nodes[id];
        var node = host.Node;
        if (!node.HasReady()) return false;
        var ready = node.GetReady();
        Trace?.Invoke($"> {id} handling Ready");
        if (ready.SoftState is { } soft) Trace?.Invoke($"  State:{soft.Role} Lead:{soft.Leader}");
        if (!AsyncStorage)
        {
            Complete(host, ready);
            return true;
        }
        SendAll(ready.Messages);
        Collect(host, ready);
        host.PendingReadies.Enqueue(ready);
        return true;
    }

    /// <summary>Asynchronous storage: the oldest outstanding Ready of a node becomes durable.</summary>
    public bool CompletePersistence(ulong id)
    {
        var host = Nodes[id];
        if (host.PendingReadies.Count == 0) return false;
        var ready = host.PendingReadies.Dequeue();
        Trace?.Invoke($"> {id} persisted a Ready");
        Persist(host, ready);
        SendAll(ready.MessagesAfterPersist);
        Apply(host, ready);
        host.Node.Advance(ready);
        host.Node.AssertInvariants();
        host.Storage.AssertInvariants();
        return true;
    }

    private void Complete(NodeHost host, Ready ready)
    {
        Persist(host, ready);
        if (ready.Messages.Count > 0 || ready.MessagesAfterPersist.Count > 0)
        {
            Trace?.Invoke("  Messages:");
            SendAll(ready.Messages);
            SendAll(ready.MessagesAfterPersist);
        }
        Apply(host, ready);
        Collect(host, ready);
        host.Node.Advance(ready);
        host.Node.AssertInvariants();
        host.Storage.AssertInvariants();
    }

    private void Persist(NodeHost host, Ready ready)
    {
        if (ready.HardState is { } hard)
        {
            Trace?.Invoke($"  HardState {hard}");
            host.Storage.SetHardState(hard);
        }
        if (ready.Snapshot is { } snapshot)
        {
            Trace?.Invoke($"  Snapshot Index:{snapshot.Metadata.Index} Term:{snapshot.Metadata.Term} {snapshot.Metadata.Membership}");
            host.Storage.ApplySnapshot(snapshot);
            host.RestoreFrom(snapshot);
        }
        if (ready.Entries.Count > 0)
        {
            Trace?.Invoke("  Entries:");
            foreach (var entry in ready.Entries) Trace?.Invoke("  " + Format.Entry(entry));
            host.Storage.Append(ready.Entries);
        }
    }

    private void SendAll(IReadOnlyList<Message> messages)
    {
        foreach (var m in messages)
        {
            // A link cut at send time loses the message; one cut while it is in flight loses it at delivery.
            if (IsBlocked(m.From, m.To)) Trace?.Invoke("  " + Format.Message(m) + " DROPPED");
            else
            {
                Trace?.Invoke("  " + Format.Message(m));
                Network.Add(m);
            }
        }
    }

    private void Apply(NodeHost host, Ready ready)
    {
        if (ready.CommittedEntries.Count == 0) return;
        Trace?.Invoke("  CommittedEntries:");
        foreach (var entry in ready.CommittedEntries)
        {
            Trace?.Invoke("  " + Format.Entry(entry));
            if (entry.Type == EntryType.ConfChange)
            {
                var change = ConfChangeV2.Decode(entry.Data.Span);
                try
                {
                    var membership = host.Node.ApplyConfChange(change);
                    AppliedConfChanges++;
                    if (membership.IsJoint) AppliedJointConfigs++;
                    Trace?.Invoke($"  INFO {host.Id} switched to configuration {membership}");
                }
                catch (ConfigurationChangeException e)
                {
                    Trace?.Invoke($"  INFO {host.Id} refused configuration change {change}: {e.Message}");
                }
            }
            host.Apply(entry);
            OnApply?.Invoke(host, entry);
        }
    }

    private void Collect(NodeHost host, Ready ready)
    {
        foreach (var read in ready.ReadStates)
        {
            Trace?.Invoke($"  ReadState Request:{read.RequestId} Index:{read.Index} {read.Outcome}");
            host.ReadStates.Add(read);
        }
        foreach (var outcome in ready.ProposalOutcomes)
        {
            Trace?.Invoke($"  Proposal {outcome.Term}/{outcome.Index} {outcome.Status}");
            host.Outcomes.Add(outcome);
        }
    }

    /// <summary>Delivers the queued messages addressed to <paramref name="id"/> (all, in order); blocked ones are dropped.</summary>
    public int Deliver(ulong id, bool drop = false)
    {
        var batch = Network.Where(m => m.To == id).ToList();
        if (batch.Count == 0) return 0;
        Network.RemoveAll(m => m.To == id);
        Trace?.Invoke(drop ? $"> {id} dropping messages" : $"> {id} receiving messages");
        foreach (var m in batch)
        {
            if (drop || IsBlocked(m.From, m.To) || !Nodes.ContainsKey(m.To))
            {
                Trace?.Invoke("  " + Format.Message(m) + " DROPPED");
                continue;
            }
            Trace?.Invoke("  " + Format.Message(m));
            StepInto(m);
        }
        return batch.Count;
    }

    /// <summary>Delivers (or, across a cut link, drops) the in-flight message at <paramref name="index"/>: out of order.</summary>
    public void DeliverAt(int index)
    {
        var m = Network[index];
        Network.RemoveAt(index);
        if (IsBlocked(m.From, m.To) || !Nodes.ContainsKey(m.To)) return;
        StepInto(m);
    }

    /// <summary>Configuration changes applied (on any node), and how many of them entered a joint configuration.</summary>
    public int AppliedConfChanges { get; private set; }

    /// <summary>Applied changes that resulted in a joint configuration.</summary>
    public int AppliedJointConfigs { get; private set; }

    /// <summary>Messages stepped into nodes, by type (to check that a randomized run exercised each path).</summary>
    public Dictionary<MessageType, int> Delivered { get; } = [];

    public void StepInto(Message m)
    {
        Delivered[m.Type] = Delivered.GetValueOrDefault(m.Type) + 1;
        var host = Nodes[m.To];
        var before = (host.Node.Role, host.Node.Term, host.Node.Leader);
        host.Node.Step(m);
        host.Node.AssertInvariants();
        ReportTransition(host, before);
    }

    public void ReportTransition(NodeHost host, (RaftRole Role, ulong Term, ulong Leader) before)
    {
        var node = host.Node;
        if (node.Role != before.Role || node.Term != before.Term)
            Trace?.Invoke($"  INFO {host.Id} is {node.Role} at term {node.Term}" + (node.Leader != 0 ? $" (leader {node.Leader})" : ""));
    }

    public void Tick(ulong id, int ticks)
    {
        var host = Nodes[id];
        for (var i = 0; i < ticks; i++)
        {
            var before = (host.Node.Role, host.Node.Term, host.Node.Leader);
            host.Node.Tick();
            host.Node.AssertInvariants();
            ReportTransition(host, before);
        }
    }

    /// <summary>Processes readies and delivers messages among <paramref name="ids"/> until nothing moves.</summary>
    public void Stabilize(IReadOnlyCollection<ulong>? ids = null, int maxRounds = 1000)
    {
        ids ??= Nodes.Keys.ToArray();
        for (var round = 0; round < maxRounds; round++)
        {
            var moved = false;
            foreach (var id in ids) moved |= ProcessReady(id);
            foreach (var id in ids) while (CompletePersistence(id)) moved = true;
            foreach (var id in ids) moved |= Deliver(id) > 0;
            if (!moved) return;
        }
        throw new InvalidOperationException("cluster did not stabilize");
    }
}

/// <summary>Stable text formats for transcripts.</summary>
public static class Format
{
    public static string Entry(Entry e)
    {
        var data = e.Type == EntryType.ConfChange
            ? ConfChangeV2.Decode(e.Data.Span).ToString()
            : $"\"{Encoding.UTF8.GetString(e.Data.Span)}\"";
        return $"{e.Term}/{e.Index} {(e.Type == EntryType.ConfChange ? "EntryConfChangeV2" : "EntryNormal")} {data}";
    }

    public static string Message(Message m)
    {
        var s = $"{m.From}->{m.To} Msg{m.Type} Term:{m.Term}";
        switch (m.Type)
        {
            case MessageType.Append:
                s += $" Log:{m.LogTerm}/{m.Index} Commit:{m.Commit}";
                if (m.Entries.Count > 0) s += " Entries:[" + string.Join(", ", m.Entries.Select(Entry)) + "]";
                break;
            case MessageType.AppendResponse:
                s += m.Reject ? $" Log:{m.LogTerm}/{m.Index} Rejected (Hint: {m.RejectHint})" : $" Log:0/{m.Index}";
                break;
            case MessageType.Vote or MessageType.PreVote:
                s += $" Log:{m.LogTerm}/{m.Index}" + (m.LeaderTransfer ? " Transfer" : "");
                break;
            case MessageType.VoteResponse or MessageType.PreVoteResponse:
                s += m.Reject ? " Rejected" : "";
                break;
            case MessageType.Heartbeat:
                s += $" Commit:{m.Commit}";
                break;
            case MessageType.Snapshot:
                s += $" Snapshot: Index:{m.Snapshot!.Metadata.Index} Term:{m.Snapshot.Metadata.Term} {m.Snapshot.Metadata.Membership} Chunk:[{m.Snapshot.Offset},{m.Snapshot.Offset + (ulong)m.Snapshot.Data.Length})/{m.Snapshot.TotalBytes}";
                break;
            case MessageType.SnapshotResponse:
                s += $" Snapshot:{m.Index} Next:{m.Context}";
                break;
            case MessageType.Propose:
                s += " Entries:[" + string.Join(", ", m.Entries.Select(Entry)) + "]";
                break;
            case MessageType.ReadIndex:
                s += $" Request:{m.Context}";
                break;
            case MessageType.ReadIndexResponse:
                s += $" Request:{m.Context} Index:{m.Index}";
                break;
            case MessageType.TransferLeader:
                s += $" Target:{m.Context}";
                break;
        }
        return s;
    }
}
