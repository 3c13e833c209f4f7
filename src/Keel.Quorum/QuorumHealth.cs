using Keel.Core;

namespace Keel.Quorum;

/// <summary>What the leader currently knows about one voter.</summary>
/// <param name="Id">The voter id.</param>
/// <param name="Reachable">Whether the voter answered recently (the caller decides what recently means).</param>
/// <param name="MatchIndex">Highest log index known to be persisted on the voter.</param>
/// <param name="LastResponseLatencyMs">Round-trip time of the voter's last response, in milliseconds.</param>
public readonly record struct VoterStatus(ulong Id, bool Reachable, ulong MatchIndex, long LastResponseLatencyMs);

/// <summary>
/// A point-in-time view of quorum health, for metrics and dashboards (the seed's "publish real-time quorum health
/// metrics"). Its key figure is <see cref="CommitLatencyBoundMember"/>: every commit waits for the slowest member of
/// the fastest majority, the quorum-th fastest reachable voter, so that member's latency bounds write latency (with 5
/// voters, the 3rd fastest). Build it with <see cref="QuorumHealth.Snapshot(JointConfig, IEnumerable{VoterStatus})"/>.
/// </summary>
public sealed class QuorumHealthSnapshot
{
    internal QuorumHealthSnapshot(int votersTotal, int votersReachable, int quorumSize, bool quorumAvailable,
        int failuresTolerableNow, int votersNeededForQuorum, VoterStatus? commitLatencyBoundMember, ulong committableIndex,
        IReadOnlyList<ulong> unreachableVoters)
    {
        VotersTotal = votersTotal;
        VotersReachable = votersReachable;
        QuorumSize = quorumSize;
        QuorumAvailable = quorumAvailable;
        FailuresTolerableNow = failuresTolerableNow;
        VotersNeededForQuorum = votersNeededForQuorum;
        CommitLatencyBoundMember = commitLatencyBoundMember;
        CommittableIndex = committableIndex;
        UnreachableVoters = unreachableVoters;
        AssertInvariants();
    }

    /// <summary>Distinct voters of the configuration (both halves when joint).</summary>
    public int VotersTotal { get; }

    /// <summary>Voters currently reachable.</summary>
    public int VotersReachable { get; }

    /// <summary>Voters needed for a quorum (of the incoming half; each half needs its own majority when joint).</summary>
    public int QuorumSize { get; }

    /// <summary>Whether the reachable voters form a quorum (of both halves when joint): commits and elections can proceed.</summary>
    public bool QuorumAvailable { get; }

    /// <summary>How many more reachable voters may fail before quorum is lost: reachable - quorum (the smaller over both halves when joint); 0 when unavailable.</summary>
    public int FailuresTolerableNow { get; }

    /// <summary>How many more voters must become reachable to regain quorum; 0 when available.</summary>
    public int VotersNeededForQuorum { get; }

    /// <summary>
    /// The slowest member of the fastest majority: the quorum-th fastest reachable voter (ties by id), whose latency
    /// bounds commit latency. When joint, the slower of the two halves' bounds. Null when quorum is unavailable.
    /// </summary>
    public VoterStatus? CommitLatencyBoundMember { get; }

    /// <summary>The commit latency lower bound in milliseconds, from <see cref="CommitLatencyBoundMember"/>; null when unavailable.</summary>
    public long? CommitLatencyBoundMs => CommitLatencyBoundMember?.LastResponseLatencyMs;

    /// <summary>The highest index a quorum of reachable voters has persisted (unreachable voters count as 0); 0 when unavailable.</summary>
    public ulong CommittableIndex { get; }

    /// <summary>Voters that are unreachable or were not reported, sorted ascending.</summary>
    public IReadOnlyList<ulong> UnreachableVoters { get; }

