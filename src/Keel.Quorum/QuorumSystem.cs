using System.Numerics;
using System.Text;
using Keel.Core;

namespace Keel.Quorum;

/// <summary>
/// A checked quorum system: the sets of members that may elect a leader (election quorums, Paxos phase 1) and the
/// sets that may commit an entry (replication quorums, phase 2). Flexible Paxos (Howard, Malkhi, Spiegelman 2016,
/// "Flexible Paxos: Quorum intersection revisited") shows that safety only needs every election quorum to intersect
/// every replication quorum; Keel also requires any two election quorums to intersect, so that one term can never
/// have two leaders. Instances exist only for safe systems: the factories throw
/// <see cref="UnsafeQuorumSystemException"/> saying which two quorums are disjoint.
/// </summary>
/// <remarks>
/// The majority, <c>floor(N/2)+1</c> for both sides, is the smallest symmetric choice and tolerates the most failures;
/// larger quorums only cost availability ("4-of-5 tolerates one failure, not two"). Such choices are accepted but
/// reported in <see cref="Warnings"/>.
/// </remarks>
public sealed class QuorumSystem
{
    /// <summary>Explicit quorum sets are checked by enumerating member subsets, so their member count is capped.</summary>
    public const int MaxExplicitMembers = 20;

    private QuorumSystem(IReadOnlyList<ulong> members, int? electionQuorumSize, int? replicationQuorumSize,
        IReadOnlyList<IReadOnlyList<ulong>>? electionQuorums, IReadOnlyList<IReadOnlyList<ulong>>? replicationQuorums,
        int electionFailuresTolerated, int replicationFailuresTolerated, IReadOnlyList<string> warnings)
    {
        Members = members;
        ElectionQuorumSize = electionQuorumSize;
        ReplicationQuorumSize = replicationQuorumSize;
        ElectionQuorums = electionQuorums;
        ReplicationQuorums = replicationQuorums;
        ElectionFailuresTolerated = electionFailuresTolerated;
        ReplicationFailuresTolerated = replicationFailuresTolerated;
        Warnings = warnings;
        AssertInvariants();
    }

    /// <summary>All members, sorted ascending.</summary>
    public IReadOnlyList<ulong> Members { get; }

    /// <summary>Size of every election quorum for a threshold system; null for explicit quorum sets.</summary>
    public int? ElectionQuorumSize { get; }

    /// <summary>Size of every replication quorum for a threshold system; null for explicit quorum sets.</summary>
    public int? ReplicationQuorumSize { get; }

    /// <summary>The election quorums (each sorted) for an explicit system; null for a threshold system.</summary>
    public IReadOnlyList<IReadOnlyList<ulong>>? ElectionQuorums { get; }

    /// <summary>The replication quorums (each sorted) for an explicit system; null for a threshold system.</summary>
    public IReadOnlyList<IReadOnlyList<ulong>>? ReplicationQuorums { get; }

    /// <summary>How many arbitrary member failures still leave some election quorum alive (leader election stays possible).</summary>
    public int ElectionFailuresTolerated { get; }

    /// <summary>How many arbitrary member failures still leave some replication quorum alive (commits stay possible).</summary>
    public int ReplicationFailuresTolerated { get; }

    /// <summary>Failures the system survives with both elections and commits possible: the minimum of the two sides.</summary>
    public int FailuresTolerated => Math.Min(ElectionFailuresTolerated, ReplicationFailuresTolerated);

    /// <summary>Safe but wasteful or fragile choices (quorums larger than needed, an even member count, no failure tolerance).</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>One line for operators, e.g. "5 members, election 3-of-5 tolerates 2 failures, replication 3-of-5 tolerates 2 failures".</summary>
    public string Summary
    {
        get
        {
            var n = Members.Count;
            var election = ElectionQuorumSize is { } e ? $"election {e}-of-{n}" : $"{ElectionQuorums!.Count} election quorums";
            var replication = ReplicationQuorumSize is { } r ? $"replication {r}-of-{n}" : $"{ReplicationQuorums!.Count} replication quorums";
            return $"{n} members, {election} tolerates {Failures(ElectionFailuresTolerated)}, " +
                   $"{replication} tolerates {Failures(ReplicationFailuresTolerated)}";
        }
    }

