using Google.Protobuf;
using static Keel.Protocol.Tests.WireAssert;
using K = Keel.Protocol.Etcd.Etcdserverpb;
using KMvcc = Keel.Protocol.Etcd.Mvccpb;

namespace Keel.Protocol.Tests;

/// <summary>KV messages built by dotnet-etcd parse into Keel's types field for field, and the reverse.</summary>
public sealed class KvWireTests
{
    internal static Etcdserverpb.ResponseHeader ClientHeader(long revision = 42) =>
        new() { ClusterId = 0xC1u, MemberId = 0xFFFF_FFFF_FFFF_FFF1ul, Revision = revision, RaftTerm = 7 };

    internal static K.ResponseHeader KeelHeader(long revision = 42) =>
        new() { ClusterId = 0xC1u, MemberId = 0xFFFF_FFFF_FFFF_FFF1ul, Revision = revision, RaftTerm = 7 };

    internal static Mvccpb.KeyValue ClientKv(string key, long modRevision) => new()
    {
        Key = Bytes(key), CreateRevision = 3, ModRevision = modRevision, Version = 2, Value = ByteString.CopyFrom(0, 255, 7), Lease = 0x7E57,
    };

    internal static KMvcc.KeyValue KeelKv(string key, long modRevision) => new()
    {
        Key = Bytes(key), CreateRevision = 3, ModRevision = modRevision, Version = 2, Value = ByteString.CopyFrom(0, 255, 7), Lease = 0x7E57,
    };

    [Fact]
    public void Range_request_with_every_option_crosses()
    {
        var request = new Etcdserverpb.RangeRequest
        {
            Key = Bytes("a/"), RangeEnd = Bytes("a0"), Limit = 10, Revision = 99,
            SortOrder = Etcdserverpb.RangeRequest.Types.SortOrder.Descend,
            SortTarget = Etcdserverpb.RangeRequest.Types.SortTarget.Create,
            Serializable = true, KeysOnly = true, CountOnly = true,
            MinModRevision = 1, MaxModRevision = 2, MinCreateRevision = 3, MaxCreateRevision = 4,
        };
        FullyPopulated(request);

        K.RangeRequest parsed = Crosses(request, K.RangeRequest.Parser);

        Assert.Equal(K.RangeRequest.Types.SortOrder.Descend, parsed.SortOrder);
        Assert.Equal(K.RangeRequest.Types.SortTarget.Create, parsed.SortTarget);
        Assert.Equal("a0", parsed.RangeEnd.ToStringUtf8());
        Assert.Equal(4, parsed.MaxCreateRevision);
    }

    [Fact]
    public void Range_response_crosses_back_to_the_client()
    {
        var response = new K.RangeResponse { Header = KeelHeader(), More = true, Count = 3 };
        response.Kvs.Add(KeelKv("a/1", 5));
        response.Kvs.Add(KeelKv("a/2", 6));
        FullyPopulated(response);

        Etcdserverpb.RangeResponse parsed = Crosses(response, Etcdserverpb.RangeResponse.Parser);

        Assert.Equal(0xFFFF_FFFF_FFFF_FFF1ul, parsed.Header.MemberId);
        Assert.Equal(["a/1", "a/2"], parsed.Kvs.Select(kv => kv.Key.ToStringUtf8()));
        Assert.Equal(0x7E57, parsed.Kvs[1].Lease);
        FullyPopulated(parsed.Kvs[0]);
    }

    [Fact]
    public void Put_request_and_response_cross_both_ways()
    {
        var request = new Etcdserverpb.PutRequest
        {
            Key = Bytes("k"), Value = Bytes("v"), Lease = -5, PrevKv = true, IgnoreValue = true, IgnoreLease = true,
        };
        FullyPopulated(request);
        K.PutRequest parsed = Crosses(request, K.PutRequest.Parser);
        Assert.Equal(-5, parsed.Lease);
        Assert.True(parsed.IgnoreLease);

        var response = new K.PutResponse { Header = KeelHeader(), PrevKv = KeelKv("k", 4) };
        FullyPopulated(response);
        Etcdserverpb.PutResponse back = Crosses(response, Etcdserverpb.PutResponse.Parser);
        Assert.Equal(4, back.PrevKv.ModRevision);
    }

    [Fact]
    public void Delete_range_request_and_response_cross_both_ways()
    {
        var request = new Etcdserverpb.DeleteRangeRequest { Key = Bytes("\0"), RangeEnd = Bytes("\0"), PrevKv = true };
        FullyPopulated(request);
        K.DeleteRangeRequest parsed = Crosses(request, K.DeleteRangeRequest.Parser);
        Assert.Equal([0], parsed.RangeEnd.ToByteArray());

        var response = new K.DeleteRangeResponse { Header = KeelHeader(), Deleted = 2 };
        response.PrevKvs.Add(KeelKv("x", 8));
        response.PrevKvs.Add(KeelKv("y", 9));
        FullyPopulated(response);
        Etcdserverpb.DeleteRangeResponse back = Crosses(response, Etcdserverpb.DeleteRangeResponse.Parser);
        Assert.Equal(2, back.Deleted);
        Assert.Equal(9, back.PrevKvs[1].ModRevision);
    }

