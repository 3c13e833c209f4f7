using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Keel.Core;
using Keel.Quorum;
using Keel.Raft;

namespace Keel.Node;

// Membership (etcd's Cluster API, etcdserver/api/membership/cluster.go): a replicated member table kept in step with
// Raft's configuration. Add records the new member's peer URLs in a normal entry first (Raft's configuration-change
// entry carries only ids), then the proposing node proposes the joint configuration change; Remove and Promote are
// configuration changes alone; Update and Publish are normal entries. Every replica applies them in log order.
public sealed partial class KeelNode
{
    private readonly record struct PendingMemberChange(ulong RequestId, long DeadlineMs, MemberChangeKind Kind);

    private readonly SortedDictionary<ulong, MemberInfo> _members = [];
    // Replicated: peer URLs recorded by an applied Add whose configuration change has not applied yet.
    private readonly SortedDictionary<ulong, MemberChange> _pendingMemberAdds = [];
    // Local: member changes this node proposed, waiting for their configuration change to apply (by member id).
    private readonly SortedDictionary<ulong, PendingMemberChange> _memberChangesAwaitingConf = [];
    private readonly List<(ulong RequestId, MemberChange Change)> _deferredConfChanges = [];
    // Replicated: members removed from the table, with the index of the entry that removed them (etcd keeps removed
    // ids in its membership store and answers their messages with "removed"). Bounded: the newest
    // MaxRemovedMembersRemembered removals are kept.
    private readonly SortedDictionary<ulong, ulong> _removedMembers = [];

    /// <summary>
    /// How many removed members a replica remembers (the newest removals), to tell each one that it was removed if it
    /// comes back after a partition (<see cref="RemovalNoticeFor"/>). Older removals are forgotten in log order on every
    /// replica alike; a member removed that long ago and still running is left to its operator.
    /// </summary>
    public const int MaxRemovedMembersRemembered = 1024;

    /// <summary>The members as this replica's applied state knows them, in id order (etcd MemberList).</summary>
    public IReadOnlyList<MemberInfo> Members => [.. _members.Values];

    /// <summary>
    /// Counts changes to the member table (and to the Raft configuration, which changes with it), so that a host can
    /// follow both cheaply after every turn.
    /// </summary>
    public long MemberTableVersion { get; private set; }

    /// <summary>
    /// True when this member must still exchange Raft messages with <paramref name="id"/>: the member table lists it, or
    /// the Raft configuration still counts it. A member removed by a joint change leaves the table when the joint
    /// configuration is entered but stays an outgoing voter until it is left; the transport must keep reaching it until
    /// then, or a removed leader never hears the acks that commit its own removal (it then steps down by check quorum
    /// and never learns it was removed). A joiner whose table is still empty (it has not restored the cluster's state
    /// yet) keeps every peer its flags name. The leader this member follows is always a peer: a joiner that restored a
    /// snapshot older than the leader's own admission has it in neither its table nor its configuration until it
    /// applies that admission, and must answer it meanwhile (the simulator found a joiner waiting for a leadership
    /// change to make progress).
    /// </summary>
    public bool IsPeer(ulong id) => id != Id && (_members.Count == 0 || _members.ContainsKey(id) || _raft.Membership.Contains(id) || id == _raft.Leader);

    /// <summary>
    /// Members this replica knows were removed and no longer counts in any configuration, each with the log index of the
    /// entry that removed it: whoever of them still talks to this member must be told it was removed
    /// (<see cref="AcceptRemovalNotice"/> on its side). A member in the outgoing half of a joint configuration is not
    /// listed: it still votes until the configuration is left. Changes only when <see cref="MemberTableVersion"/> does.
    /// </summary>
    public IReadOnlyDictionary<ulong, ulong> RemovedMembersToNotify()
    {
        var notify = new Dictionary<ulong, ulong>();
        foreach (var (id, removedAtIndex) in _removedMembers)
            if (!IsPeer(id)) notify[id] = removedAtIndex;
        return notify;
    }