    /// <summary>The classic majority system over <paramref name="members"/>: both quorums <c>floor(N/2)+1</c>.</summary>
    /// <exception cref="UnsafeQuorumSystemException">No members.</exception>
    public static QuorumSystem Majority(IEnumerable<ulong> members)
    {
        var sorted = SortedDistinct(members);
        var majority = sorted.Length / 2 + 1;
        return Thresholds(sorted, majority, majority);
    }

    /// <summary>A threshold system over members <c>1..memberCount</c>.</summary>
    /// <exception cref="UnsafeQuorumSystemException">The sizes admit disjoint quorums or are out of range.</exception>
    public static QuorumSystem Thresholds(int memberCount, int electionQuorumSize, int replicationQuorumSize)
    {
        if (memberCount < 0) throw new ArgumentOutOfRangeException(nameof(memberCount), memberCount, "member count cannot be negative");
        var members = new ulong[memberCount];
        for (var i = 0; i < memberCount; i++) members[i] = (ulong)i + 1;
        return Thresholds(members, electionQuorumSize, replicationQuorumSize);
    }

    /// <summary>
    /// A threshold system: any <paramref name="electionQuorumSize"/> members may elect, any
    /// <paramref name="replicationQuorumSize"/> members may commit. Safe iff <c>E + R &gt; N</c> and <c>2E &gt; N</c>.
    /// </summary>
    /// <exception cref="UnsafeQuorumSystemException">The sizes admit disjoint quorums or are out of range; the message says why.</exception>
    public static QuorumSystem Thresholds(IEnumerable<ulong> members, int electionQuorumSize, int replicationQuorumSize)
    {
        var check = CheckThresholds(members, electionQuorumSize, replicationQuorumSize);
        return check.System ?? throw new UnsafeQuorumSystemException(check.Errors);
    }

    /// <summary>Like <see cref="Thresholds(IEnumerable{ulong}, int, int)"/> but returns the errors instead of throwing.</summary>
    public static QuorumSystemCheck CheckThresholds(IEnumerable<ulong> members, int electionQuorumSize, int replicationQuorumSize)
    {
        var sorted = SortedDistinct(members);
        var n = sorted.Length;
        var errors = new List<string>();
        if (n == 0) errors.Add("a quorum system needs at least one member");
        if (electionQuorumSize < 1 || electionQuorumSize > n)
            errors.Add($"election quorum {electionQuorumSize} is outside 1..{n} (members)");
        if (replicationQuorumSize < 1 || replicationQuorumSize > n)
            errors.Add($"replication quorum {replicationQuorumSize} is outside 1..{n} (members)");
        if (errors.Count == 0)
        {
            // Two sets of sizes a and b in N members can be disjoint exactly when a + b <= N.
            if (electionQuorumSize + replicationQuorumSize <= n)
                errors.Add($"election quorum {electionQuorumSize} + replication quorum {replicationQuorumSize} <= {n} members: " +
                           "two disjoint quorums exist, so a new leader can miss a committed entry");
            if (2 * electionQuorumSize <= n)
                errors.Add($"election quorum {electionQuorumSize} + election quorum {electionQuorumSize} <= {n} members: " +
                           "two disjoint election quorums exist, so two leaders can be elected in one term");
        }
        if (errors.Count > 0) return new QuorumSystemCheck(null, errors);

        var warnings = ThresholdWarnings(n, electionQuorumSize, replicationQuorumSize);
        var system = new QuorumSystem(Array.AsReadOnly(sorted), electionQuorumSize, replicationQuorumSize, null, null,
            n - electionQuorumSize, n - replicationQuorumSize, warnings);
        return new QuorumSystemCheck(system, []);
    }

