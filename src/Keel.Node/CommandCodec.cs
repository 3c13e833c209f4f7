using System.Text;
using Keel.Core;
using Keel.Core.Encoding;
using Keel.Idempotency;
using Keel.Mvcc;

namespace Keel.Node;

/// <summary>The header every replicated command carries in its Raft entry.</summary>
/// <param name="ProposalId">A random 64-bit id chosen by the proposing node: matches the applied entry to the waiting
/// client, and lets every replica skip a duplicate append of the same proposal (a forwarded proposal the network
/// duplicated).</param>
/// <param name="Proposer">The Raft id of the node that proposed it.</param>
/// <param name="HybridTimestamp">The proposer's hybrid-clock time (raw), clamped to be monotonic at apply.</param>
public readonly record struct CommandHeader(ulong ProposalId, ulong Proposer, ulong HybridTimestamp)
{
    /// <summary>The client's idempotency key (1 to 255 printable ASCII characters), or null for none.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>The fingerprint of the command (<see cref="CommandCodec.Fingerprint"/>), set with <see cref="IdempotencyKey"/>.</summary>
    public RequestFingerprint Fingerprint { get; init; }
}

/// <summary>
/// The binary encoding of a <see cref="KvCommand"/> in a Raft entry (little-endian, Keel.Core.Encoding):
/// <c>u8 version=2 | u64 proposal id | u64 proposer | u64 hybrid timestamp | u8 key length | key (ASCII) |
/// [32-byte fingerprint when the key is present] | u8 kind | body</c> (version 1 had no key and is still read). Byte strings are an
/// <c>i32</c> length then the bytes; flags are one byte. Sizes are computed first, so encoding allocates exactly the
/// entry's array and nothing else. Decoding is defensive (every count is checked against the bytes left) because a
/// torn or corrupt log must fail loudly, never apply garbage.
/// </summary>
public static class CommandCodec
{
    /// <summary>The format version written first.</summary>
    public const byte Version = 2;

    private const byte VersionWithoutIdempotency = 1;

    /// <summary>etcd's request limit (1.5 MiB, <c>--max-request-bytes</c>): larger commands are refused.</summary>
    public const int MaxRequestBytes = 1_572_864;

    private const int HeaderBytes = 1 + 8 + 8 + 8;
    private const int MaxTxnDepth = 64;
    private const int MinOpBytes = 10;

    /// <summary>The encoded size of <paramref name="command"/> with its header.</summary>
    public static long EncodedSize(KvCommand command) => EncodedSize(command, null);

    /// <summary>The encoded size of <paramref name="command"/> with a header carrying <paramref name="idempotencyKey"/>.</summary>
    public static long EncodedSize(KvCommand command, string? idempotencyKey)
    {
        ArgumentNullException.ThrowIfNull(command);
        return HeaderBytes + 1 + (idempotencyKey is null ? 0 : idempotencyKey.Length + RequestFingerprint.SizeBytes) + BodySize(command);
    }

    private static long BodySize(KvCommand command) => 1 + command.Kind switch
    {
        KvCommandKind.Put => SizeOf(command.Put!),
        KvCommandKind.DeleteRange => SizeOf(command.DeleteRange!),
        KvCommandKind.Txn => SizeOf(command.Txn!, 0),
        KvCommandKind.Compact => 8,
        KvCommandKind.LeaseGrant => 16,
        KvCommandKind.LeaseRevoke or KvCommandKind.LeaseKeepAlive => 8,
        KvCommandKind.PublishMember => 8 + StringSize(command.Member!.Name) + StringsSize(command.Member.ClientUrls),
        KvCommandKind.MemberChange => 1 + 8 + 1 + StringsSize(command.MemberChange!.PeerUrls),
        KvCommandKind.LeaseCheckpoint => 4 + 32L * command.Checkpoints.Count,
        KvCommandKind.Alarm => 1 + 8 + 1,
        KvCommandKind.Auth => AuthSize(command.Auth!),
        KvCommandKind.GossipKeyring => 1 + 1 + command.Keyring!.Keys.Sum(k => 4L + k.Length),
        _ => throw new ArgumentOutOfRangeException(nameof(command), command.Kind, "unknown command kind"),
    };

