using Keel.Core;

namespace Keel.Quorum;

/// <summary>A voter and the failure domain (availability zone, rack, region) it runs in.</summary>
/// <param name="Id">The voter id.</param>
/// <param name="Zone">The zone name; compared ordinally.</param>
public readonly record struct ZonedMember(ulong Id, string Zone);

/// <summary>How many voters one zone holds.</summary>
/// <param name="Zone">The zone name.</param>
/// <param name="MemberCount">Voters placed in it.</param>
/// <param name="LossKeepsQuorum">Whether the voters outside this zone still form a quorum.</param>
public readonly record struct ZoneShare(string Zone, int MemberCount, bool LossKeepsQuorum);

/// <summary>
/// What a placement of voters across zones survives. Node failures are independent crashes; zone failures take out
/// every voter of a zone at once (an AZ outage or brownout). A 5-voter group laid out 2-2-1 over three zones survives
/// any one zone; laid out 3-2 over two zones it does not survive losing the 3-voter zone, although it still survives
/// any two node failures. See <see cref="ZoneAnalysis.Analyze(IEnumerable{ZonedMember})"/>.
/// </summary>
public sealed class ZoneReport
{
    internal ZoneReport(int memberCount, int quorumSize, IReadOnlyList<ZoneShare> zones, int zoneFailuresTolerated,
        IReadOnlyList<string> warnings)
    {
        MemberCount = memberCount;
        QuorumSize = quorumSize;
        Zones = zones;
        ZoneFailuresTolerated = zoneFailuresTolerated;
        Warnings = warnings;
        AssertInvariants();
    }

    /// <summary>Voters analysed.</summary>
    public int MemberCount { get; }

    /// <summary>Voters needed for a decision.</summary>
    public int QuorumSize { get; }

    /// <summary>Any this many voters may fail and a quorum remains: <c>MemberCount - QuorumSize</c>.</summary>
    public int NodeFailuresTolerated => MemberCount - QuorumSize;

    /// <summary>Any this many whole zones may fail and a quorum remains (the worst case loses the largest zones).</summary>
    public int ZoneFailuresTolerated { get; }

    /// <summary>Whether losing any single zone keeps a quorum.</summary>
    public bool SurvivesAnyZoneLoss => ZoneFailuresTolerated >= 1;

    /// <summary>Each zone with its voter count, largest first (ties by zone name, ordinal).</summary>
    public IReadOnlyList<ZoneShare> Zones { get; }

    /// <summary>Zones whose loss alone drops the group below quorum.</summary>
    public IEnumerable<ZoneShare> CriticalZones => Zones.Where(zone => !zone.LossKeepsQuorum);

