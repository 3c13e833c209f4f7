using Keel.Quorum;
using Keel.Raft;
using Keel.Mvcc;
using static Keel.Node.Tests.TestCluster;

namespace Keel.Node.Tests;

public sealed class MembershipTests
{
    private static readonly InitialMember[] Initial =
    [
        new(1, "a", ["http://127.0.0.1:2380"]),
        new(2, "b", ["http://127.0.0.1:2381"]),
        new(3, "c", ["http://127.0.0.1:2382"]),
    ];

    private static TestCluster NewCluster() => new([1, 2, 3], configure: o => o with { Voters = [], InitialMembers = Initial });

    [Fact]
    public void Every_node_starts_with_the_initial_cluster_and_members_publish_their_client_urls()
    {
        var cluster = NewCluster();
        var leader = cluster.ElectLeader();
        foreach (var node in cluster.Nodes.Values)
            Assert.Equal(["a", "b", "c"], node.Members.Select(m => m.Name));
        var follower = cluster.Nodes.Values.First(n => !n.IsLeader);
        follower.PublishMember(1, new MemberAttributes(follower.Id, "renamed", ["http://127.0.0.1:2379"]));
        var published = cluster.Await(1);
        Assert.Equal(["http://127.0.0.1:2379"], published.Members!.Single(m => m.Id == follower.Id).ClientUrls);
        cluster.Step(200);
        foreach (var node in cluster.Nodes.Values)
            Assert.Equal("renamed", node.Members.Single(m => m.Id == follower.Id).Name);
        cluster.AssertInvariants();
    }

    [Fact]
    public void A_learner_is_added_catches_up_is_promoted_and_a_member_is_removed()
    {
        var cluster = NewCluster();
        var leader = cluster.ElectLeader();
        cluster.Submit(leader, 1, KvCommand.Of(new PutRequest { Key = B("k"), Value = B("v") }));
        string[] urls = ["http://127.0.0.1:2383"];
        var newId = KeelNode.MemberIdFor(urls);

        leader.SubmitMemberChange(2, MemberChange.Add(urls, isLearner: true));
        var added = cluster.Await(2);
        Assert.False(added.IsError, added.Error?.Message);
        Assert.Equal(newId, added.AddedMember!.Id);
        Assert.True(added.AddedMember.IsLearner);
        Assert.Equal(urls, added.AddedMember.PeerUrls);
        Assert.Equal(4, added.Members!.Count);

        // The same peer URLs again: refused with etcd's text.
        leader.SubmitMemberChange(3, MemberChange.Add(urls, isLearner: false));
        Assert.Equal("etcdserver: member ID already exist", cluster.Await(3).Error!.Message);
        leader.SubmitMemberChange(4, MemberChange.Add(["http://127.0.0.1:2380"], isLearner: false));
        Assert.Equal("etcdserver: Peer URLs already exists", cluster.Await(4).Error!.Message);
        leader.SubmitMemberChange(5, MemberChange.Promote(1));
        Assert.Equal("etcdserver: can only promote a learner member", cluster.Await(5).Error!.Message);

        // The new member starts (etcd --initial-cluster-state existing) and learns everything from the leader.
        var joined = cluster.Start(newId, o => o with { NodeId = newId, JoinExisting = true });
        cluster.StepUntil(() => joined.AppliedIndex == leader.AppliedIndex && joined.Members.Count == 4);
        Assert.Equal(1, joined.Store.Range(new RangeRequest { Key = B("k") }).Count);
        // It started with no configuration at all: the leader sent the bootstrap image as a snapshot, then the log.
        Assert.Equal(1, joined.SnapshotsInstalled);
        Assert.Equal(["a", "b", "c", ""], joined.Members.OrderBy(m => m.Id == newId ? 1 : 0).ThenBy(m => m.Id).Select(m => m.Name));
        // Restarted, it recovers from what it stored.
        joined = cluster.Start(newId, o => o with { NodeId = newId, JoinExisting = true });
        cluster.StepUntil(() => joined.AppliedIndex == cluster.Leader.AppliedIndex && joined.Members.Count == 4);
        Assert.Equal(0, joined.SnapshotsInstalled);

        cluster.Leader.SubmitMemberChange(6, MemberChange.Promote(newId));
        var promoted = cluster.Await(6);
        Assert.False(promoted.IsError, promoted.Error?.Message);
        Assert.False(promoted.Members!.Single(m => m.Id == newId).IsLearner);

        cluster.Leader.SubmitMemberChange(7, MemberChange.Update(newId, ["http://127.0.0.1:2390"]));
        Assert.Equal(["http://127.0.0.1:2390"], cluster.Await(7).Members!.Single(m => m.Id == newId).PeerUrls);

        var removedId = cluster.Nodes.Keys.First(id => id != cluster.Leader.Id && id != newId);
        cluster.Leader.SubmitMemberChange(8, MemberChange.Remove(removedId));
        var removed = cluster.Await(8);
        Assert.DoesNotContain(removed.Members!, m => m.Id == removedId);
        cluster.Leader.SubmitMemberChange(9, MemberChange.Remove(removedId));
        Assert.Equal("etcdserver: member not found", cluster.Await(9).Error!.Message);

        cluster.Step(1_000);
        foreach (var node in cluster.Nodes.Values.Where(n => n.Id != removedId))
        {
            Assert.False(node.Raft.Membership.IsJoint);
            Assert.Equal(cluster.Leader.Members, node.Members);
            node.AssertInvariants();
        }
        Assert.Equal(3, cluster.Leader.Raft.Membership.Voters.Incoming.Count);
        // The removed member applied its own removal and knows it must stop (etcd: "the member has been permanently
        // removed from the cluster"); nobody else thinks so.
        Assert.True(cluster.Nodes[removedId].IsRemoved);
        Assert.All(cluster.Nodes.Values.Where(n => n.Id != removedId), node => Assert.False(node.IsRemoved));
    }

