namespace Keel.Raft;

// Follower progress as seen by the leader, and leadership transfer (etcd raft.go MsgTransferLeader/MsgTimeoutNow,
// MsgUnreachable; Raft thesis 3.10).
public sealed partial class RaftNode
{
    /// <summary>
    /// Hands leadership to <paramref name="target"/> (etcd MsgTransferLeader): the leader stops accepting proposals,
    /// brings the target up to date, then tells it to campaign at once (TimeoutNow). The transfer is abandoned after
    /// an election timeout. A follower forwards the request to its leader.
    /// </summary>
    public void TransferLeadership(ulong target)
    {
        if (Role == RaftRole.Leader) HandleTransferLeader(target);
        else if (Leader != 0) Send(NewMessage(MessageType.TransferLeader, Leader) with { Context = target });
    }

    /// <summary>
    /// The driver could not deliver to <paramref name="peer"/> (etcd ReportUnreachable): stop pipelining to it and
    /// probe instead, so the leader does not keep filling a dead connection.
    /// </summary>
    public void ReportUnreachable(ulong peer)
    {
        if (Role == RaftRole.Leader && _tracker.Progress.TryGetValue(peer, out var pr) && pr.State == ProgressState.Replicate)
            pr.BecomeProbe();
    }

    private void MarkActive(Progress pr)
    {
        pr.RecentActive = true;
        pr.LastActiveTick = _tickCount;
    }

    private void HandleTransferLeader(ulong target)
    {
        if (!_tracker.Progress.TryGetValue(target, out var pr) || pr.IsLearner) return; // only a voter can lead
        if (LeadTransferee != 0)
        {
            if (LeadTransferee == target) return; // already under way
            AbortLeaderTransfer();
        }
        if (target == Id) return;
        // The transfer must finish within an election timeout, measured from now.
        _electionElapsed = 0;
        LeadTransferee = target;
        if (pr.Match == _log.LastIndex) SendTimeoutNow(target);
        else MaybeSendAppend(target, pr, sendIfEmpty: true);
    }

    private void SendTimeoutNow(ulong to) => Send(NewMessage(MessageType.TimeoutNow, to));
}