    [Fact]
    public void Txn_with_every_compare_target_and_nested_ops_crosses()
    {
        var inner = new Etcdserverpb.TxnRequest();
        inner.Compare.Add(new Etcdserverpb.Compare { Key = Bytes("inner"), Target = Etcdserverpb.Compare.Types.CompareTarget.Mod, ModRevision = 0 });
        inner.Success.Add(new Etcdserverpb.RequestOp { RequestPut = new Etcdserverpb.PutRequest { Key = Bytes("deep"), Value = Bytes("1") } });

        var request = new Etcdserverpb.TxnRequest();
        request.Compare.Add(new Etcdserverpb.Compare { Result = Etcdserverpb.Compare.Types.CompareResult.Equal, Target = Etcdserverpb.Compare.Types.CompareTarget.Version, Key = Bytes("a"), Version = 0 });
        request.Compare.Add(new Etcdserverpb.Compare { Result = Etcdserverpb.Compare.Types.CompareResult.Greater, Target = Etcdserverpb.Compare.Types.CompareTarget.Create, Key = Bytes("b"), CreateRevision = 3 });
        request.Compare.Add(new Etcdserverpb.Compare { Result = Etcdserverpb.Compare.Types.CompareResult.Less, Target = Etcdserverpb.Compare.Types.CompareTarget.Mod, Key = Bytes("c"), ModRevision = 4 });
        request.Compare.Add(new Etcdserverpb.Compare { Result = Etcdserverpb.Compare.Types.CompareResult.NotEqual, Target = Etcdserverpb.Compare.Types.CompareTarget.Value, Key = Bytes("d"), Value = Bytes("v"), RangeEnd = Bytes("e") });
        request.Compare.Add(new Etcdserverpb.Compare { Result = Etcdserverpb.Compare.Types.CompareResult.Equal, Target = Etcdserverpb.Compare.Types.CompareTarget.Lease, Key = Bytes("f"), Lease = 77 });
        request.Success.Add(new Etcdserverpb.RequestOp { RequestRange = new Etcdserverpb.RangeRequest { Key = Bytes("a"), Limit = 1 } });
        request.Success.Add(new Etcdserverpb.RequestOp { RequestPut = new Etcdserverpb.PutRequest { Key = Bytes("a"), Value = Bytes("1"), PrevKv = true } });
        request.Success.Add(new Etcdserverpb.RequestOp { RequestTxn = inner });
        request.Failure.Add(new Etcdserverpb.RequestOp { RequestDeleteRange = new Etcdserverpb.DeleteRangeRequest { Key = Bytes("z") } });
        FullyPopulated(request);

        K.TxnRequest parsed = Crosses(request, K.TxnRequest.Parser);

        // Zero-valued oneof members must survive as "set": version == 0 is how the lock recipe tests absence.
        Assert.Equal(K.Compare.TargetUnionOneofCase.Version, parsed.Compare[0].TargetUnionCase);
        Assert.Equal(0, parsed.Compare[0].Version);
        Assert.Equal(K.Compare.Types.CompareResult.NotEqual, parsed.Compare[3].Result);
        Assert.Equal("e", parsed.Compare[3].RangeEnd.ToStringUtf8());
        Assert.Equal(K.Compare.Types.CompareTarget.Lease, parsed.Compare[4].Target);
        Assert.Equal(77, parsed.Compare[4].Lease);
        Assert.Equal(K.RequestOp.RequestOneofCase.RequestTxn, parsed.Success[2].RequestCase);
        Assert.Equal(K.Compare.TargetUnionOneofCase.ModRevision, parsed.Success[2].RequestTxn.Compare[0].TargetUnionCase);
        Assert.Equal("deep", parsed.Success[2].RequestTxn.Success[0].RequestPut.Key.ToStringUtf8());
        Assert.Equal(K.RequestOp.RequestOneofCase.RequestDeleteRange, parsed.Failure[0].RequestCase);
    }

    [Fact]
    public void Txn_response_with_every_op_kind_crosses_back_to_the_client()
    {
        var nested = new K.TxnResponse { Header = KeelHeader(), Succeeded = false };
        nested.Responses.Add(new K.ResponseOp { ResponsePut = new K.PutResponse { Header = KeelHeader() } });

        var range = new K.RangeResponse { Header = KeelHeader(), Count = 1 };
        range.Kvs.Add(KeelKv("a", 40));
        var response = new K.TxnResponse { Header = KeelHeader(), Succeeded = true };
        response.Responses.Add(new K.ResponseOp { ResponseRange = range });
        response.Responses.Add(new K.ResponseOp { ResponsePut = new K.PutResponse { Header = KeelHeader(), PrevKv = KeelKv("a", 40) } });
        response.Responses.Add(new K.ResponseOp { ResponseDeleteRange = new K.DeleteRangeResponse { Header = KeelHeader(), Deleted = 1 } });
        response.Responses.Add(new K.ResponseOp { ResponseTxn = nested });
        FullyPopulated(response);

        Etcdserverpb.TxnResponse parsed = Crosses(response, Etcdserverpb.TxnResponse.Parser);

        Assert.True(parsed.Succeeded);
        Assert.Equal(
            [Etcdserverpb.ResponseOp.ResponseOneofCase.ResponseRange, Etcdserverpb.ResponseOp.ResponseOneofCase.ResponsePut,
             Etcdserverpb.ResponseOp.ResponseOneofCase.ResponseDeleteRange, Etcdserverpb.ResponseOp.ResponseOneofCase.ResponseTxn],
            parsed.Responses.Select(r => r.ResponseCase));
        Assert.Equal(42, parsed.Responses[3].ResponseTxn.Header.Revision);
    }

    [Fact]
    public void Compaction_request_crosses()
    {
        var request = new Etcdserverpb.CompactionRequest { Revision = 17, Physical = true };
        FullyPopulated(request);
        Assert.True(Crosses(request, K.CompactionRequest.Parser).Physical);
    }
}
