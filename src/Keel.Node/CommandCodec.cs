using Keel.Core;
using Keel.Core.Encoding;
using Keel.Mvcc;

namespace Keel.Node;

/// <summary>The header every replicated command carries in its Raft entry.</summary>
/// <param name="ProposalId">A random 64-bit id chosen by the proposing node: matches the applied entry to the waiting
/// client, and lets every replica skip a duplicate append of the same proposal (a forwarded proposal the network
/// duplicated).</param>
/// <param name="Proposer">The Raft id of the node that proposed it.</param>
/// <param name="HybridTimestamp">The proposer's hybrid-clock time (raw), clamped to be monotonic at apply.</param>
public readonly record struct CommandHeader(ulong ProposalId, ulong Proposer, ulong HybridTimestamp);

/// <summary>
/// The binary encoding of a <see cref="KvCommand"/> in a Raft entry (little-endian, Keel.Core.Encoding):
/// <c>u8 version=1 | u64 proposal id | u64 proposer | u64 hybrid timestamp | u8 kind | body</c>. Byte strings are an
/// <c>i32</c> length then the bytes; flags are one byte. Sizes are computed first, so encoding allocates exactly the
/// entry's array and nothing else. Decoding is defensive (every count is checked against the bytes left) because a
/// torn or corrupt log must fail loudly, never apply garbage.
/// </summary>
public static class CommandCodec
{
    /// <summary>The format version written first.</summary>
    public const byte Version = 1;

    /// <summary>etcd's request limit (1.5 MiB, <c>--max-request-bytes</c>): larger commands are refused.</summary>
    public const int MaxRequestBytes = 1_572_864;

    private const int HeaderBytes = 1 + 8 + 8 + 8;
    private const int MaxTxnDepth = 64;

    /// <summary>The encoded size of <paramref name="command"/> with its header.</summary>
    public static long EncodedSize(KvCommand command)
    {
        ArgumentNullException.ThrowIfNull(command);
        return HeaderBytes + 1 + command.Kind switch
        {
            KvCommandKind.Put => SizeOf(command.Put!),
            KvCommandKind.DeleteRange => SizeOf(command.DeleteRange!),
            KvCommandKind.Txn => SizeOf(command.Txn!, 0),
            KvCommandKind.Compact => 8,
            _ => throw new ArgumentOutOfRangeException(nameof(command), command.Kind, "unknown command kind"),
        };
    }

    /// <summary>Encodes the header and command into a new array of exactly the encoded size.</summary>
    public static byte[] Encode(CommandHeader header, KvCommand command)
    {
        var size = EncodedSize(command);
        Invariant.Check(size <= int.MaxValue, "command too large to encode");
        var buffer = new byte[size];
        var writer = new BinarySpanWriter(buffer);
        writer.U8(Version);
        writer.U64(header.ProposalId);
        writer.U64(header.Proposer);
        writer.U64(header.HybridTimestamp);
        writer.U8((byte)command.Kind);
        switch (command.Kind)
        {
            case KvCommandKind.Put: Write(ref writer, command.Put!); break;
            case KvCommandKind.DeleteRange: Write(ref writer, command.DeleteRange!); break;
            case KvCommandKind.Txn: Write(ref writer, command.Txn!); break;
            case KvCommandKind.Compact: writer.I64(command.CompactRevision); break;
        }
        writer.AssertFull();
        return buffer;
    }

    /// <summary>Decodes an entry's payload.</summary>
    /// <exception cref="EncodingFormatException">Truncated data, a count that cannot fit, or an unknown version.</exception>
    /// <exception cref="InvalidCommandException">An unknown tag, trailing bytes, or nesting too deep.</exception>
    public static (CommandHeader Header, KvCommand Command) Decode(ReadOnlySpan<byte> data)
    {
        var reader = new BinarySpanReader(data);
        var version = reader.U8();
        if (version != Version) throw new EncodingFormatException(EncodingProblem.UnsupportedVersion, 0, version, data.Length);
        var header = new CommandHeader(reader.U64(), reader.U64(), reader.U64());
        var kindOffset = reader.Position;
        var kind = (KvCommandKind)reader.U8();
        var command = kind switch
        {
            KvCommandKind.Put => KvCommand.Of(ReadPut(ref reader)),
            KvCommandKind.DeleteRange => KvCommand.Of(ReadDelete(ref reader)),
            KvCommandKind.Txn => KvCommand.Of(ReadTxn(ref reader, 0)),
            KvCommandKind.Compact => KvCommand.Compact(reader.I64()),
            _ => throw new InvalidCommandException($"unknown command kind {(byte)kind} at offset {kindOffset}"),
        };
        if (!reader.IsAtEnd) throw new InvalidCommandException($"{reader.Remaining} bytes after the command at offset {reader.Position}");
        return (header, command);
    }