    /// <summary>
    /// An add retried after "leader changed" can leave its first configuration change to commit late, after the retry's
    /// and even after a promotion: applied, that AddLearner would demote the voter (found by the kv simulation with
    /// joining members, seed 7). Every replica refuses it as a duplicate add instead.
    /// </summary>
    [Fact]
    public void A_late_add_of_a_member_already_there_does_not_demote_it()
    {
        var cluster = NewCluster();
        var leader = cluster.ElectLeader();
        string[] urls = ["http://127.0.0.1:2385"];
        var newId = KeelNode.MemberIdFor(urls);
        leader.SubmitMemberChange(1, MemberChange.Add(urls, isLearner: true));
        Assert.False(cluster.Await(1).IsError);
        cluster.Leader.SubmitMemberChange(2, MemberChange.Promote(newId));
        Assert.False(cluster.Await(2).IsError);
        Assert.False(cluster.Leader.Members.Single(m => m.Id == newId).IsLearner);

        var late = cluster.Leader.Raft.ProposeConfChange(new ConfChangeV2(ConfChangeTransition.JointImplicit, [new ConfigurationChangeItem(ConfigurationChangeType.AddLearner, newId)]));
        Assert.Equal(ProposeStatus.Appended, late.Status);
        cluster.StepUntil(() => cluster.Nodes.Values.All(n => n.AppliedIndex >= late.Index));
        cluster.Step(500);
        foreach (var node in cluster.Nodes.Values)
        {
            Assert.True(node.Raft.Membership.Voters.Contains(newId), $"node {node.Id}: {node.Raft.Membership}");
            Assert.False(node.Members.Single(m => m.Id == newId).IsLearner);
            node.AssertInvariants();
        }
    }

    [Fact]
    public void A_removed_leader_knows_it_was_removed_and_a_joiner_restoring_an_older_configuration_does_not()
    {
        var cluster = NewCluster();
        var leader = cluster.ElectLeader();
        string[] urls = ["http://127.0.0.1:2384"];
        var newId = KeelNode.MemberIdFor(urls);
        // The joiner restores the bootstrap image (a configuration without itself), then applies its own add.
        leader.SubmitMemberChange(1, MemberChange.Add(urls, isLearner: false));
        Assert.False(cluster.Await(1).IsError);
        var joined = cluster.Start(newId, o => o with { NodeId = newId, JoinExisting = true });
        cluster.StepUntil(() => joined.AppliedIndex == cluster.Leader.AppliedIndex && joined.Members.Count == 4);
        Assert.False(joined.IsRemoved);

        var oldLeader = cluster.Leader;
        oldLeader.SubmitMemberChange(2, MemberChange.Remove(oldLeader.Id));
        var removed = cluster.Await(2);
        Assert.False(removed.IsError, removed.Error?.Message);
        cluster.StepUntil(() => oldLeader.IsRemoved);
        Assert.All(cluster.Nodes.Values.Where(n => n.Id != oldLeader.Id), node => Assert.False(node.IsRemoved));
    }

