using static Keel.Protocol.Tests.KvWireTests;
using static Keel.Protocol.Tests.WireAssert;
using K = Keel.Protocol.Etcd.Etcdserverpb;
using KElection = Keel.Protocol.Etcd.V3Electionpb;
using KLock = Keel.Protocol.Etcd.V3Lockpb;

namespace Keel.Protocol.Tests;

/// <summary>Cluster, Maintenance, Lock and Election messages cross between dotnet-etcd and Keel field for field.</summary>
public sealed class ClusterLockElectionWireTests
{
    private static K.Member KeelMember(ulong id, bool learner) => new()
    {
        ID = id, Name = $"n{id}", PeerURLs = { $"http://127.0.0.{id}:2380", "http://[::1]:2380" }, ClientURLs = { $"http://127.0.0.{id}:2379" }, IsLearner = learner,
    };

    [Fact]
    public void Member_list_crosses_both_ways()
    {
        var request = new Etcdserverpb.MemberListRequest { Linearizable = true };
        FullyPopulated(request);
        Assert.True(Crosses(request, K.MemberListRequest.Parser).Linearizable);

        var response = new K.MemberListResponse { Header = KeelHeader(), Members = { KeelMember(1, false), KeelMember(2, true) } };
        FullyPopulated(response);
        FullyPopulated(response.Members[1]);
        Etcdserverpb.MemberListResponse back = Crosses(response, Etcdserverpb.MemberListResponse.Parser);

        Assert.Equal(["n1", "n2"], back.Members.Select(m => m.Name));
        Assert.True(back.Members[1].IsLearner);
        Assert.Equal(["http://127.0.0.2:2380", "http://[::1]:2380"], back.Members[1].PeerURLs);
    }

    [Fact]
    public void Member_add_as_learner_crosses_both_ways()
    {
        var request = new Etcdserverpb.MemberAddRequest { PeerURLs = { "http://127.0.0.4:2380" }, IsLearner = true };
        FullyPopulated(request);
        Assert.True(Crosses(request, K.MemberAddRequest.Parser).IsLearner);

        var response = new K.MemberAddResponse { Header = KeelHeader(), Member = KeelMember(4, true), Members = { KeelMember(1, false), KeelMember(4, true) } };
        FullyPopulated(response);
        Assert.Equal(4ul, Crosses(response, Etcdserverpb.MemberAddResponse.Parser).Member.ID);
    }

    [Fact]
    public void Status_crosses_back_to_the_client_with_every_field()
    {
        var response = new K.StatusResponse
        {
            Header = KeelHeader(), Version = "3.4.23", DbSize = 4096, Leader = 2, RaftIndex = 100, RaftTerm = 3, RaftAppliedIndex = 99,
            Errors = { "NOSPACE" }, DbSizeInUse = 2048, IsLearner = true, StorageVersion = "3.4.0", DbSizeQuota = 2L << 30,
            DowngradeInfo = new K.DowngradeInfo { Enabled = true, TargetVersion = "3.4.0" },
        };
        FullyPopulated(response);

        Etcdserverpb.StatusResponse parsed = Crosses(response, Etcdserverpb.StatusResponse.Parser);

        Assert.Equal("3.4.23", parsed.Version);
        Assert.Equal(99ul, parsed.RaftAppliedIndex);
        Assert.Equal(2L << 30, parsed.DbSizeQuota);
    }

    [Fact]
    public void Lock_and_unlock_cross_both_ways()
    {
        var request = new V3Lockpb.LockRequest { Name = Bytes("my-lock"), Lease = 0x694d_7a1f_3c2b };
        FullyPopulated(request);
        KLock.LockRequest parsed = Crosses(request, KLock.LockRequest.Parser);
        Assert.Equal("my-lock", parsed.Name.ToStringUtf8());

        var response = new KLock.LockResponse { Header = KeelHeader(61), Key = Bytes("my-lock/694d7a1f3c2b") };
        FullyPopulated(response);
        Assert.Equal("my-lock/694d7a1f3c2b", Crosses(response, V3Lockpb.LockResponse.Parser).Key.ToStringUtf8());

        Assert.Equal("my-lock/694d7a1f3c2b", Crosses(new V3Lockpb.UnlockRequest { Key = Bytes("my-lock/694d7a1f3c2b") }, KLock.UnlockRequest.Parser).Key.ToStringUtf8());
        Assert.Equal(62, Crosses(new KLock.UnlockResponse { Header = KeelHeader(62) }, V3Lockpb.UnlockResponse.Parser).Header.Revision);
    }

    [Fact]
    public void Campaign_crosses_both_ways()
    {
        var request = new V3Electionpb.CampaignRequest { Name = Bytes("leader"), Lease = 44, Value = Bytes("node-a") };
        FullyPopulated(request);
        Assert.Equal("node-a", Crosses(request, KElection.CampaignRequest.Parser).Value.ToStringUtf8());

        var leaderKey = new KElection.LeaderKey { Name = Bytes("leader"), Key = Bytes("leader/2c"), Rev = 70, Lease = 44 };
        FullyPopulated(leaderKey);
        var response = new KElection.CampaignResponse { Header = KeelHeader(70), Leader = leaderKey };
        V3Electionpb.CampaignResponse back = Crosses(response, V3Electionpb.CampaignResponse.Parser);
        Assert.Equal(70, back.Leader.Rev);
        Assert.Equal(44, back.Leader.Lease);
    }

    [Fact]
    public void Leader_proclaim_and_resign_cross_both_ways()
    {
        Assert.Equal("leader", Crosses(new V3Electionpb.LeaderRequest { Name = Bytes("leader") }, KElection.LeaderRequest.Parser).Name.ToStringUtf8());

        var response = new KElection.LeaderResponse { Header = KeelHeader(), Kv = new Keel.Protocol.Etcd.Mvccpb.KeyValue { Key = Bytes("leader/2c"), Value = Bytes("node-a"), CreateRevision = 70, ModRevision = 70, Version = 1, Lease = 44 } };
        FullyPopulated(response);
        FullyPopulated(response.Kv);
        Assert.Equal("node-a", Crosses(response, V3Electionpb.LeaderResponse.Parser).Kv.Value.ToStringUtf8());

        var clientLeader = new V3Electionpb.LeaderKey { Name = Bytes("leader"), Key = Bytes("leader/2c"), Rev = 70, Lease = 44 };
        var proclaim = new V3Electionpb.ProclaimRequest { Leader = clientLeader, Value = Bytes("node-b") };
        FullyPopulated(proclaim);
        Assert.Equal(70, Crosses(proclaim, KElection.ProclaimRequest.Parser).Leader.Rev);
        Assert.Equal(44, Crosses(new V3Electionpb.ResignRequest { Leader = clientLeader }, KElection.ResignRequest.Parser).Leader.Lease);
    }
}