    /// <summary>The log index at which <paramref name="id"/> was removed, when it is to be told so; else null.</summary>
    public ulong? RemovalNoticeFor(ulong id) =>
        _removedMembers.TryGetValue(id, out var removedAtIndex) && !IsPeer(id) ? removedAtIndex : null;

    /// <summary>
    /// Member <paramref name="from"/> says this member was removed from the cluster by the entry at
    /// <paramref name="removedAtIndex"/> (what etcd's peers answer a removed member: "the member has been permanently
    /// removed from the cluster"). A member cut off while it was removed never applies its removal, and would otherwise
    /// run, campaign and serve stale reads until an operator stops it. Accepted, and <see cref="IsRemoved"/> set, only
    /// when the removal is of this incarnation of the member: this member is in its own configuration (a joiner not yet
    /// admitted is not), and either it has not applied that index yet (its membership predates the removal: a member
    /// added again under the same id, its peer URLs being the same, was added by a later entry and applied it) or the
    /// removal it applied itself is that very entry. A notice from a member that is behind a later re-admission is
    /// refused. Returns whether the notice was accepted.
    /// </summary>
    public bool AcceptRemovalNotice(ulong from, ulong removedAtIndex)
    {
        if (IsRemoved) return true;
        if (from == Id || removedAtIndex == 0 || !_raft.Membership.Contains(Id)) return false;
        var sameRemoval = _removedMembers.TryGetValue(Id, out var own) && own == removedAtIndex;
        if (AppliedIndex >= removedAtIndex && !sameRemoval) return false;
        IsRemoved = true;
        RemovalNoticeFrom = from;
        return true;
    }

    /// <summary>The member whose notice told this member it was removed (<see cref="AcceptRemovalNotice"/>); 0 when it applied its removal itself or was not removed.</summary>
    public ulong RemovalNoticeFrom { get; private set; }

    private void InitializeMembers()
    {
        if (_options.InitialMembers.Count > 0)
            foreach (var member in _options.InitialMembers)
                _members[member.Id] = new MemberInfo(member.Id, member.Name, [.. member.PeerUrls], [], false);
        else
            foreach (var id in _options.Voters)
                _members[id] = new MemberInfo(id, "", [], [], false);
    }

    /// <summary>
    /// Changes the membership (etcd MemberAdd, MemberRemove, MemberPromote, MemberUpdate). Add and Remove and Promote go
    /// through a Raft joint configuration change (ConfChangeV2, left automatically); the answer, with the member list
    /// after the change (<see cref="KvResult.Members"/>, and <see cref="KvResult.AddedMember"/> for Add), arrives in the
    /// <see cref="Outbox"/> once the change applied here. Refusals use etcd's texts ("etcdserver: member not found",
    /// "etcdserver: Peer URLs already exists", "etcdserver: can only promote a learner member"...).
    /// </summary>
    /// <param name="requestId">The client's id for the request, echoed in the answer.</param>
    /// <param name="change">The change; for Add the node picks the id from the peer URLs (the same URLs always give the same id).</param>
    public void SubmitMemberChange(ulong requestId, MemberChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        if (!IsLeader && _raft.Leader == 0)
        {
            Respond(KvResult.Failed(requestId, KeelError.NoLeader));
            return;
        }
        if (change.Kind == MemberChangeKind.Add) change = change.WithMemberId(MemberIdFor(change.PeerUrls));
        // Only the leader answers from its member table at once: a follower's may be behind (a joiner still receiving
        // its snapshot has none and would say "member not found" of every founder). Wherever it was submitted, the
        // change is checked again where it applies, on every replica in log order (ApplyMemberChange,
        // RefusedAtApply), as etcd validates configuration changes when it applies them.
        if (change.Kind == MemberChangeKind.Add && change.PeerUrls.Count == 0)
        {
            Respond(KvResult.Failed(requestId, KeelError.MembershipRefused("keel: a member needs at least one peer URL", "InvalidArgument")));
            return;
        }
        if (IsLeader && CheckMemberChange(change) is { } refused)
        {
            Respond(KvResult.Failed(requestId, refused));
            return;
        }
        if (_memberChangesAwaitingConf.ContainsKey(change.MemberId))
        {
            Respond(KvResult.Failed(requestId, KeelError.MembershipRefused("keel: a change of this member is already in progress", "Aborted")));
            return;
        }
        if (change.Kind is MemberChangeKind.Add or MemberChangeKind.Update) Submit(requestId, KvCommand.OfMemberChange(change));
        else ProposeMemberConfChange(requestId, change);
    }

