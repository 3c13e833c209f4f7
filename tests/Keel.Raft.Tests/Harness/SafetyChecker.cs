using Keel.Core;

namespace Keel.Raft.Tests.Harness;

/// <summary>
/// Checks Raft's safety properties (Raft figure 3) over a <see cref="ClusterDriver"/> as it runs: election safety (at
/// most one leader per term), log matching, leader completeness, and state machine safety (every node applies the
/// same entry at each index; no committed entry is ever lost or changed). Throws <see cref="InvariantViolationException"/>.
/// </summary>
public sealed class SafetyChecker
{
    private readonly ClusterDriver _cluster;
    private readonly Dictionary<ulong, ulong> _leaderOfTerm = [];
    private readonly Dictionary<ulong, (ulong Term, byte[] Data)> _committed = [];
    private readonly Dictionary<ulong, ulong> _checkedCommit = [];
    private readonly Dictionary<ulong, ulong> _lastApplied = [];
    private readonly Dictionary<ulong, (RaftRole Role, ulong Term)> _lastRole = [];

    public SafetyChecker(ClusterDriver cluster)
    {
        _cluster = cluster;
        cluster.OnApply = OnApply;
    }

    public ulong MaxCommitted { get; private set; }

    private void OnApply(NodeHost host, Entry entry)
    {
        // Applies are consecutive, except after a snapshot restore or a restart (which replays from the snapshot).
        var last = _lastApplied.GetValueOrDefault(host.Id);
        Invariant.Check(entry.Index == last + 1 || entry.Index <= host.Storage.Snapshot.Metadata.Index + 1 || last == 0 || entry.Index > last,
            $"node {host.Id} applied {entry.Index} after {last}");
        _lastApplied[host.Id] = entry.Index;
        Record(entry, $"applied by {host.Id}");
    }

    private void Record(Entry entry, string what)
    {
        var data = entry.Data.ToArray();
        if (_committed.TryGetValue(entry.Index, out var known))
        {
            Invariant.Check(known.Term == entry.Term && known.Data.AsSpan().SequenceEqual(data),
                $"state machine safety: entry {entry.Index} {what} has term {entry.Term}, but {known.Term} was committed there");
        }
        else
        {
            _committed[entry.Index] = (entry.Term, data);
        }
        if (entry.Index > MaxCommitted) MaxCommitted = entry.Index;
    }

    /// <summary>Cheap checks after every step.</summary>
    public void CheckStep()
    {
        foreach (var (id, host) in _cluster.Nodes)
        {
            var node = host.Node;
            if (node.Role == RaftRole.Leader)
            {
                if (_leaderOfTerm.TryGetValue(node.Term, out var leader))
                    Invariant.Check(leader == id, $"election safety: {leader} and {id} both led term {node.Term}");
                else _leaderOfTerm[node.Term] = id;
                var before = _lastRole.GetValueOrDefault(id);
                if (before.Role != RaftRole.Leader || before.Term != node.Term) CheckLeaderCompleteness(host);
            }
            _lastRole[id] = (node.Role, node.Term);
            // Everything a node considers committed joins the global record, which must never disagree.
            var from = Math.Max(_checkedCommit.GetValueOrDefault(id), node.Log.FirstIndex - 1);
            var to = node.Log.Committed;
            if (to > from)
            {
                var entries = new List<Entry>();
                var status = node.Log.TryGetEntries(from + 1, to + 1, long.MaxValue, entries);
                if (status == StorageStatus.Ok) foreach (var entry in entries) Record(entry, $"committed at {id}");
                _checkedCommit[id] = to;
            }
        }
    }

    /// <summary>A new leader holds every entry committed before it (Raft 5.4, leader completeness).</summary>
    public void CheckLeaderCompleteness(NodeHost host)
    {
        var log = host.Node.Log;
        foreach (var (index, (term, _)) in _committed)
        {
            if (index < log.FirstIndex || term > host.Node.Term) continue; // compacted into its snapshot
            var status = log.TryGetTerm(index, out var leaderTerm);
            Invariant.Check(status == StorageStatus.Ok && leaderTerm == term,
                $"leader completeness: leader {host.Id} of term {host.Node.Term} lacks committed entry {term}/{index} (has {leaderTerm}, {status})");
        }
    }

    /// <summary>Log matching (Raft 5.3) between every pair of nodes: same index and term means same prefix.</summary>
    public void CheckLogMatching()
    {
        var logs = _cluster.Nodes.Values.Select(h => (h.Id, Entries: Snapshot(h.Node.Log))).ToArray();
        for (var a = 0; a < logs.Length; a++)
        {
            for (var b = a + 1; b < logs.Length; b++)
            {
                var (first, second) = (logs[a].Entries, logs[b].Entries);
                ulong highestMatch = 0;
                foreach (var (index, entry) in first)
                {
                    if (second.TryGetValue(index, out var other) && other.Term == entry.Term && index > highestMatch) highestMatch = index;
                }
                foreach (var (index, entry) in first)
                {
                    if (index > highestMatch || !second.TryGetValue(index, out var other)) continue;
                    Invariant.Check(other.Term == entry.Term && other.Data.Span.SequenceEqual(entry.Data.Span),
                        $"log matching: {logs[a].Id} and {logs[b].Id} agree at {highestMatch} but differ at {index}");
                }
            }
        }
    }

    private static Dictionary<ulong, Entry> Snapshot(RaftLog log)
    {
        var entries = new List<Entry>();
        log.TryGetEntries(log.FirstIndex, log.LastIndex + 1, long.MaxValue, entries);
        return entries.ToDictionary(e => e.Index);
    }
}
