using Keel.Core;
using Keel.Quorum;

namespace Keel.Raft;

// Elections: randomized timeouts, pre-vote, the election restriction, check-quorum and role transitions
// (Raft 5.2 and 5.4.1; thesis 9.6 and 6.4.1; etcd raft.go campaign/poll/become*).
public sealed partial class RaftNode
{
    private ulong? _persistedAtLastCheck;

    /// <summary>Starts an election now (etcd MsgHup), through pre-vote when it is on. Ignored by a leader or a non-voter.</summary>
    public void Campaign() => Hup(transfer: false);

    /// <summary>
    /// True when this node is the only voter of its configuration: it elects itself without asking anyone, so a driver
    /// may <see cref="Campaign"/> at start instead of waiting out an election timeout (etcd advances a single-member
    /// cluster's election ticks on boot for the same reason).
    /// </summary>
    public bool IsSoleVoter => _tracker.IsSingleVoter(Id);

    /// <summary>
    /// Why this node last stopped leading without seeing a higher term (check quorum, a stalled disk, its removal), for
    /// the host's log; null until it happens once.
    /// </summary>
    public string? LastStepDownReason { get; private set; }

    /// <summary>True when this node may campaign: it is a voter of its configuration.</summary>
    public bool IsPromotable => _tracker.IsVoter(Id);

    private void TickElection()
    {
        _electionElapsed++;
        if (IsPromotable && _electionElapsed >= _randomizedElectionTimeout)
        {
            _electionElapsed = 0;
            Hup(transfer: false);
        }
    }

    private void TickLeader()
    {
        _heartbeatElapsed++;
        _electionElapsed++;
        if (_electionElapsed >= _options.ElectionTimeoutTicks)
        {
            _electionElapsed = 0;
            if (_options.CheckQuorum)
            {
                if (_tracker.Progress.TryGetValue(Id, out var self)) self.RecentActive = true;
                if (!_tracker.QuorumActive())
                {
                    // Not heard from a quorum for an election timeout: a partitioned leader must stop acting as one
                    // (and serving reads) instead of waiting for a higher term to reach it.
                    LastStepDownReason = "check quorum: a quorum of voters was not heard from for an election timeout";
                    BecomeFollower(_term, 0);
                    return;
                }
                foreach (var (id, pr) in _tracker.Members)
                {
                    if (id != Id) pr.RecentActive = false;
                }
            }
            if (_options.StepDownOnStalledDisk && LeaderDiskStalled())
            {
                LastStepDownReason = $"stalled disk: the log stayed persisted at index {_log.PersistedIndex} of {_log.LastIndex} for an election timeout";
                BecomeFollower(_term, 0);
                return;
            }
            if (LeadTransferee != 0)
            {
                AbortLeaderTransfer();
                // A removed or demoted leader that could not hand over in time stops leading now.
                if (!IsPromotable && _options.StepDownOnRemoval)
                {
                    LastStepDownReason = "removed from the configuration; the leadership transfer did not finish in an election timeout";
                    BecomeFollower(_term, 0);
                    return;
                }
            }
        }
        if (_heartbeatElapsed >= _options.HeartbeatTicks)
        {
            _heartbeatElapsed = 0;
            BroadcastHeartbeat();
        }
        MaybeAutoLeaveJoint();
    }

    // Called once per election timeout: stalled when entries waited for persistence at the previous check and the
    // persisted index has not moved since.
    private bool LeaderDiskStalled()
    {
        var persisted = _log.PersistedIndex;
        if (persisted >= _log.LastIndex)
        {
            _persistedAtLastCheck = null;
            return false;
        }
        if (_persistedAtLastCheck == persisted) return true;
        _persistedAtLastCheck = persisted;
        return false;
    }

    private void Hup(bool transfer)
    {
        if (Role == RaftRole.Leader || !IsPromotable) return;
        // A configuration change that is committed but not applied may remove us or change the quorum: campaigning
        // under the old configuration could elect a leader the new one does not allow (etcd hup).
        if (HasUnappliedConfChanges()) return;
        if (_options.PreVote && !transfer) CampaignPreVote();
        else CampaignElection(transfer);
    }

    private bool HasUnappliedConfChanges()
    {
        if (_log.Applied >= _log.Committed) return false;
        var entries = new List<Entry>();
        if (_log.TryGetEntries(_log.Applied + 1, _log.Committed + 1, long.MaxValue, entries) != StorageStatus.Ok) return true;
        foreach (var entry in entries)
        {
            if (entry.Type == EntryType.ConfChange) return true;
        }
        return false;
    }

    private void CampaignPreVote()
    {
        BecomePreCandidate();
        if (Poll(Id, granted: true) == VoteResult.Won)
        {
            CampaignElection(transfer: false);
            return;
        }
        SendVoteRequests(MessageType.PreVote, _term + 1, transfer: false);
    }

    private void CampaignElection(bool transfer)
    {
        BecomeCandidate();
        if (Poll(Id, granted: true) == VoteResult.Won)
        {
            BecomeLeader();
            return;
        }
        SendVoteRequests(MessageType.Vote, _term, transfer);
    }

    private void SendVoteRequests(MessageType type, ulong term, bool transfer)
    {
        var lastIndex = _log.LastIndex;
        var lastTerm = _log.LastTerm;
        foreach (var id in _tracker.Membership.Voters.AllVoters)
        {
            if (id == Id) continue;
            Send(NewMessage(type, id) with { Term = term, Index = lastIndex, LogTerm = lastTerm, LeaderTransfer = transfer });
        }
    }

