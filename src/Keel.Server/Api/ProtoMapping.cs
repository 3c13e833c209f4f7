using Google.Protobuf;
using Keel.Mvcc;
using Wire = Keel.Protocol.Etcd.Etcdserverpb;


namespace Keel.Server;

/// <summary>
/// Converts between etcd's wire messages (<c>etcdserverpb</c>, <c>mvccpb</c>) and the store's own request and
/// response types. Field by field, nothing dropped: a wire field the store does not model is refused where it is
/// read, never ignored silently.
/// </summary>
internal static class ProtoMapping
{
    /// <summary>
    /// The bytes of a parsed wire field, without a copy when the field owns its whole array, which is how protobuf parses
    /// a bytes field: a parsed message never changes, so the store request may share it (one copy of each value fewer
    /// per request, issue 12). Anything else (a slice of a larger buffer) is copied.
    /// </summary>
    internal static byte[] Bytes(ByteString field)
    {
        if (field.Length == 0) return [];
        return System.Runtime.InteropServices.MemoryMarshal.TryGetArray(field.Memory, out var segment) &&
            segment.Offset == 0 && segment.Count == segment.Array!.Length
            ? segment.Array
            : field.ToByteArray();
    }

    public static RangeRequest ToStore(Wire.RangeRequest request) => new()
    {
        Key = Bytes(request.Key),
        RangeEnd = Bytes(request.RangeEnd),
        Limit = request.Limit,
        Revision = request.Revision,
        SortOrder = (SortOrder)request.SortOrder,
        SortTarget = (SortTarget)request.SortTarget,
        KeysOnly = request.KeysOnly,
        CountOnly = request.CountOnly,
        MinModRevision = request.MinModRevision,
        MaxModRevision = request.MaxModRevision,
        MinCreateRevision = request.MinCreateRevision,
        MaxCreateRevision = request.MaxCreateRevision,
    };

    public static PutRequest ToStore(Wire.PutRequest request) => new()
    {
        Key = Bytes(request.Key),
        Value = Bytes(request.Value),
        Lease = request.Lease,
        PrevKv = request.PrevKv,
        IgnoreValue = request.IgnoreValue,
        IgnoreLease = request.IgnoreLease,
    };

    public static DeleteRangeRequest ToStore(Wire.DeleteRangeRequest request) => new()
    {
        Key = Bytes(request.Key),
        RangeEnd = Bytes(request.RangeEnd),
        PrevKv = request.PrevKv,
    };

    public static TxnRequest ToStore(Wire.TxnRequest request) => new()
    {
        Compares = request.Compare.Select(ToStore).ToArray(),
        Success = request.Success.Select(ToStore).ToArray(),
        Failure = request.Failure.Select(ToStore).ToArray(),
    };

    private static Compare ToStore(Wire.Compare compare) => new()
    {
        Key = Bytes(compare.Key),
        RangeEnd = Bytes(compare.RangeEnd),
        Target = (CompareTarget)compare.Target,
        Result = (CompareResult)compare.Result,
        ValueOperand = compare.TargetUnionCase == Wire.Compare.TargetUnionOneofCase.Value ? Bytes(compare.Value) : [],
        NumberOperand = compare.TargetUnionCase switch
        {
            Wire.Compare.TargetUnionOneofCase.Version => compare.Version,
            Wire.Compare.TargetUnionOneofCase.CreateRevision => compare.CreateRevision,
            Wire.Compare.TargetUnionOneofCase.ModRevision => compare.ModRevision,
            Wire.Compare.TargetUnionOneofCase.Lease => compare.Lease,
            _ => 0,
        },
    };

    private static RequestOp ToStore(Wire.RequestOp op) => op.RequestCase switch
    {
        Wire.RequestOp.RequestOneofCase.RequestRange => RequestOp.Of(ToStore(op.RequestRange)),
        Wire.RequestOp.RequestOneofCase.RequestPut => RequestOp.Of(ToStore(op.RequestPut)),
        Wire.RequestOp.RequestOneofCase.RequestDeleteRange => RequestOp.Of(ToStore(op.RequestDeleteRange)),
        Wire.RequestOp.RequestOneofCase.RequestTxn => RequestOp.Of(ToStore(op.RequestTxn)),
        // etcd treats an empty RequestOp as a no-op range of nothing; refusing it is clearer and changes nothing.
        _ => throw new ArgumentException("etcdserver: a txn operation names no request"),
    };

    public static Keel.Protocol.Etcd.Mvccpb.KeyValue ToProto(KeyValue kv) => new()
    {
        Key = UnsafeByteOperations.UnsafeWrap(kv.Key),
        CreateRevision = kv.CreateRevision,
        ModRevision = kv.ModRevision,
        Version = kv.Version,
        Value = UnsafeByteOperations.UnsafeWrap(kv.Value),
        Lease = kv.Lease,
    };

    public static Keel.Protocol.Etcd.Mvccpb.Event ToProto(WatchEvent change, bool withPrevKv)
    {
        var proto = new Keel.Protocol.Etcd.Mvccpb.Event
        {
            Type = change.Type == EventType.Put ? Keel.Protocol.Etcd.Mvccpb.Event.Types.EventType.Put : Keel.Protocol.Etcd.Mvccpb.Event.Types.EventType.Delete,
            Kv = ToProto(change.Kv),
        };
        if (withPrevKv && change.PrevKv is { } prev) proto.PrevKv = ToProto(prev);
        return proto;
    }

    public static Wire.RangeResponse ToProto(RangeResponse response, Wire.ResponseHeader header)
    {
        var proto = new Wire.RangeResponse { Header = header, More = response.More, Count = response.Count };
        foreach (var kv in response.Kvs) proto.Kvs.Add(ToProto(kv));
        return proto;
    }

    public static Wire.PutResponse ToProto(PutResponse response, Wire.ResponseHeader header)
    {
        var proto = new Wire.PutResponse { Header = header };
        if (response.PrevKv is { } prev) proto.PrevKv = ToProto(prev);
        return proto;
    }

    public static Wire.DeleteRangeResponse ToProto(DeleteRangeResponse response, Wire.ResponseHeader header)
    {
        var proto = new Wire.DeleteRangeResponse { Header = header, Deleted = response.Deleted };
        foreach (var kv in response.PrevKvs) proto.PrevKvs.Add(ToProto(kv));
        return proto;
    }

    public static Wire.TxnResponse ToProto(TxnResponse response, Wire.ResponseHeader header)
    {
        var proto = new Wire.TxnResponse { Header = header, Succeeded = response.Succeeded };
        foreach (var op in response.Responses)
        {
            // etcd's nested responses carry only the revision each operation saw or made (no cluster, member, term).
            var protoOp = new Wire.ResponseOp();
            if (op.Range is { } range) protoOp.ResponseRange = ToProto(range, new Wire.ResponseHeader { Revision = range.Revision });
            else if (op.Put is { } put) protoOp.ResponsePut = ToProto(put, new Wire.ResponseHeader { Revision = put.Revision });
            else if (op.DeleteRange is { } delete) protoOp.ResponseDeleteRange = ToProto(delete, new Wire.ResponseHeader { Revision = delete.Revision });
            else if (op.Txn is { } txn) protoOp.ResponseTxn = ToProto(txn, new Wire.ResponseHeader { Revision = txn.Revision });
            proto.Responses.Add(protoOp);
        }
        return proto;
    }
}