    [Fact]
    public void A_removed_leader_stays_a_peer_of_the_others_until_the_joint_configuration_is_left()
    {
        // A removal is a joint change: the member leaves the member table when the joint configuration is entered, but
        // votes in its outgoing half until the configuration is left. Keep one follower out, so the cluster stays joint:
        // the other follower must still talk to the removed leader (its transport keeps it), or the leader never hears
        // the acks that commit its own removal, steps down by check quorum and never learns it was removed (the real
        // failure of the leader-removal test on real processes, about one run in ten).
        var cluster = NewCluster();
        var leader = cluster.ElectLeader();
        var followers = cluster.Nodes.Values.Where(n => n.Id != leader.Id).ToArray();
        var (staying, held) = (followers[0], followers[1]);
        cluster.Isolated.Add(held.Id);
        leader.SubmitMemberChange(1, MemberChange.Remove(leader.Id));
        cluster.StepUntil(() => staying.Raft.Membership.IsJoint);
        Assert.DoesNotContain(staying.Members, m => m.Id == leader.Id);
        Assert.True(staying.IsPeer(leader.Id), $"{staying.Raft.Membership}");
        Assert.True(leader.IsPeer(staying.Id));
        Assert.False(leader.IsRemoved);
        // An outgoing voter still votes: nobody tells it it was removed until the joint configuration is left.
        Assert.Null(staying.RemovalNoticeFor(leader.Id));
        Assert.Empty(staying.RemovedMembersToNotify());

        cluster.Isolated.Remove(held.Id);
        cluster.StepUntil(() => leader.IsRemoved);
        cluster.StepUntil(() => followers.All(f => !f.Raft.Membership.IsJoint && !f.Raft.Membership.Contains(leader.Id)));
        Assert.All(followers, f => Assert.False(f.IsPeer(leader.Id)));
        Assert.All(followers, f => Assert.NotNull(f.RemovalNoticeFor(leader.Id)));
        Assert.All(followers, f => Assert.True(f.IsPeer(followers.Single(o => o.Id != f.Id).Id)));
        Assert.All(followers, f => Assert.False(f.IsRemoved));
    }

    [Fact]
    public void A_member_removed_while_cut_off_is_told_by_a_member_that_knows_and_restarted_members_remember_the_removal()
    {
        var cluster = new TestCluster([1, 2, 3], configure: o => o with
        {
            Voters = [], InitialMembers = Initial, SnapshotEveryEntries = 20, SnapshotTrailingEntries = 5,
        });
        var leader = cluster.ElectLeader();
        var cutOff = cluster.Nodes.Values.First(n => !n.IsLeader);
        var staying = cluster.Nodes.Values.Single(n => n.Id != leader.Id && n.Id != cutOff.Id);
        cluster.Isolated.Add(cutOff.Id);
        leader.SubmitMemberChange(1, MemberChange.Remove(cutOff.Id));
        Assert.False(cluster.Await(1).IsError);
        cluster.StepUntil(() => new[] { leader, staying }.All(n => !n.Raft.Membership.IsJoint && !n.Raft.Membership.Contains(cutOff.Id)));
        var removedAt = staying.RemovalNoticeFor(cutOff.Id);
        Assert.NotNull(removedAt);
        Assert.Equal(removedAt, leader.RemovalNoticeFor(cutOff.Id));
        Assert.Equal(removedAt, leader.RemovedMembersToNotify()[cutOff.Id]);
        Assert.Null(staying.RemovalNoticeFor(leader.Id));
        Assert.False(cutOff.IsRemoved);
        Assert.True(cutOff.AppliedIndex < removedAt);

        // Enough writes to snapshot past the removal: a restarted member restores the removal from its snapshot.
        for (ulong i = 0; i < 45; i++) cluster.Submit(cluster.Leader, 100 + i, KvCommand.Of(new PutRequest { Key = B($"k{i}"), Value = B("v") }));
        cluster.Step(200);
        Assert.True(staying.SnapshotIndex > removedAt, $"snapshot at {staying.SnapshotIndex}, removal at {removedAt}");
        var restarted = cluster.Start(staying.Id);
        cluster.StepUntil(() => restarted.AppliedIndex == cluster.Leader.AppliedIndex);
        Assert.Equal(removedAt, restarted.RemovalNoticeFor(cutOff.Id));

        // The cut-off member refuses a notice of an index it applied that is not its own removal, and accepts the real one.
        Assert.False(cutOff.AcceptRemovalNotice(staying.Id, cutOff.AppliedIndex));
        Assert.False(cutOff.IsRemoved);
        Assert.True(cutOff.AcceptRemovalNotice(restarted.Id, removedAt!.Value));
        Assert.True(cutOff.IsRemoved);
        Assert.Equal(restarted.Id, cutOff.RemovalNoticeFrom);
        Assert.All(cluster.Nodes.Values.Where(n => n.Id != cutOff.Id), node => Assert.False(node.IsRemoved));
    }