    /// <summary>
    /// A system given by explicit quorum sets (a grid, a weighted layout...). Every election quorum must intersect every
    /// replication quorum and every other election quorum; every quorum must be a non-empty subset of the members.
    /// </summary>
    /// <exception cref="UnsafeQuorumSystemException">Some pair of quorums is disjoint, or a quorum is malformed; the message names them.</exception>
    /// <exception cref="ArgumentException">More than <see cref="MaxExplicitMembers"/> members.</exception>
    public static QuorumSystem FromQuorumSets(IEnumerable<ulong> members, IEnumerable<IEnumerable<ulong>> electionQuorums,
        IEnumerable<IEnumerable<ulong>> replicationQuorums)
    {
        var check = CheckQuorumSets(members, electionQuorums, replicationQuorums);
        return check.System ?? throw new UnsafeQuorumSystemException(check.Errors);
    }

    /// <summary>Like <see cref="FromQuorumSets"/> but returns the errors instead of throwing.</summary>
    /// <exception cref="ArgumentException">More than <see cref="MaxExplicitMembers"/> members.</exception>
    public static QuorumSystemCheck CheckQuorumSets(IEnumerable<ulong> members, IEnumerable<IEnumerable<ulong>> electionQuorums,
        IEnumerable<IEnumerable<ulong>> replicationQuorums)
    {
        ArgumentNullException.ThrowIfNull(electionQuorums);
        ArgumentNullException.ThrowIfNull(replicationQuorums);
        var sorted = SortedDistinct(members);
        if (sorted.Length > MaxExplicitMembers)
            throw new ArgumentException($"explicit quorum sets support at most {MaxExplicitMembers} members, got {sorted.Length}", nameof(members));
        var errors = new List<string>();
        if (sorted.Length == 0) errors.Add("a quorum system needs at least one member");
        var election = ToMasks("election", sorted, electionQuorums, errors);
        var replication = ToMasks("replication", sorted, replicationQuorums, errors);
        if (election.Count == 0) errors.Add("no election quorum given: no leader could ever be elected");
        if (replication.Count == 0) errors.Add("no replication quorum given: nothing could ever be committed");
        if (errors.Count > 0) return new QuorumSystemCheck(null, errors);

        foreach (var e in election)
        {
            foreach (var r in replication)
            {
                if ((e & r) == 0)
                    errors.Add($"election quorum {Format(sorted, e)} and replication quorum {Format(sorted, r)} are disjoint: " +
                               "a leader elected by the first can miss entries committed by the second");
            }
        }
        for (var i = 0; i < election.Count; i++)
        {
            for (var j = i + 1; j < election.Count; j++)
            {
                if ((election[i] & election[j]) == 0)
                    errors.Add($"election quorums {Format(sorted, election[i])} and {Format(sorted, election[j])} are disjoint: " +
                               "two leaders can be elected in one term");
            }
        }
        if (errors.Count > 0) return new QuorumSystemCheck(null, errors);

        var electionTolerated = ComputeFailuresTolerated(sorted.Length, election);
        var replicationTolerated = ComputeFailuresTolerated(sorted.Length, replication);
        var warnings = new List<string>();
        if (electionTolerated == 0) warnings.Add("elections tolerate no failure: one member down blocks electing a leader");
        if (replicationTolerated == 0) warnings.Add("replication tolerates no failure: one member down blocks every commit");
        var majorityTolerated = sorted.Length - (sorted.Length / 2 + 1);
        if (Math.Min(electionTolerated, replicationTolerated) < majorityTolerated)
            warnings.Add($"tolerates {Failures(Math.Min(electionTolerated, replicationTolerated))} overall; " +
                         $"a plain majority of {sorted.Length} would tolerate {Failures(majorityTolerated)}");
        var system = new QuorumSystem(Array.AsReadOnly(sorted), null, null, ToLists(sorted, election), ToLists(sorted, replication),
            electionTolerated, replicationTolerated, warnings);
        return new QuorumSystemCheck(system, []);
    }

    /// <summary>Whether the given members (as a set) contain an election quorum.</summary>
    public bool IsElectionQuorum(IEnumerable<ulong> alive) => ContainsQuorum(alive, ElectionQuorumSize, ElectionQuorums);