    /// <summary>Encodes the header and command into a new array of exactly the encoded size.</summary>
    /// <exception cref="ArgumentException">The header's idempotency key is not 1 to 255 printable ASCII characters.</exception>
    public static byte[] Encode(CommandHeader header, KvCommand command)
    {
        if (header.IdempotencyKey is { } key && !IdempotencyKey.IsValid(key))
            throw new ArgumentException(IdempotencyKey.DescribeProblem(key), nameof(header));
        var size = EncodedSize(command, header.IdempotencyKey);
        Invariant.Check(size <= int.MaxValue, "command too large to encode");
        var buffer = new byte[size];
        var writer = new BinarySpanWriter(buffer);
        writer.U8(Version);
        writer.U64(header.ProposalId);
        writer.U64(header.Proposer);
        writer.U64(header.HybridTimestamp);
        if (header.IdempotencyKey is { } idempotencyKey)
        {
            writer.U8((byte)idempotencyKey.Length);
            var written = Encoding.ASCII.GetBytes(idempotencyKey, writer.Take(idempotencyKey.Length));
            Invariant.Check(written == idempotencyKey.Length, "an idempotency key is ASCII");
            header.Fingerprint.WriteTo(writer.Take(RequestFingerprint.SizeBytes));
        }
        else
        {
            writer.U8(0);
        }
        WriteBody(ref writer, command);
        writer.AssertFull();
        return buffer;
    }

    /// <summary>
    /// The fingerprint of a command for idempotency keys: SHA-256 of the encoded command body (kind and fields, not the
    /// header), so a retry of the same request matches and any other request with the key does not.
    /// </summary>
    public static RequestFingerprint Fingerprint(KvCommand command)
    {
        var size = BodySize(command);
        Invariant.Check(size <= int.MaxValue, "command too large to encode");
        var buffer = new byte[size];
        var writer = new BinarySpanWriter(buffer);
        WriteBody(ref writer, command);
        writer.AssertFull();
        return RequestFingerprint.Of("keel.node.command"u8, buffer);
    }

    private static void WriteBody(ref BinarySpanWriter writer, KvCommand command)
    {
        writer.U8((byte)command.Kind);
        switch (command.Kind)
        {
            case KvCommandKind.Put: Write(ref writer, command.Put!); break;
            case KvCommandKind.DeleteRange: Write(ref writer, command.DeleteRange!); break;
            case KvCommandKind.Txn: Write(ref writer, command.Txn!); break;
            case KvCommandKind.Compact: writer.I64(command.CompactRevision); break;
            case KvCommandKind.LeaseGrant: writer.I64(command.LeaseId); writer.I64(command.TtlSeconds); break;
            case KvCommandKind.LeaseRevoke or KvCommandKind.LeaseKeepAlive: writer.I64(command.LeaseId); break;
            case KvCommandKind.PublishMember:
                writer.U64(command.Member!.MemberId);
                WriteString(ref writer, command.Member.Name);
                WriteStrings(ref writer, command.Member.ClientUrls);
                break;
            case KvCommandKind.LeaseCheckpoint:
                writer.I32(command.Checkpoints.Count);
                foreach (var record in command.Checkpoints)
                {
                    writer.I64(record.LeaseId);
                    writer.U64(record.RenewCount);
                    writer.I64(record.CheckpointAtMs);
                    writer.I64(record.RemainingMs);
                }
                break;
            case KvCommandKind.MemberChange:
                writer.U8((byte)command.MemberChange!.Kind);
                writer.U64(command.MemberChange.MemberId);
                writer.U8(command.MemberChange.IsLearner ? (byte)1 : (byte)0);
                WriteStrings(ref writer, command.MemberChange.PeerUrls);
                break;
            case KvCommandKind.Alarm:
                writer.U8((byte)command.Alarm!.Action);
                writer.U64(command.Alarm.MemberId);
                writer.U8((byte)command.Alarm.Alarm);
                break;
            case KvCommandKind.Auth: WriteAuth(ref writer, command.Auth!); break;
            case KvCommandKind.GossipKeyring:
                writer.U8((byte)command.Keyring!.Action);
                writer.U8((byte)command.Keyring.Keys.Count);
                foreach (var key in command.Keyring.Keys) WriteBytes(ref writer, key);
                break;
        }
    }