    /// <summary>Placement risks, e.g. a zone whose loss drops quorum.</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>A human-readable summary for operators.</summary>
    public string Summary
    {
        get
        {
            var layout = string.Join("-", Zones.Select(zone => zone.MemberCount));
            var zones = string.Join(", ", Zones.Select(zone => $"{zone.Zone}={zone.MemberCount}"));
            var text = $"{MemberCount} voters as {layout} across {Zones.Count} zone{(Zones.Count == 1 ? "" : "s")} ({zones}), " +
                       $"quorum {QuorumSize}: survives any {NodeFailuresTolerated} node failure{(NodeFailuresTolerated == 1 ? "" : "s")} " +
                       $"and any {ZoneFailuresTolerated} zone failure{(ZoneFailuresTolerated == 1 ? "" : "s")}";
            return Warnings.Count == 0 ? text + "." : text + ". Warnings: " + string.Join("; ", Warnings) + ".";
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Summary;

    /// <summary>Checks the report's arithmetic; throws <see cref="InvariantViolationException"/> on a bug.</summary>
    public void AssertInvariants()
    {
        Invariant.Check(Zones.Sum(zone => zone.MemberCount) == MemberCount, "zone counts must add up to the members");
        Invariant.Check(ZoneFailuresTolerated >= 0 && ZoneFailuresTolerated <= Zones.Count, "zone failures tolerated within 0..zones");
        var lost = 0;
        for (var i = 0; i < ZoneFailuresTolerated; i++) lost += Zones[i].MemberCount;
        Invariant.Check(MemberCount - lost >= QuorumSize, "losing the largest tolerated zones must keep a quorum");
        foreach (var zone in Zones)
            Invariant.Check(zone.LossKeepsQuorum == (MemberCount - zone.MemberCount >= QuorumSize), "per-zone loss verdict");
    }
}

/// <summary>
/// Zone-aware failure analysis of a voter placement: how many node and whole-zone failures the quorum survives, and
/// which zones are single points of failure. The seed's production story: five nodes over three AZs; the library
/// reports, for every layout, whether losing one zone drops quorum.
/// </summary>
/// <remarks>Related practice: CockroachDB's replica constraints spread replicas so that a zone loss keeps a majority
/// (<c>pkg/kv/kvserver/allocator</c>); etcd recommends odd member counts spread over zones.</remarks>
public static class ZoneAnalysis
{
    /// <summary>Analyses <paramref name="members"/> with a majority quorum (<c>floor(N/2)+1</c>).</summary>
    /// <exception cref="ArgumentException">No members, a duplicate id, or an empty zone name.</exception>
    public static ZoneReport Analyze(IEnumerable<ZonedMember> members)
    {
        ArgumentNullException.ThrowIfNull(members);
        var list = members.ToList();
        return Analyze(list, list.Count / 2 + 1);
    }

    /// <summary>Analyses <paramref name="members"/> with an explicit quorum size (e.g. a Flexible Paxos replication quorum).</summary>
    /// <exception cref="ArgumentException">No members, a duplicate id, an empty zone name, or a quorum size outside 1..N.</exception>
    public static ZoneReport Analyze(IEnumerable<ZonedMember> members, int quorumSize)
    {
        ArgumentNullException.ThrowIfNull(members);
        var seen = new HashSet<ulong>();
        // Ordinal sorted map: the report never depends on hash iteration order.
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var total = 0;
        foreach (var member in members)
        {
            if (string.IsNullOrEmpty(member.Zone))
                throw new ArgumentException($"member {member.Id} has no zone", nameof(members));
            if (!seen.Add(member.Id))
                throw new ArgumentException($"member {member.Id} is listed twice", nameof(members));
            counts[member.Zone] = counts.GetValueOrDefault(member.Zone) + 1;
            total++;
        }
        if (total == 0) throw new ArgumentException("zone analysis needs at least one member", nameof(members));
        if (quorumSize < 1 || quorumSize > total)
            throw new ArgumentOutOfRangeException(nameof(quorumSize), quorumSize, $"quorum size must be within 1..{total}");

        var zones = counts
            .Select(pair => new ZoneShare(pair.Key, pair.Value, total - pair.Value >= quorumSize))
            .OrderByDescending(zone => zone.MemberCount)
            .ThenBy(zone => zone.Zone, StringComparer.Ordinal)
            .ToList();

        // The adversary takes the largest zones first; count how many it can take while a quorum remains.
        var zoneFailuresTolerated = 0;
        var remaining = total;
        foreach (var zone in zones)
        {
            if (remaining - zone.MemberCount < quorumSize) break;
            remaining -= zone.MemberCount;
            zoneFailuresTolerated++;
        }

        var warnings = new List<string>();
        if (zones.Count == 1)
            warnings.Add($"all {total} voters are in zone {zones[0].Zone}: one zone outage loses the whole group");
        else
        {
            foreach (var zone in zones.Where(zone => !zone.LossKeepsQuorum))
                warnings.Add($"losing zone {zone.Zone} ({zone.MemberCount} voter{(zone.MemberCount == 1 ? "" : "s")}) leaves " +
                             $"{total - zone.MemberCount} of {total}, below quorum {quorumSize}");
            if (zones.Count == 2)
                warnings.Add("with two zones one of them always holds at least half of the voters; a third zone (even with one voter) lets a majority survive any one zone");
        }
        if (total > 1 && total % 2 == 0 && quorumSize == total / 2 + 1)
            warnings.Add($"{total} voters tolerate {total - quorumSize} node failure{(total - quorumSize == 1 ? "" : "s")}, the same as {total - 1}");
        return new ZoneReport(total, quorumSize, zones, zoneFailuresTolerated, warnings);
    }
}