    /// <summary>
    /// Records this member's name and client URLs in the member table (what etcd's server publishes after it starts);
    /// the answer carries the member list.
    /// </summary>
    public void PublishMember(ulong requestId, MemberAttributes attributes)
    {
        ArgumentNullException.ThrowIfNull(attributes);
        Submit(requestId, KvCommand.PublishMember(attributes));
    }

    /// <summary>
    /// The voter a stopping leader should hand leadership to: the most caught-up other voter (highest match index,
    /// ties to the lower id), or 0 when this node is not the leader or has no other voter.
    /// </summary>
    public ulong MostCaughtUpVoter()
    {
        if (!IsLeader) return 0;
        ulong best = 0, bestMatch = 0;
        foreach (var (id, progress) in _raft.Tracker.Members)
        {
            if (id == Id || !_raft.Membership.Voters.Contains(id)) continue;
            if (best == 0 || progress.Match > bestMatch) (best, bestMatch) = (id, progress.Match);
        }
        return best;
    }

    /// <summary>Asks the leader to hand leadership to <paramref name="to"/> (etcd MoveLeader); watch <see cref="Status"/> for the outcome.</summary>
    public void TransferLeadership(ulong to)
    {
        _raft.TransferLeadership(to);
        HandleReady();
    }

    /// <summary>
    /// A snapshot of this node for Maintenance.Status: leader, term, applied and committed index, store revision,
    /// compaction revision and an estimate of the store's size. The size is the encoded store snapshot's length,
    /// computed on each call (linear in the store), so call it per request, not in a loop.
    /// </summary>
    public KeelNodeStatus Status() => new(Id, _raft.Leader, _raft.Term, AppliedIndex, _raft.Log.Committed,
        _store.CurrentRevision, _store.CompactRevision, _store.SizeBytes, _raft.Membership.IsLearner(Id));

    /// <summary>The id a new member with <paramref name="peerUrls"/> gets: a hash of its sorted URLs (etcd hashes them too).</summary>
    public static ulong MemberIdFor(IReadOnlyList<string> peerUrls)
    {
        ArgumentNullException.ThrowIfNull(peerUrls);
        var sorted = peerUrls.Order(StringComparer.Ordinal);
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n', sorted)));
        var id = BinaryPrimitives.ReadUInt64BigEndian(digest) & 0x7FFF_FFFF_FFFF_FFFF;
        return id == 0 ? 1 : id;
    }

