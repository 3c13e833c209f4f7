using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Keel.Core.Encoding;

namespace Keel.Core.Tests;

/// <summary>One field of a generated encoding: which writer call, and its value.</summary>
public sealed record Field(FieldKind Kind, long Number, byte[] Blob)
{
    public int EncodedBytes => Kind switch
    {
        FieldKind.U8 => 1,
        FieldKind.I32 or FieldKind.U32 => 4,
        FieldKind.I64 or FieldKind.U64 => 8,
        FieldKind.CountedBytes => 4 + Blob.Length,
        _ => throw new ArgumentOutOfRangeException(nameof(Kind)),
    };

    public override string ToString() => $"{Kind}({Number}, [{Convert.ToHexString(Blob)}])";
}

public enum FieldKind { U8, I32, U32, I64, U64, CountedBytes }

public static class EncodingArbitraries
{
    private static readonly Gen<Field> FieldGen =
        from kind in Gen.Elements(Enum.GetValues<FieldKind>())
        from number in ArbMap.Default.GeneratorFor<long>()
        from length in Gen.Choose(0, 40)
        from blob in Gen.ArrayOf(ArbMap.Default.GeneratorFor<byte>(), length)
        select kind switch
        {
            FieldKind.U8 => new Field(kind, (byte)number, []),
            FieldKind.I32 => new Field(kind, (int)number, []),
            FieldKind.U32 => new Field(kind, (uint)number, []),
            FieldKind.CountedBytes => new Field(kind, 0, blob),
            _ => new Field(kind, number, []),
        };

    public static Arbitrary<Field[]> Fields() => Gen.ArrayOf(FieldGen).ToArbitrary();
}

public class EncodingProperties
{
    private static byte[] Encode(Field[] fields)
    {
        var buffer = new byte[fields.Sum(f => f.EncodedBytes)];
        var writer = new BinarySpanWriter(buffer);
        foreach (var field in fields) Write(ref writer, field);
        writer.AssertFull();
        return buffer;
    }

    private static void Write(ref BinarySpanWriter writer, Field field)
    {
        switch (field.Kind)
        {
            case FieldKind.U8: writer.U8((byte)field.Number); break;
            case FieldKind.I32: writer.I32((int)field.Number); break;
            case FieldKind.U32: writer.U32((uint)field.Number); break;
            case FieldKind.I64: writer.I64(field.Number); break;
            case FieldKind.U64: writer.U64((ulong)field.Number); break;
            case FieldKind.CountedBytes:
                writer.I32(field.Blob.Length);
                writer.Bytes(field.Blob);
                break;
        }
    }

    /// <summary>Reads the fields back by the same schema; throws what the reader throws.</summary>
    private static Field[] Decode(ReadOnlySpan<byte> data, Field[] schema)
    {
        var reader = new BinarySpanReader(data);
        var result = new Field[schema.Length];
        for (var i = 0; i < schema.Length; i++)
        {
            var kind = schema[i].Kind;
            result[i] = kind switch
            {
                FieldKind.U8 => new Field(kind, reader.U8(), []),
                FieldKind.I32 => new Field(kind, reader.I32(), []),
                FieldKind.U32 => new Field(kind, reader.U32(), []),
                FieldKind.I64 => new Field(kind, reader.I64(), []),
                FieldKind.U64 => new Field(kind, (long)reader.U64(), []),
                _ => new Field(kind, 0, reader.ReadBytes(reader.ReadCount(1)).ToArray()),
            };
        }
        Assert.True(reader.IsAtEnd, "the decoder consumed every byte");
        return result;
    }

    /// <summary>Whatever sequence of fields is written into an exactly sized buffer reads back identically, to the last byte.</summary>
    [Property(Arbitrary = [typeof(EncodingArbitraries)], MaxTest = 300, Replay = "4201,1357")]
    public void Every_sequence_of_fields_round_trips(Field[] fields)
    {
        var bytes = Encode(fields);
        var decoded = Decode(bytes, fields);
        Assert.Equal(fields.Length, decoded.Length);
        for (var i = 0; i < fields.Length; i++)
        {
            Assert.Equal(fields[i].Kind, decoded[i].Kind);
            Assert.Equal(fields[i].Number, decoded[i].Number);
            Assert.Equal(fields[i].Blob, decoded[i].Blob);
        }
    }

    /// <summary>Every strict prefix of an encoding is refused with a format error, never an index error or a wrong value.</summary>
    [Property(Arbitrary = [typeof(EncodingArbitraries)], MaxTest = 100, Replay = "4202,1357")]
    public void Every_truncation_is_a_format_error(Field[] fields)
    {
        var bytes = Encode(fields);
        for (var length = 0; length < bytes.Length; length++)
        {
            var prefix = bytes[..length];
            var error = Assert.Throws<EncodingFormatException>(() => Decode(prefix, fields));
            Assert.InRange(error.Offset, 0, length);
        }
    }

    /// <summary>Garbage read as counted items either decodes or fails with a format error, and never loops or allocates past the input.</summary>
    [Property(MaxTest = 300, Replay = "4203,1357")]
    public void Garbage_never_escapes_as_anything_but_a_format_error(byte[] garbage, byte minBytesPerItem)
    {
        try
        {
            var reader = new BinarySpanReader(garbage);
            var count = reader.ReadCount(minBytesPerItem);
            Assert.True((long)count * minBytesPerItem <= garbage.Length - 4);
            for (var i = 0; i < count && !reader.IsAtEnd; i++) reader.ReadBytes(reader.ReadCount(1));
        }
        catch (EncodingFormatException)
        {
            // the one acceptable failure
        }
    }

    /// <summary>A framed encoding opens to its payload; flipping any bits of any one byte is always refused.</summary>
    [Property(Arbitrary = [typeof(EncodingArbitraries)], MaxTest = 200, Replay = "4204,1357")]
    public void Frames_round_trip_and_every_damaged_byte_is_refused(Field[] fields, byte version, int index, byte mask)
    {
        var payload = Encode(fields);
        ReadOnlySpan<byte> magic = "KPRP"u8;
        var frame = new byte[ChecksummedFrame.OverheadBytes(magic) + payload.Length];
        var writer = new BinarySpanWriter(frame);
        ChecksummedFrame.WriteHeader(ref writer, magic, version);
        writer.Bytes(payload);
        ChecksummedFrame.WriteChecksum(ref writer);
        writer.AssertFull();

        var reader = ChecksummedFrame.Open(frame, magic, version);
        Assert.Equal(payload, reader.ReadBytes(reader.Remaining).ToArray());

        var damaged = (byte[])frame.Clone();
        damaged[(int)((uint)index % (uint)damaged.Length)] ^= mask == 0 ? (byte)1 : mask;
        Assert.Throws<EncodingFormatException>(() => ChecksummedFrame.Open(damaged, "KPRP"u8, version));
    }
}
