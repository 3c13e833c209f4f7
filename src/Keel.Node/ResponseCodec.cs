using System.Text;
using Keel.Mvcc;

namespace Keel.Node;

/// <summary>
/// The binary encoding of a write's answer (a <see cref="KvResult"/> without its request id), stored in the replicated
/// idempotency table so that a retry with the same key is answered with exactly the first response, error included
/// (Stripe replays errors too). Little-endian, length-prefixed; the same result always encodes to the same bytes.
/// </summary>
public static class ResponseCodec
{
    private const byte Version = 1;

    private enum Tag : byte { Error = 0, Put = 1, DeleteRange = 2, Txn = 3, Compact = 4, LeaseGrant = 5, LeaseRevoke = 6, LeaseKeepAlive = 7 }

    /// <summary>Encodes <paramref name="result"/> (its request id is not part of the encoding).</summary>
    /// <exception cref="ArgumentException">The result is not the answer to a replicated write.</exception>
    public static byte[] Encode(KvResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(Version);
            if (result.Error is { } error)
            {
                writer.Write((byte)Tag.Error);
                writer.Write((int)error.Code);
                writer.Write(error.Message);
                writer.Write(error.GrpcStatusCode);
            }
            else if (result.Put is { } put) { writer.Write((byte)Tag.Put); Write(writer, put); }
            else if (result.DeleteRange is { } delete) { writer.Write((byte)Tag.DeleteRange); Write(writer, delete); }
            else if (result.Txn is { } txn) { writer.Write((byte)Tag.Txn); Write(writer, txn); }
            else if (result.Compact is { } compact) { writer.Write((byte)Tag.Compact); writer.Write(compact.Revision); }
            else if (result.LeaseGrant is { } grant)
            {
                writer.Write((byte)Tag.LeaseGrant);
                writer.Write(grant.LeaseId);
                writer.Write(grant.TtlSeconds);
                writer.Write(grant.FencingToken);
                writer.Write(grant.Revision);
            }
            else if (result.LeaseRevoke is { } revoke) { writer.Write((byte)Tag.LeaseRevoke); writer.Write(revoke.Revision); writer.Write(revoke.DeletedKeys); }
            else if (result.LeaseKeepAlive is { } keepAlive) { writer.Write((byte)Tag.LeaseKeepAlive); writer.Write(keepAlive.LeaseId); writer.Write(keepAlive.TtlSeconds); }
            else throw new ArgumentException("not the answer to a replicated write", nameof(result));
        }
        return stream.ToArray();
    }

    /// <summary>Decodes <see cref="Encode"/>'s bytes into a result answering <paramref name="requestId"/>.</summary>
    /// <exception cref="InvalidCommandException">The bytes are not an encoded response.</exception>
    public static KvResult Decode(ReadOnlySpan<byte> data, ulong requestId)
    {
        using var stream = new MemoryStream(data.ToArray(), writable: false);
        using var reader = new BinaryReader(stream, Encoding.UTF8);
        try
        {
            if (reader.ReadByte() != Version) throw new InvalidCommandException("unknown stored response version");
            var result = (Tag)reader.ReadByte() switch
            {
                Tag.Error => KvResult.Failed(requestId, new KeelError((KeelErrorCode)reader.ReadInt32(), reader.ReadString(), reader.ReadString())),
                Tag.Put => new KvResult { RequestId = requestId, Put = ReadPut(reader) },
                Tag.DeleteRange => new KvResult { RequestId = requestId, DeleteRange = ReadDelete(reader) },
                Tag.Txn => new KvResult { RequestId = requestId, Txn = ReadTxn(reader) },
                Tag.Compact => new KvResult { RequestId = requestId, Compact = new CompactResponse(reader.ReadInt64()) },
                Tag.LeaseGrant => new KvResult
                {
                    RequestId = requestId,
                    LeaseGrant = new LeaseGrantResponse(reader.ReadInt64(), reader.ReadInt64(), reader.ReadUInt64(), reader.ReadInt64()),
                },
                Tag.LeaseRevoke => new KvResult { RequestId = requestId, LeaseRevoke = new LeaseRevokeResponse(reader.ReadInt64(), reader.ReadInt64()) },
                Tag.LeaseKeepAlive => new KvResult { RequestId = requestId, LeaseKeepAlive = new LeaseKeepAliveResponse(reader.ReadInt64(), reader.ReadInt64()) },
                var tag => throw new InvalidCommandException($"unknown stored response tag {(byte)tag}"),
            };
            if (stream.Position != stream.Length) throw new InvalidCommandException("trailing bytes after a stored response");
            return result;
        }
        catch (EndOfStreamException)
        {
            throw new InvalidCommandException("truncated stored response");
        }
        catch (Exception e) when (e is IOException or FormatException && e is not InvalidCommandException)
        {
            // BinaryReader's string prefix: negative or longer than 5 bytes.
            throw new InvalidCommandException($"malformed stored response: {e.Message}");
        }
    }

    private static void WriteBytes(BinaryWriter writer, byte[] value)
    {
        writer.Write(value.Length);
        writer.Write(value);
    }

    private static byte[] ReadBytes(BinaryReader reader)
    {
        var length = reader.ReadInt32();
        if (length < 0 || length > reader.BaseStream.Length - reader.BaseStream.Position) throw new InvalidCommandException("byte string out of range");
        return reader.ReadBytes(length);
    }

    private static int ReadCount(BinaryReader reader)
    {
        var count = reader.ReadInt32();
        if (count < 0 || count > reader.BaseStream.Length - reader.BaseStream.Position) throw new InvalidCommandException("count out of range");
        return count;
    }

    private static void Write(BinaryWriter writer, KeyValue? kv)
    {
        writer.Write(kv is not null);
        if (kv is null) return;
        WriteBytes(writer, kv.Key);
        writer.Write(kv.CreateRevision);
        writer.Write(kv.ModRevision);
        writer.Write(kv.Version);
        writer.Write(kv.ValueLength);
        writer.Write(kv.ValueSpan);
        writer.Write(kv.Lease);
    }

    private static KeyValue? ReadKv(BinaryReader reader) => !reader.ReadBoolean() ? null
        : new KeyValue(ReadBytes(reader), reader.ReadInt64(), reader.ReadInt64(), reader.ReadInt64(), ReadBytes(reader), reader.ReadInt64());

    private static void Write(BinaryWriter writer, IReadOnlyList<KeyValue> kvs)
    {
        writer.Write(kvs.Count);
        foreach (var kv in kvs) Write(writer, kv);
    }

    private static KeyValue[] ReadKvs(BinaryReader reader)
    {
        var kvs = new KeyValue[ReadCount(reader)];
        for (var i = 0; i < kvs.Length; i++) kvs[i] = ReadKv(reader) ?? throw new InvalidCommandException("missing key-value");
        return kvs;
    }

    private static void Write(BinaryWriter writer, PutResponse put)
    {
        writer.Write(put.Revision);
        Write(writer, put.PrevKv);
    }

    private static PutResponse ReadPut(BinaryReader reader) => new(reader.ReadInt64(), ReadKv(reader));

    private static void Write(BinaryWriter writer, DeleteRangeResponse delete)
    {
        writer.Write(delete.Revision);
        writer.Write(delete.Deleted);
        Write(writer, delete.PrevKvs);
    }

    private static DeleteRangeResponse ReadDelete(BinaryReader reader) => new(reader.ReadInt64(), reader.ReadInt64(), ReadKvs(reader));

    private static void Write(BinaryWriter writer, RangeResponse range)
    {
        writer.Write(range.Revision);
        Write(writer, range.Kvs);
        writer.Write(range.More);
        writer.Write(range.Count);
    }

    private static RangeResponse ReadRange(BinaryReader reader) => new(reader.ReadInt64(), ReadKvs(reader), reader.ReadBoolean(), reader.ReadInt64());

    private static void Write(BinaryWriter writer, TxnResponse txn)
    {
        writer.Write(txn.Revision);
        writer.Write(txn.Succeeded);
        writer.Write(txn.Responses.Count);
        foreach (var op in txn.Responses)
        {
            if (op.Range is { } range) { writer.Write((byte)1); Write(writer, range); }
            else if (op.Put is { } put) { writer.Write((byte)2); Write(writer, put); }
            else if (op.DeleteRange is { } delete) { writer.Write((byte)3); Write(writer, delete); }
            else { writer.Write((byte)4); Write(writer, op.Txn!); }
        }
    }

    private static TxnResponse ReadTxn(BinaryReader reader)
    {
        var revision = reader.ReadInt64();
        var succeeded = reader.ReadBoolean();
        var responses = new ResponseOp[ReadCount(reader)];
        for (var i = 0; i < responses.Length; i++)
        {
            responses[i] = reader.ReadByte() switch
            {
                1 => new ResponseOp(ReadRange(reader), null, null, null),
                2 => new ResponseOp(null, ReadPut(reader), null, null),
                3 => new ResponseOp(null, null, ReadDelete(reader), null),
                4 => new ResponseOp(null, null, null, ReadTxn(reader)),
                var tag => throw new InvalidCommandException($"unknown stored response operation tag {tag}"),
            };
        }
        return new TxnResponse(revision, succeeded, responses);
    }
}