    /// <summary>A human-readable summary, e.g. "5/5 voters reachable, quorum 3 available, tolerates 2 more failures, commit latency bound by voter 3 (12 ms)".</summary>
    public string Summary
    {
        get
        {
            var text = $"{VotersReachable}/{VotersTotal} voters reachable, quorum {QuorumSize} ";
            if (!QuorumAvailable)
                return text + $"UNAVAILABLE: {VotersNeededForQuorum} more voter{(VotersNeededForQuorum == 1 ? "" : "s")} needed " +
                       $"(unreachable: {string.Join(", ", UnreachableVoters)})";
            text += $"available, tolerates {FailuresTolerableNow} more failure{(FailuresTolerableNow == 1 ? "" : "s")}";
            var bound = CommitLatencyBoundMember!.Value;
            return text + $", commit latency bound by voter {bound.Id} ({bound.LastResponseLatencyMs} ms), committable index {CommittableIndex}";
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Summary;

    /// <summary>Checks the snapshot's consistency; throws <see cref="InvariantViolationException"/> on a bug.</summary>
    public void AssertInvariants()
    {
        Invariant.Check(VotersReachable >= 0 && VotersReachable <= VotersTotal, "reachable voters within 0..total");
        Invariant.Check(UnreachableVoters.Count == VotersTotal - VotersReachable, "unreachable + reachable = total");
        Invariant.Check(QuorumAvailable == CommitLatencyBoundMember.HasValue, "a latency bound exists exactly when quorum is available");
        Invariant.Check(QuorumAvailable ? VotersNeededForQuorum == 0 : FailuresTolerableNow == 0 && VotersNeededForQuorum > 0,
            "available snapshots need nothing more; unavailable ones tolerate nothing");
        Invariant.Check(!QuorumAvailable || VotersReachable >= QuorumSize, "an available quorum has at least quorum-size reachable voters");
        Invariant.Check(QuorumAvailable || CommittableIndex == 0, "nothing is committable without a quorum");
    }
}

/// <summary>Builds <see cref="QuorumHealthSnapshot"/>s from the leader's view of its voters.</summary>
public static class QuorumHealth
{
    /// <summary>Snapshot for a non-joint configuration.</summary>
    /// <exception cref="ArgumentException">A voter is reported twice, or a latency is negative.</exception>
    public static QuorumHealthSnapshot Snapshot(MajorityConfig config, IEnumerable<VoterStatus> statuses) =>
        Snapshot(new JointConfig(config), statuses);

    /// <summary>
    /// Snapshot for a (possibly joint) configuration. Voters missing from <paramref name="statuses"/> count as
    /// unreachable; statuses of non-voters (learners) are ignored.
    /// </summary>
    /// <exception cref="ArgumentException">The configuration has no voters, a voter is reported twice, or a latency is negative.</exception>
    public static QuorumHealthSnapshot Snapshot(JointConfig config, IEnumerable<VoterStatus> statuses)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(statuses);
        if (config.AllVoters.Count == 0)
            throw new ArgumentException("a configuration without voters has no quorum to report on", nameof(config));
        var byId = new Dictionary<ulong, VoterStatus>();
        foreach (var status in statuses)
        {
            if (!config.Contains(status.Id)) continue;
            if (status.LastResponseLatencyMs < 0)
                throw new ArgumentException($"voter {status.Id} has negative latency {status.LastResponseLatencyMs} ms", nameof(statuses));
            if (!byId.TryAdd(status.Id, status))
                throw new ArgumentException($"voter {status.Id} is reported twice", nameof(statuses));
        }

        var reachable = 0;
        var unreachable = new List<ulong>();
        foreach (var id in config.AllVoters)
        {
            if (byId.TryGetValue(id, out var status) && status.Reachable) reachable++;
            else unreachable.Add(id);
        }

        var incoming = Half(config.Incoming, byId);
        var outgoing = Half(config.Outgoing, byId);
        var available = incoming.Available && outgoing.Available;
        var tolerable = available ? Math.Min(incoming.Spare, outgoing.Spare) : 0;
        var needed = available ? 0 : Math.Max(-incoming.Spare, -outgoing.Spare);
        VoterStatus? bound = null;
        if (available)
        {
            bound = incoming.Bound;
            if (outgoing.Bound is { } other && (bound is null || Slower(other, bound.Value))) bound = other;
        }
        var committable = available ? config.CommittedIndex(new ReachableMatchIndexes(byId)) : 0;
        var quorumSize = config.Incoming.Count > 0 ? config.Incoming.QuorumSize : config.Outgoing.QuorumSize;
        return new QuorumHealthSnapshot(config.AllVoters.Count, reachable, quorumSize, available, tolerable, needed, bound,
            committable, unreachable.AsReadOnly());
    }

    private static (bool Available, int Spare, VoterStatus? Bound) Half(MajorityConfig half, Dictionary<ulong, VoterStatus> byId)
    {
        if (half.Count == 0) return (true, int.MaxValue, null);
        var fastest = new List<VoterStatus>();
        foreach (var id in half)
        {
            if (byId.TryGetValue(id, out var status) && status.Reachable) fastest.Add(status);
        }
        fastest.Sort((a, b) => a.LastResponseLatencyMs != b.LastResponseLatencyMs
            ? a.LastResponseLatencyMs.CompareTo(b.LastResponseLatencyMs)
            : a.Id.CompareTo(b.Id));
        var spare = fastest.Count - half.QuorumSize;
        return spare >= 0 ? (true, spare, fastest[half.QuorumSize - 1]) : (false, spare, null);
    }

    private static bool Slower(VoterStatus a, VoterStatus b) =>
        a.LastResponseLatencyMs > b.LastResponseLatencyMs || (a.LastResponseLatencyMs == b.LastResponseLatencyMs && a.Id > b.Id);

    private readonly struct ReachableMatchIndexes(Dictionary<ulong, VoterStatus> byId) : IAckedIndexer
    {
        public bool TryGetAckedIndex(ulong memberId, out ulong index)
        {
            if (byId.TryGetValue(memberId, out var status) && status.Reachable)
            {
                index = status.MatchIndex;
                return true;
            }
            index = 0;
            return false;
        }
    }
}