    private static long BytesSize(byte[] value) => 4L + value.Length;

    private static long SizeOf(PutRequest put) => BytesSize(put.Key) + BytesSize(put.Value) + 8 + 1;

    private static long SizeOf(DeleteRangeRequest delete) => BytesSize(delete.Key) + BytesSize(delete.RangeEnd) + 1;

    private static long SizeOf(RangeRequest range) => BytesSize(range.Key) + BytesSize(range.RangeEnd) + 8 + 8 + 1 + 1 + 1 + 4 * 8;

    private static long SizeOf(Compare compare) => BytesSize(compare.Key) + BytesSize(compare.RangeEnd) + 1 + 1 + BytesSize(compare.ValueOperand) + 8;

    private static long SizeOf(RequestOp op, int depth) => 1 + (op.Range is { } r ? SizeOf(r)
        : op.Put is { } p ? SizeOf(p)
        : op.DeleteRange is { } d ? SizeOf(d)
        : SizeOf(op.Txn!, depth + 1));

    private static long SizeOf(TxnRequest txn, int depth)
    {
        if (depth > MaxTxnDepth) throw new ArgumentException($"transactions nest deeper than {MaxTxnDepth} levels", nameof(txn));
        long size = 4 + 4 + 4;
        foreach (var compare in txn.Compares) size += SizeOf(compare);
        foreach (var op in txn.Success) size += SizeOf(op, depth);
        foreach (var op in txn.Failure) size += SizeOf(op, depth);
        return size;
    }

    private static void WriteBytes(ref BinarySpanWriter writer, byte[] value)
    {
        writer.I32(value.Length);
        writer.Bytes(value);
    }

    private static void Write(ref BinarySpanWriter writer, PutRequest put)
    {
        WriteBytes(ref writer, put.Key);
        WriteBytes(ref writer, put.Value);
        writer.I64(put.Lease);
        writer.U8((byte)((put.PrevKv ? 1 : 0) | (put.IgnoreValue ? 2 : 0) | (put.IgnoreLease ? 4 : 0)));
    }

    private static void Write(ref BinarySpanWriter writer, DeleteRangeRequest delete)
    {
        WriteBytes(ref writer, delete.Key);
        WriteBytes(ref writer, delete.RangeEnd);
        writer.U8(delete.PrevKv ? (byte)1 : (byte)0);
    }

    private static void Write(ref BinarySpanWriter writer, RangeRequest range)
    {
        WriteBytes(ref writer, range.Key);
        WriteBytes(ref writer, range.RangeEnd);
        writer.I64(range.Limit);
        writer.I64(range.Revision);
        writer.U8((byte)range.SortOrder);
        writer.U8((byte)range.SortTarget);
        writer.U8((byte)((range.KeysOnly ? 1 : 0) | (range.CountOnly ? 2 : 0)));
        writer.I64(range.MinModRevision);
        writer.I64(range.MaxModRevision);
        writer.I64(range.MinCreateRevision);
        writer.I64(range.MaxCreateRevision);
    }

    private static void Write(ref BinarySpanWriter writer, Compare compare)
    {
        WriteBytes(ref writer, compare.Key);
        WriteBytes(ref writer, compare.RangeEnd);
        writer.U8((byte)compare.Target);
        writer.U8((byte)compare.Result);
        WriteBytes(ref writer, compare.ValueOperand);
        writer.I64(compare.NumberOperand);
    }

    private static void Write(ref BinarySpanWriter writer, RequestOp op)
    {
        if (op.Range is { } range) { writer.U8(1); Write(ref writer, range); }
        else if (op.Put is { } put) { writer.U8(2); Write(ref writer, put); }
        else if (op.DeleteRange is { } delete) { writer.U8(3); Write(ref writer, delete); }
        else { writer.U8(4); Write(ref writer, op.Txn!); }
    }