    [Fact]
    public void A_removed_members_id_is_not_added_again_and_a_joiner_not_yet_admitted_ignores_removal_notices()
    {
        // The id of an added member is a hash of its peer URLs: adding a removed member again at the same URLs would
        // bring back its old id, and the new incarnation, replaying the log, would apply the old removal of its own id
        // and stop (it did, before the refusal). etcd never reuses an id; Keel refuses it with what to do instead.
        var cluster = NewCluster();
        cluster.ElectLeader();
        string[] urls = ["http://127.0.0.1:2386"];
        var id = KeelNode.MemberIdFor(urls);
        cluster.Leader.SubmitMemberChange(1, MemberChange.Add(urls, isLearner: false));
        Assert.False(cluster.Await(1).IsError);
        var first = cluster.Start(id, o => o with { NodeId = id, JoinExisting = true });
        cluster.StepUntil(() => first.AppliedIndex == cluster.Leader.AppliedIndex && first.Members.Count == 4);
        cluster.Leader.SubmitMemberChange(2, MemberChange.Remove(id));
        Assert.False(cluster.Await(2).IsError);
        cluster.StepUntil(() => first.IsRemoved);
        Assert.Equal(0UL, first.RemovalNoticeFrom);
        cluster.StepUntil(() => cluster.Nodes.Values.Where(n => n.Id != id).All(n => n.RemovalNoticeFor(id) is not null));
        var removedAt = cluster.Leader.RemovalNoticeFor(id)!.Value;
        // It applied that removal itself: a notice of it names its own removal.
        Assert.True(first.AcceptRemovalNotice(cluster.Leader.Id, removedAt));

        cluster.Leader.SubmitMemberChange(3, MemberChange.Add(urls, isLearner: false));
        var again = cluster.Await(3);
        Assert.True(again.IsError);
        Assert.Contains($"member {id:x16} (peer URLs {urls[0]}) was removed from this cluster by the entry at index {removedAt}", again.Error!.Message);
        Assert.Contains("give the new member other peer URLs", again.Error.Message);

        // At other URLs it is a new member with a new id. Before it restored anything it is in no configuration, and
        // once admitted it has applied that index without being removed by it: a notice of the old removal (from a
        // confused peer) teaches it nothing either way.
        string[] otherUrls = ["http://127.0.0.1:2387"];
        var newId = KeelNode.MemberIdFor(otherUrls);
        cluster.Leader.SubmitMemberChange(4, MemberChange.Add(otherUrls, isLearner: false));
        Assert.False(cluster.Await(4).IsError);
        var second = cluster.Start(newId, o => o with { NodeId = newId, JoinExisting = true });
        Assert.False(second.AcceptRemovalNotice(cluster.Leader.Id, removedAt));
        cluster.StepUntil(() => second.AppliedIndex == cluster.Leader.AppliedIndex && second.Members.Count == 4);
        Assert.False(second.AcceptRemovalNotice(cluster.Leader.Id, removedAt));
        Assert.False(second.IsRemoved);
        Assert.All(cluster.Nodes.Values.Where(n => n.Id != id), node => Assert.Equal(removedAt, node.RemovalNoticeFor(id)));
        cluster.Nodes.Remove(id);
        cluster.AssertInvariants();
    }

    [Fact]
    public void A_version_4_image_without_removed_members_loads_and_a_damaged_list_is_refused()
    {
        var cluster = new TestCluster([1]);
        var leader = cluster.ElectLeader();
        cluster.Submit(leader, 1, KvCommand.Of(new PutRequest { Key = B("k"), Value = B("v") }));
        var image = KeelNode.VerifyBackup(leader.EncodeBackup()).ToArray();
        Assert.Equal(5, image[4]);
        Assert.Equal([0, 0, 0, 0], image[^4..]); // no removed members: a zero count
        var version4 = image[..^4];
        version4[4] = 4;
        Assert.Equal(leader.Store.CurrentRevision, KeelNode.DescribeBackup(version4).Revision);
        // One removed member claimed, none there; and one removed at index 0.
        var truncated = (byte[])image.Clone();
        truncated[^4] = 1;
        Assert.Throws<InvalidCommandException>(() => KeelNode.DescribeBackup(truncated));
        byte[] zeroIndex = [.. image[..^4], 1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        Assert.Throws<InvalidCommandException>(() => KeelNode.DescribeBackup(zeroIndex));
    }

    [Fact]
    public void Leadership_moves_on_request_and_status_reports_the_node()
    {
        var cluster = NewCluster();
        var leader = cluster.ElectLeader();
        cluster.Submit(leader, 1, KvCommand.Of(new PutRequest { Key = B("k"), Value = B("v") }));
        var target = cluster.Nodes.Keys.First(id => id != leader.Id);
        leader.TransferLeadership(target);
        cluster.StepUntil(() => cluster.HasLeader && cluster.Leader.Id == target);
        var status = cluster.Nodes[target].Status();
        Assert.Equal(target, status.Leader);
        Assert.Equal(target, status.MemberId);
        Assert.Equal(2, status.Revision);
        Assert.True(status.AppliedIndex <= status.CommittedIndex && status.AppliedIndex > 1);
        Assert.True(status.DbSizeBytes > 0);
        Assert.False(status.IsLearner);
    }
}
