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
}
