using Google.Protobuf;
using static Keel.Protocol.Tests.KvWireTests;
using static Keel.Protocol.Tests.WireAssert;
using K = Keel.Protocol.Etcd.Etcdserverpb;
using KMvcc = Keel.Protocol.Etcd.Mvccpb;

namespace Keel.Protocol.Tests;

/// <summary>Watch and Lease stream messages cross between dotnet-etcd and Keel field for field.</summary>
public sealed class WatchLeaseWireTests
{
    [Fact]
    public void Watch_create_request_with_every_option_crosses()
    {
        var create = new Etcdserverpb.WatchCreateRequest
        {
            Key = Bytes("p/"), RangeEnd = Bytes("p0"), StartRevision = 12, ProgressNotify = true, PrevKv = true, WatchId = 9, Fragment = true,
        };
        create.Filters.Add(Etcdserverpb.WatchCreateRequest.Types.FilterType.Noput);
        create.Filters.Add(Etcdserverpb.WatchCreateRequest.Types.FilterType.Nodelete);
        FullyPopulated(create);

        K.WatchRequest parsed = Crosses(new Etcdserverpb.WatchRequest { CreateRequest = create }, K.WatchRequest.Parser);

        Assert.Equal(K.WatchRequest.RequestUnionOneofCase.CreateRequest, parsed.RequestUnionCase);
        Assert.Equal([K.WatchCreateRequest.Types.FilterType.Noput, K.WatchCreateRequest.Types.FilterType.Nodelete], parsed.CreateRequest.Filters);
        Assert.Equal(9, parsed.CreateRequest.WatchId);
    }

    [Fact]
    public void Watch_cancel_and_progress_requests_cross()
    {
        K.WatchRequest cancel = Crosses(
            new Etcdserverpb.WatchRequest { CancelRequest = new Etcdserverpb.WatchCancelRequest { WatchId = 3 } }, K.WatchRequest.Parser);
        Assert.Equal(3, cancel.CancelRequest.WatchId);

        // An empty progress request is still a set oneof member on the wire (tag 3, length 0).
        var progress = new Etcdserverpb.WatchRequest { ProgressRequest = new Etcdserverpb.WatchProgressRequest() };
        Assert.Equal([0x1A, 0x00], progress.ToByteArray());
        Assert.Equal(K.WatchRequest.RequestUnionOneofCase.ProgressRequest, Crosses(progress, K.WatchRequest.Parser).RequestUnionCase);
    }

    [Fact]
    public void Watch_response_with_put_and_delete_events_crosses_back_to_the_client()
    {
        var response = new K.WatchResponse
        {
            Header = KeelHeader(50), WatchId = 4, Created = true, Canceled = true, CompactRevision = 20,
            CancelReason = "etcdserver: mvcc: required revision has been compacted", Fragment = true,
        };
        response.Events.Add(new KMvcc.Event { Type = KMvcc.Event.Types.EventType.Put, Kv = KeelKv("w", 49), PrevKv = KeelKv("w", 30) });
        response.Events.Add(new KMvcc.Event
        {
            Type = KMvcc.Event.Types.EventType.Delete, Kv = new KMvcc.KeyValue { Key = Bytes("w"), ModRevision = 50 }, PrevKv = KeelKv("w", 49),
        });
        FullyPopulated(response);

        Etcdserverpb.WatchResponse parsed = Crosses(response, Etcdserverpb.WatchResponse.Parser);

        Assert.Equal(Mvccpb.Event.Types.EventType.Put, parsed.Events[0].Type);
        Assert.Equal(Mvccpb.Event.Types.EventType.Delete, parsed.Events[1].Type);
        Assert.Equal(50, parsed.Events[1].Kv.ModRevision);
        Assert.Equal(0, parsed.Events[1].Kv.Version);
        Assert.Equal(30, parsed.Events[0].PrevKv.ModRevision);
        Assert.Equal(20, parsed.CompactRevision);
    }