    /// <summary>Whether the given members (as a set) contain a replication quorum.</summary>
    public bool IsReplicationQuorum(IEnumerable<ulong> alive) => ContainsQuorum(alive, ReplicationQuorumSize, ReplicationQuorums);

    /// <summary>
    /// Re-checks the safety property on this instance (threshold arithmetic, or pairwise intersection of the explicit
    /// sets). Throws <see cref="InvariantViolationException"/> if an unsafe system was ever constructed.
    /// </summary>
    public void AssertInvariants()
    {
        var n = Members.Count;
        for (var i = 1; i < n; i++) Invariant.Check(Members[i - 1] < Members[i], "quorum system members must be strictly ascending");
        if (ElectionQuorumSize is { } e && ReplicationQuorumSize is { } r)
        {
            Invariant.Check(e + r > n, "every election quorum must intersect every replication quorum");
            Invariant.Check(2 * e > n, "any two election quorums must intersect");
            Invariant.Check(ElectionFailuresTolerated == n - e && ReplicationFailuresTolerated == n - r, "failure tolerance of a threshold system is N - quorum");
            return;
        }
        Invariant.Check(ElectionQuorums is not null && ReplicationQuorums is not null, "a quorum system is threshold or explicit");
        foreach (var election in ElectionQuorums!)
        {
            foreach (var replication in ReplicationQuorums!)
                Invariant.Check(election.Intersect(replication).Any(), "every election quorum must intersect every replication quorum");
            foreach (var other in ElectionQuorums)
                Invariant.Check(election.Intersect(other).Any(), "any two election quorums must intersect");
        }
    }

    /// <inheritdoc/>
    public override string ToString() => Summary;

    private static List<string> ThresholdWarnings(int n, int e, int r)
    {
        var warnings = new List<string>();
        var majority = n / 2 + 1;
        if (e == r && e > majority)
        {
            warnings.Add($"{e}-of-{n} tolerates {Failures(n - e)}, not {n - majority}: quorums larger than the majority " +
                         $"({majority}-of-{n}) cost availability and throughput without adding safety");
        }
        else
        {
            // The smallest sizes that keep the intersections, holding the other side fixed.
            var electionNeeded = Math.Max(majority, n + 1 - r);
            var replicationNeeded = n + 1 - e;
            if (e > electionNeeded)
                warnings.Add($"election quorum {e}-of-{n} is larger than needed: {electionNeeded} intersects every " +
                             $"replication quorum of {r}; it tolerates {Failures(n - e)} instead of {n - electionNeeded}");
            if (r > replicationNeeded)
                warnings.Add($"replication quorum {r}-of-{n} is larger than needed: {replicationNeeded} intersects every " +
                             $"election quorum of {e}; it tolerates {Failures(n - r)} instead of {n - replicationNeeded}");
        }
        if (n > 1 && n % 2 == 0 && e == majority && r == majority)
            warnings.Add($"{n} members tolerate {Failures(n - majority)}, the same as {n - 1}: an even member count adds load, not fault tolerance");
        if (n - e == 0 && n > 1) warnings.Add($"election quorum {e}-of-{n} tolerates no failure: one member down blocks electing a leader");
        if (n - r == 0 && n > 1) warnings.Add($"replication quorum {r}-of-{n} tolerates no failure: one member down blocks every commit");
        return warnings;
    }

    private bool ContainsQuorum(IEnumerable<ulong> alive, int? size, IReadOnlyList<IReadOnlyList<ulong>>? quorums)
    {
        ArgumentNullException.ThrowIfNull(alive);
        var aliveMembers = new HashSet<ulong>(alive);
        aliveMembers.IntersectWith(Members);
        if (size is { } threshold) return aliveMembers.Count >= threshold;
        foreach (var quorum in quorums!)
        {
            if (quorum.All(aliveMembers.Contains)) return true;
        }
        return false;
    }