    internal static long StringSize(string value) => 4L + Encoding.UTF8.GetByteCount(value);

    internal static long StringsSize(IReadOnlyList<string> values)
    {
        long size = 4;
        foreach (var value in values) size += StringSize(value);
        return size;
    }

    internal static void WriteString(ref BinarySpanWriter writer, string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        writer.I32(length);
        Encoding.UTF8.GetBytes(value, writer.Take(length));
    }

    internal static void WriteStrings(ref BinarySpanWriter writer, IReadOnlyList<string> values)
    {
        writer.I32(values.Count);
        foreach (var value in values) WriteString(ref writer, value);
    }

    internal static string ReadString(ref BinarySpanReader reader)
    {
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(reader.ReadBytes(reader.ReadCount(1)));
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidCommandException($"a string before offset {reader.Position} is not UTF-8");
        }
    }

    private static Keel.Leases.LeaseCheckpoint[] ReadCheckpoints(ref BinarySpanReader reader)
    {
        var records = new Keel.Leases.LeaseCheckpoint[reader.ReadCount(32)];
        for (var i = 0; i < records.Length; i++) records[i] = new(reader.I64(), reader.U64(), reader.I64(), reader.I64());
        return records;
    }

    private static MemberChange ReadMemberChange(ref BinarySpanReader reader)
    {
        var kind = (MemberChangeKind)reader.U8();
        if (kind is not (MemberChangeKind.Add or MemberChangeKind.Update)) throw new InvalidCommandException($"member change kind {kind} is not replicated as a command");
        var id = reader.U64();
        var learner = reader.U8() != 0;
        return MemberChange.Decoded(kind, id, ReadStrings(ref reader), learner);
    }

    internal static string[] ReadStrings(ref BinarySpanReader reader)
    {
        var values = new string[reader.ReadCount(4)];
        for (var i = 0; i < values.Length; i++) values[i] = ReadString(ref reader);
        return values;
    }

    /// <summary>Decodes an entry's payload.</summary>
    /// <exception cref="EncodingFormatException">Truncated data, a count that cannot fit, or an unknown version.</exception>
    /// <exception cref="InvalidCommandException">An unknown tag, trailing bytes, or nesting too deep.</exception>
    public static (CommandHeader Header, KvCommand Command) Decode(ReadOnlySpan<byte> data)
    {
        var reader = new BinarySpanReader(data);
        var version = reader.U8();
        if (version is not (Version or VersionWithoutIdempotency))
            throw new EncodingFormatException(EncodingProblem.UnsupportedVersion, 0, version, data.Length);
        var header = new CommandHeader(reader.U64(), reader.U64(), reader.U64());
        if (version == Version && reader.U8() is var keyLength and > 0)
        {
            var key = Encoding.ASCII.GetString(reader.ReadBytes(keyLength));
            if (!IdempotencyKey.IsValid(key)) throw new InvalidCommandException($"invalid idempotency key before offset {reader.Position}");
            header = header with { IdempotencyKey = key, Fingerprint = RequestFingerprint.FromBytes(reader.ReadBytes(RequestFingerprint.SizeBytes)) };
        }
        var kindOffset = reader.Position;
        var kind = (KvCommandKind)reader.U8();
        var command = kind switch
        {
            KvCommandKind.Put => KvCommand.Of(ReadPut(ref reader)),
            KvCommandKind.DeleteRange => KvCommand.Of(ReadDelete(ref reader)),
            KvCommandKind.Txn => KvCommand.Of(ReadTxn(ref reader, 0)),
            KvCommandKind.Compact => KvCommand.Compact(reader.I64()),
            KvCommandKind.LeaseGrant => KvCommand.LeaseGrant(reader.I64(), reader.I64()),
            KvCommandKind.LeaseRevoke => KvCommand.LeaseRevoke(reader.I64()),
            KvCommandKind.LeaseKeepAlive => KvCommand.LeaseKeepAlive(reader.I64()),
            KvCommandKind.PublishMember => KvCommand.PublishMember(new MemberAttributes(reader.U64(), ReadString(ref reader), ReadStrings(ref reader))),
            KvCommandKind.MemberChange => KvCommand.OfMemberChange(ReadMemberChange(ref reader)),
            KvCommandKind.LeaseCheckpoint => KvCommand.LeaseCheckpoint(ReadCheckpoints(ref reader)),
            KvCommandKind.Alarm => KvCommand.OfAlarm(new AlarmChange((AlarmAction)reader.U8(), reader.U64(), (AlarmType)reader.U8())),
            KvCommandKind.Auth => KvCommand.OfAuth(ReadAuth(ref reader)),
            KvCommandKind.GossipKeyring => KvCommand.OfKeyring(ReadKeyring(ref reader)),
            _ => throw new InvalidCommandException($"unknown command kind {(byte)kind} at offset {kindOffset}"),
        };
        if (!reader.IsAtEnd) throw new InvalidCommandException($"{reader.Remaining} bytes after the command at offset {reader.Position}");
        return (header, command);
    }

    private static long BytesSize(byte[] value) => 4L + value.Length;

    // Gossip keyring: u8 action | u8 count | keys as byte strings.
    private static Keyring.KeyringChange ReadKeyring(ref BinarySpanReader reader)
    {
        var action = (Keyring.KeyringAction)reader.U8();
        if (!Enum.IsDefined(action)) throw new InvalidCommandException($"unknown keyring action {(byte)action} before offset {reader.Position}");
        var count = reader.U8();
        if (count > Keyring.GossipKeys.MaxKeys) throw new InvalidCommandException($"a keyring change of {count} keys before offset {reader.Position}");
        var keys = new byte[count][];
        for (var i = 0; i < count; i++) keys[i] = ReadBytes(ref reader);
        return new Keyring.KeyringChange(action, keys);
    }

    // Auth: u8 action | name | role | password hash | u8 flags (1: no password, 2: permission present) |
    // [u8 permission type | key | range end].
    private static long AuthSize(Auth.AuthChange change) => 1 + StringSize(change.Name) + StringSize(change.Role) + StringSize(change.PasswordHash) + 1 +
        (change.Permission is { } p ? 1 + BytesSize(p.Key) + BytesSize(p.RangeEnd) : 0);

    private static void WriteAuth(ref BinarySpanWriter writer, Auth.AuthChange change)
    {
        writer.U8((byte)change.Action);
        WriteString(ref writer, change.Name);
        WriteString(ref writer, change.Role);
        WriteString(ref writer, change.PasswordHash);
        writer.U8((byte)((change.NoPassword ? 1 : 0) | (change.Permission is null ? 0 : 2)));
        if (change.Permission is { } permission)
        {
            writer.U8((byte)permission.Type);
            WriteBytes(ref writer, permission.Key);
            WriteBytes(ref writer, permission.RangeEnd);
        }
    }

    private static Auth.AuthChange ReadAuth(ref BinarySpanReader reader)
    {
        var action = (Auth.AuthAction)reader.U8();
        if (!Enum.IsDefined(action)) throw new InvalidCommandException($"unknown auth action {(byte)action} before offset {reader.Position}");
        var name = ReadString(ref reader);
        var role = ReadString(ref reader);
        var hash = ReadString(ref reader);
        var flags = reader.U8();
        if (flags > 3) throw new InvalidCommandException($"unknown auth flags {flags} before offset {reader.Position}");
        Auth.Permission? permission = null;
        if ((flags & 2) != 0)
        {
            var type = (Auth.PermissionType)reader.U8();
            if (!Enum.IsDefined(type)) throw new InvalidCommandException($"unknown permission type {(byte)type} before offset {reader.Position}");
            permission = new Auth.Permission(type, ReadBytes(ref reader), ReadBytes(ref reader));
        }
        return new Auth.AuthChange(action, name, role, hash, (flags & 1) != 0, permission);
    }

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
            // Decoded into a fresh array that nothing else holds: the store keeps it as the version's value.
            HandsOverValue = true,
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
        // The smallest operation (a delete of an empty key) takes 10 bytes: counts are checked against that, so a hostile
        // count cannot make the decoder allocate far beyond the entry's own size.
        var success = new RequestOp[reader.ReadCount(MinOpBytes)];
        for (var i = 0; i < success.Length; i++) success[i] = ReadOp(ref reader, depth);
        var failure = new RequestOp[reader.ReadCount(MinOpBytes)];
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
