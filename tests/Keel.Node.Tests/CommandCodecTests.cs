using FsCheck;
using FsCheck.Xunit;
using Keel.Core.Encoding;
using Keel.Mvcc;

namespace Keel.Node.Tests;

public sealed class CommandCodecTests
{
    private static KvCommand Sample(byte[] key, byte[] value, long lease, bool prevKv, int shape) => (shape & 3) switch
    {
        0 => KvCommand.Of(new PutRequest { Key = key, Value = value, Lease = lease, PrevKv = prevKv, IgnoreLease = !prevKv }),
        1 => KvCommand.Of(new DeleteRangeRequest { Key = key, RangeEnd = value, PrevKv = prevKv }),
        2 => KvCommand.Compact(lease),
        _ => KvCommand.Of(new TxnRequest
        {
            Compares = [new Compare { Key = key, Target = CompareTarget.Mod, Result = CompareResult.Greater, NumberOperand = lease, ValueOperand = value }],
            Success = [RequestOp.Of(new PutRequest { Key = key, Value = value }), RequestOp.Of(new RangeRequest { Key = key, RangeEnd = value, Limit = lease, KeysOnly = prevKv, SortOrder = SortOrder.Descend })],
            Failure = [RequestOp.Of(new TxnRequest { Success = [RequestOp.Of(new DeleteRangeRequest { Key = value })] })],
        }),
    };

    private static string Describe(KvCommand command) => command.Kind switch
    {
        KvCommandKind.Put => $"put {Convert.ToHexString(command.Put!.Key)} {Convert.ToHexString(command.Put.Value)} {command.Put.Lease} {command.Put.PrevKv} {command.Put.IgnoreLease}",
        KvCommandKind.DeleteRange => $"del {Convert.ToHexString(command.DeleteRange!.Key)} {Convert.ToHexString(command.DeleteRange.RangeEnd)} {command.DeleteRange.PrevKv}",
        KvCommandKind.Compact => $"compact {command.CompactRevision}",
        _ => DescribeTxn(command.Txn!),
    };

    private static string DescribeTxn(TxnRequest txn) =>
        "txn[" + string.Join(",", txn.Compares.Select(c => $"{Convert.ToHexString(c.Key)} {c.Target} {c.Result} {c.NumberOperand} {Convert.ToHexString(c.ValueOperand)}")) +
        "|" + string.Join(",", txn.Success.Select(DescribeOp)) + "|" + string.Join(",", txn.Failure.Select(DescribeOp)) + "]";

    private static string DescribeOp(RequestOp op) =>
        op.Range is { } r ? $"range {Convert.ToHexString(r.Key)} {Convert.ToHexString(r.RangeEnd)} {r.Limit} {r.KeysOnly} {r.SortOrder}"
        : op.Put is { } p ? Describe(KvCommand.Of(p))
        : op.DeleteRange is { } d ? Describe(KvCommand.Of(d))
        : DescribeTxn(op.Txn!);

    [Property]
    public bool Every_command_round_trips(byte[] key, byte[] value, long lease, bool prevKv, int shape, ulong proposalId, ulong timestamp)
    {
        var command = Sample(key ?? [], value ?? [], lease, prevKv, shape);
        var header = new CommandHeader(proposalId, 3, timestamp);
        var encoded = CommandCodec.Encode(header, command);
        Assert.Equal(CommandCodec.EncodedSize(command), encoded.Length);
        var (decodedHeader, decoded) = CommandCodec.Decode(encoded);
        return decodedHeader == header && Describe(decoded) == Describe(command);
    }

    [Property]
    public bool Every_truncation_is_refused(byte[] key, byte[] value, int shape, byte cut)
    {
        var encoded = CommandCodec.Encode(new CommandHeader(1, 1, 1), Sample(key ?? [], value ?? [], 5, true, shape));
        var length = cut % encoded.Length;
        try
        {
            CommandCodec.Decode(encoded.AsSpan(0, length));
            return false;
        }
        catch (EncodingFormatException)
        {
            return true;
        }
        catch (InvalidCommandException)
        {
            return true;
        }
    }