    private static void Write(ref BinarySpanWriter writer, TxnRequest txn)
    {
        writer.I32(txn.Compares.Count);
        foreach (var compare in txn.Compares) Write(ref writer, compare);
        writer.I32(txn.Success.Count);
        foreach (var op in txn.Success) Write(ref writer, op);
        writer.I32(txn.Failure.Count);
        foreach (var op in txn.Failure) Write(ref writer, op);
    }

    private static byte[] ReadBytes(ref BinarySpanReader reader) => reader.ReadBytes(reader.ReadCount(1)).ToArray();

    private static PutRequest ReadPut(ref BinarySpanReader reader)
    {
        var key = ReadBytes(ref reader);
        var value = ReadBytes(ref reader);
        var lease = reader.I64();
        var flags = reader.U8();
        return new PutRequest
        {
            Key = key, Value = value, Lease = lease,
            PrevKv = (flags & 1) != 0, IgnoreValue = (flags & 2) != 0, IgnoreLease = (flags & 4) != 0,
        };
    }

    private static DeleteRangeRequest ReadDelete(ref BinarySpanReader reader)
    {
        var key = ReadBytes(ref reader);
        var rangeEnd = ReadBytes(ref reader);
        return new DeleteRangeRequest { Key = key, RangeEnd = rangeEnd, PrevKv = reader.U8() != 0 };
    }

    private static RangeRequest ReadRange(ref BinarySpanReader reader)
    {
        var key = ReadBytes(ref reader);
        var rangeEnd = ReadBytes(ref reader);
        var limit = reader.I64();
        var revision = reader.I64();
        var sortOrder = (SortOrder)reader.U8();
        var sortTarget = (SortTarget)reader.U8();
        var flags = reader.U8();
        return new RangeRequest
        {
            Key = key, RangeEnd = rangeEnd, Limit = limit, Revision = revision, SortOrder = sortOrder, SortTarget = sortTarget,
            KeysOnly = (flags & 1) != 0, CountOnly = (flags & 2) != 0,
            MinModRevision = reader.I64(), MaxModRevision = reader.I64(),
            MinCreateRevision = reader.I64(), MaxCreateRevision = reader.I64(),
        };
    }

    private static Compare ReadCompare(ref BinarySpanReader reader)
    {
        var key = ReadBytes(ref reader);
        var rangeEnd = ReadBytes(ref reader);
        var target = (CompareTarget)reader.U8();
        var result = (CompareResult)reader.U8();
        var value = ReadBytes(ref reader);
        return new Compare { Key = key, RangeEnd = rangeEnd, Target = target, Result = result, ValueOperand = value, NumberOperand = reader.I64() };
    }

    private static RequestOp ReadOp(ref BinarySpanReader reader, int depth)
    {
        var offset = reader.Position;
        var tag = reader.U8();
        return tag switch
        {
            1 => RequestOp.Of(ReadRange(ref reader)),
            2 => RequestOp.Of(ReadPut(ref reader)),
            3 => RequestOp.Of(ReadDelete(ref reader)),
            4 => RequestOp.Of(ReadTxn(ref reader, depth + 1)),
            _ => throw new InvalidCommandException($"unknown transaction operation tag {tag} at offset {offset}"),
        };
    }

    private static TxnRequest ReadTxn(ref BinarySpanReader reader, int depth)
    {
        if (depth > MaxTxnDepth) throw new InvalidCommandException($"transactions nest deeper than {MaxTxnDepth} levels");
        var compares = new Compare[reader.ReadCount(4 + 4 + 1 + 1 + 4 + 8)];
        for (var i = 0; i < compares.Length; i++) compares[i] = ReadCompare(ref reader);
        var success = new RequestOp[reader.ReadCount(1)];
        for (var i = 0; i < success.Length; i++) success[i] = ReadOp(ref reader, depth);
        var failure = new RequestOp[reader.ReadCount(1)];
        for (var i = 0; i < failure.Length; i++) failure[i] = ReadOp(ref reader, depth);
        return new TxnRequest { Compares = compares, Success = success, Failure = failure };
    }
}

/// <summary>A Raft entry's payload is not a valid command: the log is corrupt or was written by another program.</summary>
public sealed class InvalidCommandException : FormatException
{
    /// <summary>Creates the exception.</summary>
    public InvalidCommandException(string message) : base(message) { }
}
