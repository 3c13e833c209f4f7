using System.Text;
using System.Text.RegularExpressions;
using Keel.Quorum;

namespace Keel.Raft.Tests.Harness;

/// <summary>
/// Interprets transcript files in the style of etcd-io/raft's <c>testdata/*.txt</c> (datadriven): each block is a
/// command line, a <c>----</c> separator and the expected output, ended by a blank line. Lines starting with '#' are
/// comments. <see cref="Run"/> returns the file as it should be, so a test can compare or rewrite it.
/// </summary>
public sealed partial class TranscriptRunner
{
    private readonly ClusterDriver _cluster = new(seed: 1);
    private readonly StringBuilder _output = new();
    private string _level = "debug";

    public TranscriptRunner() => _cluster.Trace = TraceLine;

    private void TraceLine(string line)
    {
        if (_level == "debug" || (_level == "info" && IsInfo(line))) _output.AppendLine(line);
    }

    private static bool IsInfo(string line) =>
        line.Contains("INFO ", StringComparison.Ordinal) || line.TrimStart().StartsWith("ReadState", StringComparison.Ordinal) ||
        line.TrimStart().StartsWith("Proposal ", StringComparison.Ordinal);

    /// <summary>Runs a transcript and returns it with the actual outputs in place of the expected ones.</summary>
    public static string Run(string text)
    {
        var runner = new TranscriptRunner();
        var lines = text.Replace("\r\n", "\n").Split('\n');
        var result = new StringBuilder();
        var i = 0;
        while (i < lines.Length)
        {
            var line = lines[i];
            if (line.Length == 0 || line.StartsWith('#'))
            {
                result.Append(line).Append('\n');
                i++;
                continue;
            }
            var command = line;
            i++;
            if (i >= lines.Length || lines[i] != "----") throw new FormatException($"expected ---- after '{command}' at line {i}");
            i++;
            while (i < lines.Length && lines[i].Length > 0) i++; // skip the expected output
            var actual = runner.Execute(command);
            result.Append(command).Append('\n').Append("----\n").Append(actual.Length == 0 ? "ok\n" : actual);
            if (i < lines.Length) result.Append('\n');
            i++;
        }
        var output = result.ToString();
        return output.EndsWith("\n\n", StringComparison.Ordinal) ? output[..^1] : output;
    }

    private string Execute(string commandLine)
    {
        _output.Clear();
        var (name, positional, named) = Parse(commandLine);
        switch (name)
        {
            case "add-nodes": AddNodes(int.Parse(positional[0]), named); break;
            case "campaign": Locally(Id(positional[0]), n => n.Campaign()); break;
            case "propose":
                Locally(Id(positional[0]), n => Print(n.Propose(Encoding.UTF8.GetBytes(positional[1]))));
                break;
            case "propose-conf-change":
                Locally(Id(positional[0]), n => Print(n.ProposeConfChange(ParseConfChange(positional.Skip(1), named))));
                break;
            case "read-index": Locally(Id(positional[0]), n => n.ReadIndex(ulong.Parse(positional[1]))); break;
            case "transfer-leadership":
                Locally(ulong.Parse(named["from"]), n => n.TransferLeadership(ulong.Parse(named["to"])));
                break;
            case "process-ready": foreach (var id in Ids(positional)) _cluster.ProcessReady(id); break;
            case "deliver-msgs":
                foreach (var id in Ids(positional)) _cluster.Deliver(id, drop: named.TryGetValue("drop", out var d) && d == "true");
                break;
            case "stabilize": _cluster.Stabilize(Ids(positional)); break;
            case "tick-election": foreach (var id in Ids(positional)) _cluster.Tick(id, _cluster[id].Options.ElectionTimeoutTicks); break;
            case "tick-heartbeat": foreach (var id in Ids(positional)) _cluster.Tick(id, _cluster[id].Options.HeartbeatTicks); break;
            case "tick": _cluster.Tick(Id(positional[0]), int.Parse(positional[1])); break;
            case "partition": _cluster.Partition(positional.Select(ulong.Parse).ToArray()); break;
            case "heal": _cluster.Heal(); break;
            case "compact": Compact(Id(positional[0]), ulong.Parse(positional[1])); break;
            case "restart": Restart(Id(positional[0])); break;
            case "report-unreachable": _cluster[Id(positional[0])].Node.ReportUnreachable(ulong.Parse(positional[1])); break;
            case "raft-state": RaftState(); break;
            case "raft-log": RaftLog(Id(positional[0])); break;
            case "status": Status(Id(positional[0])); break;
            case "app-state": AppState(Ids(positional)); break;
            case "lease":
                foreach (var id in Ids(positional))
                {
                    var n = _cluster[id].Node;
                    _output.AppendLine($"{id}: tick={n.TickCount} lease-expires-at={n.LeaseExpiresAtTick} pending-reads={n.PendingReadCount}");
                }
                break;
            case "log-level": _level = positional[0]; break;
            default: throw new FormatException($"unknown command '{name}'");
        }
        return _output.ToString();
    }