    [Property]
    public bool A_keyed_command_round_trips_with_its_key_and_fingerprint(byte[] key, byte[] value, long lease, int shape, PositiveInt keyLength, char seed)
    {
        var command = Sample(key ?? [], value ?? [], lease, true, shape);
        var idempotencyKey = new string((char)(' ' + (seed % 95)), 1 + keyLength.Get % 255);
        var header = new CommandHeader(9, 2, 77) { IdempotencyKey = idempotencyKey, Fingerprint = CommandCodec.Fingerprint(command) };
        var encoded = CommandCodec.Encode(header, command);
        Assert.Equal(CommandCodec.EncodedSize(command, idempotencyKey), encoded.Length);
        var (decodedHeader, decoded) = CommandCodec.Decode(encoded);
        return decodedHeader == header && Describe(decoded) == Describe(command) && CommandCodec.Fingerprint(decoded) == header.Fingerprint;
    }

    [Fact]
    public void Lease_member_and_checkpoint_commands_round_trip_and_fingerprints_tell_requests_apart()
    {
        KvCommand[] commands =
        [
            KvCommand.LeaseGrant(0, 10), KvCommand.LeaseGrant(5, 10), KvCommand.LeaseRevoke(5), KvCommand.LeaseKeepAlive(5),
            KvCommand.PublishMember(new MemberAttributes(3, "n\u00e9", ["http://127.0.0.1:2379", "http://[::1]:2379"])),
            KvCommand.OfMemberChange(MemberChange.Add(["http://a:1"], true).WithMemberId(77)),
            KvCommand.LeaseCheckpoint([new Keel.Leases.LeaseCheckpoint(5, 2, 1_000, 300)]),
        ];
        foreach (var command in commands)
        {
            var encoded = CommandCodec.Encode(new CommandHeader(1, 1, 1), command);
            var (_, decoded) = CommandCodec.Decode(encoded);
            Assert.Equal(command.Kind, decoded.Kind);
            Assert.Equal(CommandCodec.Fingerprint(command), CommandCodec.Fingerprint(decoded));
            Assert.Equal(encoded, CommandCodec.Encode(new CommandHeader(1, 1, 1), decoded));
        }
        Assert.Equal(commands.Length, commands.Select(CommandCodec.Fingerprint).Distinct().Count());
    }

    [Fact]
    public void Version_one_entries_without_a_key_still_decode()
    {
        var encoded = CommandCodec.Encode(new CommandHeader(1, 2, 3), KvCommand.Compact(9));
        // Version 1 had no key-length byte: drop it and mark the version.
        var v1 = encoded.Take(25).Concat(encoded.Skip(26)).ToArray();
        v1[0] = 1;
        var (header, command) = CommandCodec.Decode(v1);
        Assert.Equal(new CommandHeader(1, 2, 3), header);
        Assert.Equal(9, command.CompactRevision);
    }

    [Property]
    public bool Stored_responses_round_trip_byte_for_byte(byte[] key, byte[] value, long revision, bool flag)
    {
        var kv = new KeyValue(key ?? [], revision, revision, 1, value ?? [], revision);
        KvResult[] results =
        [
            new() { RequestId = 0, Put = new PutResponse(revision, flag ? kv : null) },
            new() { RequestId = 0, DeleteRange = new DeleteRangeResponse(revision, 1, [kv]) },
            new()
            {
                RequestId = 0,
                Txn = new TxnResponse(revision, flag, [new ResponseOp(new RangeResponse(revision, [kv], flag, 1), null, null, null),
                    new ResponseOp(null, null, null, new TxnResponse(revision, !flag, [new ResponseOp(null, new PutResponse(revision, null), null, null)]))]),
            },
            new() { RequestId = 0, LeaseGrant = new LeaseGrantResponse(revision, 10, 3, revision) },
            KvResult.Failed(0, KeelError.FromLease(Keel.Leases.LeaseStatus.NotFound)),
        ];
        foreach (var result in results)
        {
            var encoded = ResponseCodec.Encode(result);
            var decoded = ResponseCodec.Decode(encoded, 42);
            if (decoded.RequestId != 42 || !ResponseCodec.Encode(decoded).SequenceEqual(encoded)) return false;
        }
        return true;
    }
}