    private KeelError? CheckMemberChange(MemberChange change)
    {
        var known = _members.TryGetValue(change.MemberId, out var member);
        switch (change.Kind)
        {
            case MemberChangeKind.Add:
                if (change.PeerUrls.Count == 0) return KeelError.MembershipRefused("keel: a member needs at least one peer URL", "InvalidArgument");
                if (known) return KeelError.MembershipRefused("etcdserver: member ID already exist");
                // An id is a hash of the peer URLs, so a member added again at the same URLs would come back under the
                // id it was removed with. Its new incarnation, replaying the log from the start, would apply the old
                // removal of its own id and stop (etcd never reuses an id: its ids are random). Refused, as etcd
                // refuses a removed id ("membership: ID removed"), with what to do instead.
                if (_removedMembers.TryGetValue(change.MemberId, out var removedAtIndex))
                    return KeelError.MembershipRefused($"keel: member {change.MemberId:x16} (peer URLs {string.Join(",", change.PeerUrls)}) was removed " +
                        $"from this cluster by the entry at index {removedAtIndex}, and a removed member's id is not added again " +
                        "(membership: ID removed); give the new member other peer URLs (another port or host name)");
                return PeerUrlsTaken(change.PeerUrls, change.MemberId) ? KeelError.MembershipRefused("etcdserver: Peer URLs already exists") : null;
            case MemberChangeKind.Update:
                if (!known) return KeelError.MembershipRefused("etcdserver: member not found", "NotFound");
                return PeerUrlsTaken(change.PeerUrls, change.MemberId) ? KeelError.MembershipRefused("etcdserver: Peer URLs already exists") : null;
            case MemberChangeKind.Remove:
                return known ? null : KeelError.MembershipRefused("etcdserver: member not found", "NotFound");
            case MemberChangeKind.Promote:
                if (!known) return KeelError.MembershipRefused("etcdserver: member not found", "NotFound");
                return member!.IsLearner ? null : KeelError.MembershipRefused("etcdserver: can only promote a learner member");
            default:
                return KeelError.MembershipRefused($"keel: unknown member change {change.Kind}", "InvalidArgument");
        }
    }

    private bool PeerUrlsTaken(IReadOnlyList<string> peerUrls, ulong except)
    {
        foreach (var (id, member) in _members)
            if (id != except && member.PeerUrls.Intersect(peerUrls, StringComparer.Ordinal).Any()) return true;
        return false;
    }

    private void ProposeMemberConfChange(ulong requestId, MemberChange change)
    {
        var type = change.Kind switch
        {
            MemberChangeKind.Add => change.IsLearner ? ConfigurationChangeType.AddLearner : ConfigurationChangeType.AddVoter,
            MemberChangeKind.Promote => ConfigurationChangeType.AddVoter,
            _ => ConfigurationChangeType.RemoveNode,
        };
        var result = _raft.ProposeConfChange(new ConfChangeV2(ConfChangeTransition.JointImplicit, [new ConfigurationChangeItem(type, change.MemberId)]));
        if (result.Status == ProposeStatus.Dropped)
        {
            Respond(KvResult.Failed(requestId, result.DropReason switch
            {
                ProposalDropReason.ConfChangeRefused => KeelError.MembershipRefused("etcdserver: unhealthy cluster", "Unavailable"),
                ProposalDropReason.Overloaded or ProposalDropReason.QuorumLagging => KeelError.TooManyRequests,
                _ => KeelError.NoLeader,
            }));
            return;
        }
        _memberChangesAwaitingConf[change.MemberId] = new PendingMemberChange(requestId, Deadline(), change.Kind);
    }

    private KvResult ApplyMemberChange(MemberChange change)
    {
        if (CheckMemberChange(change) is { } refused) return KvResult.Failed(0, refused);
        if (change.Kind == MemberChangeKind.Add) _pendingMemberAdds[change.MemberId] = change;
        else _members[change.MemberId] = _members[change.MemberId] with { PeerUrls = [.. change.PeerUrls] };
        MemberTableVersion++;
        return new KvResult { RequestId = 0, Members = Members };
    }

    private KvResult ApplyPublishMember(MemberAttributes attributes)
    {
        if (!_members.TryGetValue(attributes.MemberId, out var member))
            return KvResult.Failed(0, KeelError.MembershipRefused("etcdserver: member not found", "NotFound"));
        _members[attributes.MemberId] = member with { Name = attributes.Name, ClientUrls = [.. attributes.ClientUrls] };
        MemberTableVersion++;
        return new KvResult { RequestId = 0, Members = Members };
    }

    /// <summary>
    /// This member applied its own removal from the cluster (etcd: "the member has been permanently removed from the
    /// cluster"): it is no longer in the configuration, will get no more entries, and must stop; the driver tells its
    /// host (<see cref="INodeDriverHost.Removed"/>), which stops the member. Set when the configuration that drops it
    /// is applied (for a joint change, when the joint configuration is left).
    /// </summary>
    public bool IsRemoved { get; private set; }