    private void Locally(ulong id, Action<RaftNode> action)
    {
        var host = _cluster[id];
        var before = (host.Node.Role, host.Node.Term, host.Node.Leader);
        action(host.Node);
        host.Node.AssertInvariants();
        _cluster.ReportTransition(host, before);
    }

    private void Print(ProposeResult result) =>
        _output.AppendLine(result.Status switch
        {
            ProposeStatus.Appended => $"appended at {result.Term}/{result.Index}",
            ProposeStatus.Forwarded => $"forwarded to {result.Leader}",
            _ => $"dropped: {result.DropReason}: {result.Detail}",
        });

    private void AddNodes(int count, Dictionary<string, string> named)
    {
        var voters = named.TryGetValue("voters", out var v) ? ParseIds(v) : [];
        var learners = named.TryGetValue("learners", out var l) ? ParseIds(l) : [];
        var bootstrap = new Membership(new JointConfig(new MajorityConfig(voters)), learners, []);
        for (var i = 0; i < count; i++)
        {
            var id = (ulong)_cluster.Nodes.Count + 1;
            var host = _cluster.AddNode(id, bootstrap, o => Configure(o, named));
            _output.AppendLine($"INFO {id} starts as follower at term {host.Node.Term}: {host.Node.Membership}");
        }
    }

    private static RaftOptions Configure(RaftOptions o, Dictionary<string, string> named)
    {
        foreach (var (key, value) in named)
        {
            o = key switch
            {
                "voters" or "learners" => o,
                "prevote" => o with { PreVote = bool.Parse(value) },
                "checkquorum" => o with { CheckQuorum = bool.Parse(value) },
                "election-ticks" => o with { ElectionTimeoutTicks = int.Parse(value) },
                "heartbeat-ticks" => o with { HeartbeatTicks = int.Parse(value) },
                "max-uncommitted-bytes" => o with { MaxUncommittedBytes = long.Parse(value) },
                "max-inflight-msgs" => o with { MaxInflightMessages = int.Parse(value) },
                "max-inflight-bytes" => o with { MaxInflightBytes = long.Parse(value) },
                "max-size-per-msg" => o with { MaxSizePerMessageBytes = long.Parse(value) },
                "snapshot-chunk-bytes" => o with { SnapshotChunkBytes = int.Parse(value) },
                "trailing-entries" => o with { TrailingEntries = ulong.Parse(value) },
                "max-quorum-lag" => o with { MaxQuorumLagEntries = ulong.Parse(value) },
                "read-only" => o with { ReadOnlyMode = value == "lease" ? ReadOnlyMode.LeaseBased : ReadOnlyMode.Safe },
                "max-clock-drift" => o with { MaxClockDriftTicks = int.Parse(value) },
                "step-down-on-removal" => o with { StepDownOnRemoval = bool.Parse(value) },
                _ => throw new FormatException($"unknown option {key}"),
            };
        }
        return o;
    }