    // Smallest number of failures that kills every quorum, minus one: enumerate failure sets by increasing size.
    private static int ComputeFailuresTolerated(int n, List<uint> quorums)
    {
        for (var failures = 0; failures <= n; failures++)
        {
            if (SomeSubsetOfSizeHitsAll(n, failures, quorums)) return failures - 1;
        }
        return n; // unreachable for non-empty quorum families: failing everyone hits every quorum
    }

    private static bool SomeSubsetOfSizeHitsAll(int n, int size, List<uint> quorums)
    {
        if (size == 0) return false;
        // Gosper's hack: iterate all n-bit masks with exactly `size` bits set.
        var mask = (1u << size) - 1;
        var limit = 1u << n;
        while (mask < limit)
        {
            var hitsAll = true;
            foreach (var quorum in quorums)
            {
                if ((quorum & mask) == 0) { hitsAll = false; break; }
            }
            if (hitsAll) return true;
            var lowest = mask & (uint)-(int)mask;
            var ripple = mask + lowest;
            mask = (((ripple ^ mask) >> 2) / lowest) | ripple;
            if (ripple == 0) break;
        }
        return false;
    }

    private static List<uint> ToMasks(string side, ulong[] members, IEnumerable<IEnumerable<ulong>> quorums, List<string> errors)
    {
        var masks = new List<uint>();
        foreach (var quorum in quorums)
        {
            ArgumentNullException.ThrowIfNull(quorum);
            uint mask = 0;
            foreach (var id in quorum)
            {
                var position = Array.BinarySearch(members, id);
                if (position < 0)
                {
                    errors.Add($"{side} quorum {{{string.Join(",", quorum)}}} names {id}, which is not a member");
                    mask = 0;
                    break;
                }
                mask |= 1u << position;
            }
            if (mask == 0 && !quorum.Any()) errors.Add($"an empty {side} quorum intersects nothing");
            if (mask != 0 && !masks.Contains(mask)) masks.Add(mask);
        }
        return masks;
    }

    private static IReadOnlyList<IReadOnlyList<ulong>> ToLists(ulong[] members, List<uint> masks) =>
        masks.Select(mask => (IReadOnlyList<ulong>)Array.AsReadOnly(Decode(members, mask))).ToArray();

    private static ulong[] Decode(ulong[] members, uint mask)
    {
        var ids = new ulong[BitOperations.PopCount(mask)];
        var k = 0;
        for (var i = 0; i < members.Length; i++)
        {
            if ((mask & (1u << i)) != 0) ids[k++] = members[i];
        }
        return ids;
    }

    private static string Format(ulong[] members, uint mask) => "{" + string.Join(",", Decode(members, mask)) + "}";

    private static string Failures(int count) => count == 1 ? "1 failure" : $"{count} failures";

    private static ulong[] SortedDistinct(IEnumerable<ulong> members)
    {
        ArgumentNullException.ThrowIfNull(members);
        var sorted = members.Distinct().ToArray();
        Array.Sort(sorted);
        return sorted;
    }
}

/// <summary>The result of checking a quorum system without throwing: the system when safe, otherwise the reasons.</summary>
/// <param name="System">The checked system, or null when unsafe.</param>
/// <param name="Errors">Why the system is unsafe (empty when safe).</param>
public sealed record QuorumSystemCheck(QuorumSystem? System, IReadOnlyList<string> Errors)
{
    /// <summary>Whether every election quorum intersects every replication quorum and every other election quorum.</summary>
    public bool IsSafe => System is not null;

    /// <summary>Warnings of the safe system (empty when unsafe).</summary>
    public IReadOnlyList<string> Warnings => System?.Warnings ?? [];
}

/// <summary>A quorum configuration was refused because two of its quorums can be disjoint (or it is malformed).</summary>
public sealed class UnsafeQuorumSystemException : Exception
{
    /// <summary>Creates the exception from the list of reasons; the message joins them.</summary>
    public UnsafeQuorumSystemException(IReadOnlyList<string> reasons)
        : base("unsafe quorum system: " + string.Join("; ", reasons)) => Reasons = reasons;

    /// <summary>Each reason the configuration is unsafe.</summary>
    public IReadOnlyList<string> Reasons { get; }
}