    // Refused by every replica alike (the entry applies as a no-op), with etcd's text for whoever proposed it: a
    // removal of a member the table does not hold, a promotion of a member that is not a learner, and an add as learner
    // of a member already there. A proposal from a member whose table was behind gets here, and so does the conf change
    // of an add retried after "leader changed", which may commit after the retry's, even after a promotion: Raft would
    // apply that AddLearner as a demotion of the voter (etcd's Cluster API has no demotion).
    private KeelError? RefusedAtApply(ConfChangeV2 change)
    {
        foreach (var item in change.Changes)
        {
            var known = _members.TryGetValue(item.NodeId, out var member);
            switch (item.Type)
            {
                case ConfigurationChangeType.RemoveNode when !known:
                    return KeelError.MembershipRefused("etcdserver: member not found", "NotFound");
                case ConfigurationChangeType.AddVoter when known && !member!.IsLearner:
                    return KeelError.MembershipRefused("etcdserver: can only promote a learner member");
                case ConfigurationChangeType.AddLearner when known:
                    return KeelError.MembershipRefused("etcdserver: member ID already exist");
            }
        }
        return null;
    }

    private void ApplyConfChangeEntry(Entry entry)
    {
        var change = ConfChangeV2.Decode(entry.Data.Span);
        if (RefusedAtApply(change) is { } refusedAtApply)
        {
            foreach (var item in change.Changes)
                if (TakeWaiting(item, _members.ContainsKey(item.NodeId)) is { } refusedWaiting) Respond(KvResult.Failed(refusedWaiting.RequestId, refusedAtApply));
            return;
        }
        var wasMember = _raft.Membership.Contains(Id);
        try
        {
            _raft.ApplyConfChange(change);
            // Covers the member table's changes below too: a host reads the version only after the turn.
            MemberTableVersion++;
            // Only a member that was in the configuration can be removed: a joiner that restored a snapshot taken
            // before its own admission is not in it yet, and is added by a later entry.
            if (wasMember && !_raft.Membership.IsJoint && !_raft.Membership.Contains(Id)) IsRemoved = true;
        }
        catch (ConfigurationChangeException refused)
        {
            // Every replica refuses the same entry the same way; the member table stays as it was.
            foreach (var item in change.Changes)
                if (TakeWaiting(item, _members.ContainsKey(item.NodeId)) is { } waiting)
                    Respond(KvResult.Failed(waiting.RequestId, KeelError.MembershipRefused("keel: configuration change refused: " + refused.Message)));
            return;
        }
        foreach (var item in change.Changes)
        {
            var id = item.NodeId;
            var wasKnown = _members.ContainsKey(id);
            MemberInfo? added = null;
            switch (item.Type)
            {
                case ConfigurationChangeType.AddVoter or ConfigurationChangeType.AddLearner:
                    var learner = item.Type == ConfigurationChangeType.AddLearner;
                    if (_members.TryGetValue(id, out var member)) _members[id] = member with { IsLearner = learner };
                    else
                    {
                        _removedMembers.Remove(id);
                        _pendingMemberAdds.Remove(id, out var recorded);
                        added = new MemberInfo(id, "", recorded is null ? [] : [.. recorded.PeerUrls], [], learner);
                        _members[id] = added;
                    }
                    break;
                case ConfigurationChangeType.RemoveNode:
                    _members.Remove(id);
                    _pendingMemberAdds.Remove(id);
                    RememberRemoval(id, entry.Index);
                    break;
            }
            if (TakeWaiting(item, wasKnown) is { } waiting)
                Respond(new KvResult { RequestId = waiting.RequestId, Members = Members, AddedMember = added ?? (_members.TryGetValue(id, out var m) && waiting.Kind == MemberChangeKind.Add ? m : null) });
        }
    }