    private static ConfChangeV2 ParseConfChange(IEnumerable<string> tokens, Dictionary<string, string> named)
    {
        var transition = named.TryGetValue("transition", out var t)
            ? t switch
            {
                "auto" => ConfChangeTransition.Auto,
                "implicit" => ConfChangeTransition.JointImplicit,
                "explicit" => ConfChangeTransition.JointExplicit,
                _ => throw new FormatException($"unknown transition {t}"),
            }
            : ConfChangeTransition.Auto;
        var changes = new List<ConfigurationChangeItem>();
        foreach (var token in tokens)
        {
            var id = ulong.Parse(token[1..]);
            changes.Add(token[0] switch
            {
                'v' => ConfigurationChangeItem.AddVoter(id),
                'l' => ConfigurationChangeItem.AddLearner(id),
                'r' => ConfigurationChangeItem.Remove(id),
                _ => throw new FormatException($"unknown change {token}"),
            });
        }
        return new ConfChangeV2(transition, changes);
    }

    private void Compact(ulong id, ulong index)
    {
        var host = _cluster[id];
        var snapshotIndex = Math.Min(index, host.AppliedIndex);
        if (snapshotIndex > host.Storage.Snapshot.Metadata.Index)
            host.Storage.CreateSnapshot(snapshotIndex, host.Node.Membership, host.SnapshotData(snapshotIndex));
        var compacted = host.Node.Compact(index);
        _output.AppendLine($"snapshot at {host.Storage.Snapshot.Metadata.Index}, log compacted to {compacted}, first index {host.Storage.FirstIndex}");
    }

    private void Restart(ulong id)
    {
        var host = _cluster[id];
        host.Restart(_cluster.Random.Split("restart", (long)id));
        _output.AppendLine($"INFO {id} restarted: {host.Node}");
    }

    private void RaftState()
    {
        foreach (var (id, host) in _cluster.Nodes)
        {
            var n = host.Node;
            var kind = n.Tracker.IsVoter(id) ? "Voter" : n.Membership.IsLearner(id) ? "Learner" : "NotMember";
            _output.AppendLine($"{id}: {n.Role} ({kind}) Term:{n.Term} Lead:{n.Leader} Commit:{n.Log.Committed} Applied:{n.Log.Applied} Last:{n.Log.LastIndex}");
        }
    }

    private void RaftLog(ulong id)
    {
        var log = _cluster[id].Node.Log;
        var entries = new List<Entry>();
        log.TryGetEntries(log.FirstIndex, log.LastIndex + 1, long.MaxValue, entries);
        if (entries.Count == 0) _output.AppendLine($"log is empty: first index={log.FirstIndex}, last index={log.LastIndex}");
        foreach (var entry in entries) _output.AppendLine(Format.Entry(entry));
    }

    private void Status(ulong id)
    {
        var node = _cluster[id].Node;
        foreach (var (peer, pr) in node.Tracker.Progress) _output.AppendLine($"{peer}: {pr}");
    }

    private void AppState(IReadOnlyCollection<ulong> ids)
    {
        foreach (var id in ids)
        {
            var host = _cluster[id];
            _output.AppendLine($"{id}: applied={host.AppliedIndex} [{string.Join(' ', host.State.Values)}]");
        }
    }

    private ulong Id(string text) => ulong.Parse(text);

    private IReadOnlyCollection<ulong> Ids(List<string> positional) =>
        positional.Count == 0 ? _cluster.Nodes.Keys.ToArray() : positional.Select(ulong.Parse).ToArray();

    private static ulong[] ParseIds(string text) =>
        text.Trim('(', ')').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ulong.Parse).ToArray();

    private static (string Name, List<string> Positional, Dictionary<string, string> Named) Parse(string line)
    {
        var tokens = TokenRegex().Matches(line).Select(m => m.Value).ToList();
        var positional = new List<string>();
        var named = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var token in tokens.Skip(1))
        {
            var eq = token.IndexOf('=');
            if (eq > 0) named[token[..eq]] = token[(eq + 1)..];
            else positional.Add(token);
        }
        return (tokens[0], positional, named);
    }

    [GeneratedRegex(@"[^\s=]+=\([^)]*\)|\S+")]
    private static partial Regex TokenRegex();
}