    [Fact]
    public void Progress_notification_keeps_watch_id_minus_one()
    {
        // etcd answers a WatchProgressRequest with watch_id = -1 and no events: int64 -1 is a 10-byte varint.
        var progress = new K.WatchResponse { Header = KeelHeader(77), WatchId = -1 };
        Etcdserverpb.WatchResponse parsed = Crosses(progress, Etcdserverpb.WatchResponse.Parser);
        Assert.Equal(-1, parsed.WatchId);
        Assert.Empty(parsed.Events);
        Assert.Equal(77, parsed.Header.Revision);
    }

    [Fact]
    public void Lease_grant_crosses_both_ways()
    {
        var request = new Etcdserverpb.LeaseGrantRequest { TTL = 10, ID = 0x1234_5678_9ABC };
        FullyPopulated(request);
        Assert.Equal(0x1234_5678_9ABC, Crosses(request, K.LeaseGrantRequest.Parser).ID);

        var response = new K.LeaseGrantResponse { Header = KeelHeader(), ID = 0x1234_5678_9ABC, TTL = 10, Error = "none" };
        FullyPopulated(response);
        Etcdserverpb.LeaseGrantResponse back = Crosses(response, Etcdserverpb.LeaseGrantResponse.Parser);
        Assert.Equal(10, back.TTL);
    }

    [Fact]
    public void Lease_keep_alive_crosses_both_ways_including_unknown_lease_ttl_zero()
    {
        Assert.Equal(5, Crosses(new Etcdserverpb.LeaseKeepAliveRequest { ID = 5 }, K.LeaseKeepAliveRequest.Parser).ID);

        var alive = new K.LeaseKeepAliveResponse { Header = KeelHeader(), ID = 5, TTL = 9 };
        FullyPopulated(alive);
        Assert.Equal(9, Crosses(alive, Etcdserverpb.LeaseKeepAliveResponse.Parser).TTL);

        Etcdserverpb.LeaseKeepAliveResponse unknown = Crosses(new K.LeaseKeepAliveResponse { Header = KeelHeader(), ID = 6, TTL = 0 }, Etcdserverpb.LeaseKeepAliveResponse.Parser);
        Assert.Equal(0, unknown.TTL);
    }

    [Fact]
    public void Lease_time_to_live_crosses_both_ways_including_unknown_lease_ttl_minus_one()
    {
        var request = new Etcdserverpb.LeaseTimeToLiveRequest { ID = 5, Keys = true };
        FullyPopulated(request);
        Assert.True(Crosses(request, K.LeaseTimeToLiveRequest.Parser).Keys);

        var response = new K.LeaseTimeToLiveResponse { Header = KeelHeader(), ID = 5, TTL = 7, GrantedTTL = 10 };
        response.Keys.Add(Bytes("attached/1"));
        response.Keys.Add(Bytes("attached/2"));
        FullyPopulated(response);
        Etcdserverpb.LeaseTimeToLiveResponse back = Crosses(response, Etcdserverpb.LeaseTimeToLiveResponse.Parser);
        Assert.Equal(10, back.GrantedTTL);
        Assert.Equal("attached/2", back.Keys[1].ToStringUtf8());

        Assert.Equal(-1, Crosses(new K.LeaseTimeToLiveResponse { ID = 8, TTL = -1 }, Etcdserverpb.LeaseTimeToLiveResponse.Parser).TTL);
    }

    [Fact]
    public void Lease_revoke_and_leases_cross()
    {
        Assert.Equal(11, Crosses(new Etcdserverpb.LeaseRevokeRequest { ID = 11 }, K.LeaseRevokeRequest.Parser).ID);
        var leases = new K.LeaseLeasesResponse { Header = KeelHeader() };
        leases.Leases.Add(new K.LeaseStatus { ID = 1 });
        leases.Leases.Add(new K.LeaseStatus { ID = 2 });
        Assert.Equal([1L, 2L], Crosses(leases, Etcdserverpb.LeaseLeasesResponse.Parser).Leases.Select(l => l.ID));
    }
}