    private void RememberRemoval(ulong id, ulong index)
    {
        _removedMembers[id] = index;
        if (_removedMembers.Count <= MaxRemovedMembersRemembered) return;
        // The oldest removal goes, on every replica alike (the index is replicated state).
        var oldest = _removedMembers.MinBy(pair => pair.Value).Key;
        _removedMembers.Remove(oldest);
    }

    // The change waiting for this applied item, taken off the waiting list: a change waits for its own kind of item (an
    // add for an add of a new member, a promotion for a voter item of a known learner, a removal for a removal), so a
    // late entry of an add that was retried does not answer the promotion of the same member that followed it.
    private PendingMemberChange? TakeWaiting(ConfigurationChangeItem item, bool wasKnown)
    {
        if (!_memberChangesAwaitingConf.TryGetValue(item.NodeId, out var waiting)) return null;
        var matches = waiting.Kind switch
        {
            MemberChangeKind.Add => item.Type is ConfigurationChangeType.AddVoter or ConfigurationChangeType.AddLearner,
            MemberChangeKind.Promote => item.Type == ConfigurationChangeType.AddVoter && wasKnown,
            MemberChangeKind.Remove => item.Type == ConfigurationChangeType.RemoveNode,
            _ => false,
        };
        if (!matches) return null;
        _memberChangesAwaitingConf.Remove(item.NodeId);
        return waiting;
    }

    private void ProposeDeferredConfChanges()
    {
        if (_deferredConfChanges.Count == 0) return;
        var changes = _deferredConfChanges.ToArray();
        _deferredConfChanges.Clear();
        foreach (var (requestId, change) in changes) ProposeMemberConfChange(requestId, change);
    }

    private void ExpireMemberChanges()
    {
        List<ulong>? expired = null;
        foreach (var (id, waiting) in _memberChangesAwaitingConf)
            if (waiting.DeadlineMs <= _nowMs) (expired ??= []).Add(id);
        if (expired is null) return;
        foreach (var id in expired)
        {
            _memberChangesAwaitingConf.Remove(id, out var waiting);
            Respond(KvResult.Failed(waiting.RequestId, KeelError.RequestTimedOut));
        }
    }

    private void AssertMemberInvariants()
    {
        var membership = _raft.Membership;
        if (membership.IsJoint) return;
        // Once no joint configuration is in progress, the member table names exactly Raft's voters and learners.
        var raftMembers = membership.Voters.Incoming.Concat(membership.Learners).Order().ToArray();
        Invariant.Check(raftMembers.SequenceEqual(_members.Keys), "the member table names exactly Raft's members");
        Invariant.Check(_removedMembers.Count <= MaxRemovedMembersRemembered, "the removed members are bounded");
        foreach (var id in _removedMembers.Keys)
            Invariant.Check(!_members.ContainsKey(id), "a removed member is not in the member table");
        foreach (var (id, member) in _members)
            Invariant.Check(member.IsLearner == membership.IsLearner(id), "a member is a learner exactly when Raft's configuration says so");
    }
}

/// <summary>A node's state for etcd's Maintenance.Status.</summary>
/// <param name="MemberId">This node's id.</param>
/// <param name="Leader">The leader this node knows (0: none).</param>
/// <param name="Term">The Raft term.</param>
/// <param name="AppliedIndex">The highest log index applied.</param>
/// <param name="CommittedIndex">The highest log index known committed.</param>
/// <param name="Revision">The store revision.</param>
/// <param name="CompactRevision">The last compaction revision (0: never).</param>
/// <param name="DbSizeBytes">The store's size, kept up to date incrementally (<see cref="Keel.Mvcc.MvccStore.SizeBytes"/>).</param>
/// <param name="IsLearner">True when this node is a learner.</param>
public sealed record KeelNodeStatus(ulong MemberId, ulong Leader, ulong Term, ulong AppliedIndex, ulong CommittedIndex,
    long Revision, long CompactRevision, long DbSizeBytes, bool IsLearner);