    private VoteResult Poll(ulong from, bool granted)
    {
        _tracker.RecordVote(from, granted);
        return _tracker.TallyVotes().Result;
    }

    private void HandleVoteRequest(Message m)
    {
        var isPreVote = m.Type == MessageType.PreVote;
        var responseType = isPreVote ? MessageType.PreVoteResponse : MessageType.VoteResponse;
        // We can vote for the candidate we already voted for (a retransmission), for anyone if we have not voted
        // and know no leader in this term, and pre-vote for any future term.
        var canVote = Vote == m.From || (Vote == 0 && Leader == 0) || (isPreVote && m.Term > _term);
        var plantedDoubleVote = _options.PlantedBug == RaftPlantedBug.VoteTwiceInTerm && !isPreVote;
        if ((canVote || plantedDoubleVote) && _log.IsUpToDate(m.Index, m.LogTerm))
        {
            // A granted vote carries the candidate's term, so that it counts it even if we are behind.
            Send(WithCommit(NewMessage(responseType, m.From) with { Term = m.Term }));
            if (!isPreVote)
            {
                Invariant.Check(Vote == 0 || Vote == m.From || plantedDoubleVote, "at most one vote per term");
                _electionElapsed = 0;
                Vote = m.From;
            }
        }
        else
        {
            Send(WithCommit(NewMessage(responseType, m.From) with { Reject = true }));
        }
    }

    // Vote answers carry the voter's commit index and the term of the entry there. A candidate whose log holds that
    // entry knows, by log matching, that its own prefix up to it is committed. Without this, a voter of a new
    // configuration that missed the commit of the configuration change could wait forever: it still campaigns under
    // the old (joint) configuration, whose other members, now learners with longer logs, reject it.
    private Message WithCommit(Message response)
    {
        var commit = _log.Committed;
        return _log.TryGetTerm(commit, out var term) == StorageStatus.Ok ? response with { Commit = commit, LogTerm = term } : response;
    }

    private void LearnCommitFromVoter(Message m)
    {
        if (Role == RaftRole.Leader || m.Commit <= _log.Committed || m.LogTerm == 0) return;
        if (_log.MatchTerm(m.Commit, m.LogTerm)) _log.CommitTo(m.Commit);
    }

    private void HandleVoteResponse(Message m)
    {
        var result = Poll(m.From, !m.Reject);
        if (result == VoteResult.Won)
        {
            if (Role == RaftRole.PreCandidate) CampaignElection(transfer: false);
            else BecomeLeader();
        }
        else if (result == VoteResult.Lost)
        {
            // Pre-vote rejections may carry a higher term: Step already moved us to it as a follower. Otherwise
            // stay in this term as a follower and wait for the next timeout.
            BecomeFollower(_term, 0);
        }
    }

    private void BecomeFollower(ulong term, ulong leader)
    {
        Reset(term);
        Leader = leader;
        Role = RaftRole.Follower;
    }

    private void BecomePreCandidate()
    {
        Invariant.Check(Role != RaftRole.Leader, "a leader cannot become a pre-candidate");
        // Pre-candidacy changes neither term nor vote (thesis 9.6): that is the point of it.
        if (Leader != 0) FailPendingRequests();
        _tracker.ResetVotes();
        Leader = 0;
        Role = RaftRole.PreCandidate;
    }

    private void BecomeCandidate()
    {
        Invariant.Check(Role != RaftRole.Leader, "a leader cannot become a candidate");
        Reset(_term + 1);
        Vote = Id;
        Role = RaftRole.Candidate;
    }

    private void BecomeLeader()
    {
        Invariant.Check(Role != RaftRole.Follower, "a follower must win an election before leading");
        Reset(_term);
        Leader = Id;
        Role = RaftRole.Leader;
        if (_tracker.Progress.TryGetValue(Id, out var self))
        {
            self.Match = _log.PersistedIndex;
            self.BecomeReplicate();
            self.RecentActive = true;
        }
        // Entries of earlier terms may hide a configuration change that is not applied yet: refuse new changes
        // until everything up to here is applied (etcd pendingConfIndex).
        _pendingConfIndex = _log.LastIndex;
        // Commit an empty entry of the new term: only then are earlier entries known committed (Raft 5.4.2), and only
        // then may the leader serve reads.
        AppendEntries([new Entry(0, 0, EntryType.Normal, ReadOnlyMemory<byte>.Empty)]);
        BroadcastAppend();
    }

    // Everything that ends a term or a leader: etcd raft.reset.
    private void Reset(ulong term)
    {
        if (_term != term)
        {
            SetTerm(term);
            Vote = 0;
        }
        FailPendingRequests();
        Leader = 0;
        _electionElapsed = 0;
        _heartbeatElapsed = 0;
        _randomizedElectionTimeout = _options.ElectionTimeoutTicks + (int)_random.NextInt64(_options.ElectionTimeoutTicks);
        AbortLeaderTransfer();
        _tracker.ResetVotes();
        _tracker.ResetAll(_log.LastIndex);
        if (_tracker.Progress.TryGetValue(Id, out var self)) self.Match = _log.PersistedIndex;
        _pendingConfIndex = 0;
        _uncommittedBytes = 0;
        ResetReads();
        _incomingSnapshot = null;
        _persistedAtLastCheck = null;
    }

    private void AbortLeaderTransfer() => LeadTransferee = 0;
}
