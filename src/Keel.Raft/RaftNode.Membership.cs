using Keel.Quorum;

namespace Keel.Raft;

// Membership: learners, joint consensus via ConfChangeV2 with auto-leave, validation at proposal time, and the
// configuration taking effect when the entry is applied (Raft thesis 4.3; etcd confchange/, raft.go applyConfChange).
public sealed partial class RaftNode
{
    private ulong _pendingConfIndex;

    /// <summary>
    /// Proposes a membership change. The leader refuses it (with <see cref="ProposalDropReason.ConfChangeRefused"/>)
    /// when another change is not yet applied, when it does not fit the joint state, when it is invalid (for example it
    /// removes the last voter), or when the voters of the new configuration that were recently heard from could not
    /// form a quorum. The change takes effect when the application applies the entry and calls
    /// <see cref="ApplyConfChange"/>.
    /// </summary>
    public ProposeResult ProposeConfChange(ConfChangeV2 change)
    {
        ArgumentNullException.ThrowIfNull(change);
        return ProposeEntry(EntryType.ConfChange, change.Encode());
    }

    /// <summary>
    /// Applies a committed configuration change (call it when applying the <see cref="EntryType.ConfChange"/> entry,
    /// on every node, as etcd's <c>ApplyConfChange</c>). Returns the new configuration, to store with snapshots.
    /// </summary>
    /// <exception cref="ConfigurationChangeException">
    /// The change is invalid for the current configuration. The node is unchanged; every replica refuses the same
    /// entry the same way, so the driver may record the refusal and continue.
    /// </exception>
    public Membership ApplyConfChange(ConfChangeV2 change)
    {
        ArgumentNullException.ThrowIfNull(change);
        var next = NextMembership(Membership, change);
        SwitchToConfig(next);
        return next;
    }

    private static Membership NextMembership(Membership current, ConfChangeV2 change)
    {
        if (change.IsLeaveJoint) return ConfigurationChange.LeaveJoint(current);
        if (change.EntersJoint(out var autoLeave)) return ConfigurationChange.EnterJoint(current, autoLeave, change.Changes);
        return ConfigurationChange.Simple(current, change.Changes);
    }

    private void SwitchToConfig(Membership next)
    {
        _tracker.ApplyMembership(next, _log.LastIndex);
        if (Role != RaftRole.Leader) return;
        if (!IsPromotable)
        {
            // Removed or demoted: keep leading only if told to (etcd StepDownOnRemoval off). Otherwise hand over to the
            // most up-to-date voter first, so the cluster does not sit through an election timeout without a leader;
            // step down at once if there is nobody to hand over to, or when the transfer is abandoned.
            if (_options.StepDownOnRemoval) HandOverOrStepDown();
            return;
        }
        // The quorum may have changed: commit what the new configuration allows, and probe new members.
        if (MaybeCommit()) BroadcastAppend();
        else
        {
            foreach (var (id, pr) in _tracker.Members)
            {
                if (id != Id) MaybeSendAppend(id, pr, sendIfEmpty: false);
            }
        }
        if (LeadTransferee != 0 && !_tracker.IsVoter(LeadTransferee)) AbortLeaderTransfer();
    }

    private void HandOverOrStepDown()
    {
        ulong target = 0, bestMatch = 0;
        foreach (var (id, pr) in _tracker.Members)
        {
            if (id == Id || !_tracker.IsVoter(id) || (target != 0 && pr.Match <= bestMatch)) continue;
            target = id;
            bestMatch = pr.Match;
        }
        if (target == 0)
        {
            LastStepDownReason = "removed from the configuration; no voter to hand over to";
            BecomeFollower(_term, 0);
            return;
        }
        HandleTransferLeader(target);
        if (LeadTransferee != 0) return;
        LastStepDownReason = $"removed from the configuration; the leadership transfer to {target:x16} did not start";
        BecomeFollower(_term, 0);
    }

    private string? CheckConfChangeProposal(ReadOnlyMemory<byte> data)
    {
        ConfChangeV2 change;
        try
        {
            change = ConfChangeV2.Decode(data.Span);
        }
        catch (FormatException e)
        {
            return e.Message;
        }
        if (_pendingConfIndex > _log.Applied)
            return $"configuration change at index {_pendingConfIndex} is not applied yet (applied {_log.Applied}); one change at a time";
        var joint = Membership.IsJoint;
        if (joint && !change.IsLeaveJoint) return $"configuration {Membership.Voters} is joint; only leaving it is allowed";
        if (!joint && change.IsLeaveJoint) return "not in a joint configuration; nothing to leave";
        Membership next;
        try
        {
            next = NextMembership(Membership, change);
        }
        catch (ConfigurationChangeException e)
        {
            return e.Message;
        }
        // Never leave the cluster without a working quorum: the voters we heard from recently (plus members being
        // added, which cannot have been heard from yet) must form a quorum of every half of the new configuration.
        // Leaving a joint configuration is always allowed (etcd refuses no auto-leave): staying joint helps nobody.
        if (!change.IsLeaveJoint && (!HasActiveQuorum(next.Voters.Incoming) || !HasActiveQuorum(next.Voters.Outgoing)))
            return $"the new configuration {next.Voters} would have no quorum of recently active voters";
        return null;
    }

    private bool HasActiveQuorum(MajorityConfig voters)
    {
        if (voters.Count == 0) return true;
        var active = 0;
        foreach (var id in voters)
        {
            if (id == Id || !_tracker.Progress.TryGetValue(id, out var pr) || pr.LastActiveTick + _options.ElectionTimeoutTicks >= _tickCount)
                active++;
        }
        return active >= voters.QuorumSize;
    }

    // etcd: once the joint configuration with auto-leave is applied, the leader proposes leaving it. Called when entries
    // apply and on every leader tick, so a proposal dropped once (a leadership transfer under way, a full uncommitted
    // budget) is retried instead of leaving the cluster joint until something else applies.
    private void MaybeAutoLeaveJoint()
    {
        if (Role != RaftRole.Leader || !Membership.AutoLeave || _log.Applied < _pendingConfIndex) return;
        LeaderPropose([new Entry(0, 0, EntryType.ConfChange, ConfChangeV2.LeaveJointChange.Encode())], local: false);
    }
}
