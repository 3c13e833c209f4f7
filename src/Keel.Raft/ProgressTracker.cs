using Keel.Core;
using Keel.Quorum;

namespace Keel.Raft;

/// <summary>
/// The configuration in force and the leader's <see cref="Progress"/> of every member, plus the votes of the current
/// election (etcd <c>tracker/tracker.go</c>). Iteration is always in ascending id order, so behaviour is
/// deterministic.
/// </summary>
public sealed class ProgressTracker
{
    private readonly SortedDictionary<ulong, Progress> _progress = [];
    // The same progresses as an array in ascending id order: the hot paths (broadcasts) iterate it without the
    // allocations of a SortedDictionary enumerator.
    private (ulong Id, Progress Progress)[] _ordered = [];
    private readonly SortedDictionary<ulong, bool> _votes = [];
    private readonly int _maxInflightMessages;
    private readonly long _maxInflightBytes;

    internal ProgressTracker(Membership membership, int maxInflightMessages, long maxInflightBytes)
    {
        _maxInflightMessages = maxInflightMessages;
        _maxInflightBytes = maxInflightBytes;
        Membership = membership;
    }

    /// <summary>The configuration in force (voters, learners, joint state).</summary>
    public Membership Membership { get; private set; }

    /// <summary>Progress by member id, ascending.</summary>
    public IReadOnlyDictionary<ulong, Progress> Progress => _progress;

    /// <summary>Every member and its progress, in ascending id order.</summary>
    public ReadOnlySpan<(ulong Id, Progress Progress)> Members => _ordered;

    /// <summary>True when <paramref name="id"/> votes (in either half of a joint configuration).</summary>
    public bool IsVoter(ulong id) => Membership.Voters.Contains(id);

    /// <summary>True when the configuration is exactly one voter, <paramref name="id"/>.</summary>
    public bool IsSingleVoter(ulong id) =>
        !Membership.IsJoint && Membership.Voters.Incoming.Count == 1 && Membership.Voters.Incoming.Contains(id);

    /// <summary>
    /// Switches to <paramref name="membership"/>, dropping removed members and creating progress for new ones with
    /// Next = <paramref name="lastIndex"/>, so the leader probes them at once with its last entry (etcd initProgress).
    /// </summary>
    internal void ApplyMembership(Membership membership, ulong lastIndex)
    {
        Membership = membership;
        var members = new SortedSet<ulong>(membership.Voters.AllVoters);
        members.UnionWith(membership.Learners);
        members.UnionWith(membership.LearnersNext);
        foreach (var id in _progress.Keys.ToArray())
        {
            if (!members.Contains(id)) _progress.Remove(id);
        }
        foreach (var id in members)
        {
            var isLearner = membership.IsLearner(id) && !membership.Voters.Contains(id);
            if (_progress.TryGetValue(id, out var existing))
            {
                existing.IsLearner = isLearner;
            }
            else
            {
                // A new member is probed from the leader's last index and counted active, so check-quorum does not
                // depose the leader before it had a chance to hear from it (etcd confchange.initProgress).
                var pr = new Progress(Math.Max(lastIndex, 1), _maxInflightMessages, _maxInflightBytes, isLearner) { RecentActive = true };
                _progress.Add(id, pr);
            }
        }
        _ordered = _progress.Select(kv => (kv.Key, kv.Value)).ToArray();
    }

    /// <summary>Resets every progress for a new term (etcd <c>raft.reset</c>).</summary>
    internal void ResetAll(ulong lastIndex)
    {
        foreach (var (_, pr) in _ordered)
        {
            pr.BecomeProbe();
            pr.Match = 0;
            pr.Next = lastIndex + 1;
            pr.AckedRound = 0;
            pr.RecentActive = false;
        }
    }

    /// <summary>The highest index replicated on a quorum (joint: on a quorum of both halves).</summary>
    public ulong QuorumMatchIndex() => Membership.Voters.CommittedIndex(new MatchIndexer(_progress));

    /// <summary>The highest heartbeat round acknowledged by a quorum.</summary>
    public ulong QuorumAckedRound() => Membership.Voters.CommittedIndex(new RoundIndexer(_progress));

    /// <summary>True when a quorum was recently active (check-quorum).</summary>
    public bool QuorumActive() => Membership.Voters.Vote(new ActiveLookup(_progress)) == VoteResult.Won;

    /// <summary>Forgets the votes of the previous election.</summary>
    internal void ResetVotes() => _votes.Clear();

    /// <summary>Records a vote (only the first answer of each voter counts).</summary>
    internal void RecordVote(ulong id, bool granted) => _votes.TryAdd(id, granted);

    /// <summary>Counts the votes: granted, rejected and the joint result.</summary>
    internal (int Granted, int Rejected, VoteResult Result) TallyVotes()
    {
        int granted = 0, rejected = 0;
        foreach (var (id, vote) in _votes)
        {
            if (!IsVoter(id)) continue;
            if (vote) granted++;
            else rejected++;
        }
        return (granted, rejected, Membership.Voters.Vote(new VoteLookup(_votes)));
    }

    /// <summary>Checks every progress and that progress exists for exactly the members.</summary>
    public void AssertInvariants()
    {
        Membership.AssertInvariants();
        foreach (var id in Membership.Voters.AllVoters) Invariant.Check(_progress.ContainsKey(id), "every voter has a progress");
        foreach (var id in Membership.Learners) Invariant.Check(_progress.ContainsKey(id), "every learner has a progress");
        foreach (var (id, pr) in _progress)
        {
            Invariant.Check(Membership.Voters.Contains(id) || Membership.IsLearner(id), "progress only for members");
            pr.AssertInvariants();
        }
    }

    private readonly struct MatchIndexer(SortedDictionary<ulong, Progress> progress) : IAckedIndexer
    {
        public bool TryGetAckedIndex(ulong memberId, out ulong index)
        {
            if (progress.TryGetValue(memberId, out var pr))
            {
                index = pr.Match;
                return true;
            }
            index = 0;
            return false;
        }
    }

    private readonly struct RoundIndexer(SortedDictionary<ulong, Progress> progress) : IAckedIndexer
    {
        public bool TryGetAckedIndex(ulong memberId, out ulong index)
        {
            if (progress.TryGetValue(memberId, out var pr))
            {
                index = pr.AckedRound;
                return true;
            }
            index = 0;
            return false;
        }
    }

    private readonly struct ActiveLookup(SortedDictionary<ulong, Progress> progress) : IVoteLookup
    {
        public bool? GetVote(ulong memberId) => progress.TryGetValue(memberId, out var pr) ? pr.RecentActive : null;
    }

    private readonly struct VoteLookup(SortedDictionary<ulong, bool> votes) : IVoteLookup
    {
        public bool? GetVote(ulong memberId) => votes.TryGetValue(memberId, out var granted) ? granted : null;
    }
}
