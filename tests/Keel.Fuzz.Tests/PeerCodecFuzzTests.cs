using FsCheck;
using FsCheck.Fluent;
using Keel.Quorum;
using Keel.Raft;
using Keel.Server.Peers;
using Xunit.Abstractions;

namespace Keel.Fuzz.Tests;

/// <summary>
/// The peer codec (<see cref="RaftMessageCodec.Decode"/>): any bytes from the network either decode or fail with
/// <see cref="FormatException"/>; what decodes re-encodes to the same bytes.
/// </summary>
public sealed class PeerCodecFuzzTests(ITestOutputHelper output)
{
    private static readonly Gen<Membership> MembershipGen =
        from incoming in ByteGens.ArrayOf(ByteGens.SmallId, 1, 5)
        from outgoing in ByteGens.ArrayOf(ByteGens.SmallId, 0, 3)
        from learners in ByteGens.ArrayOf(ByteGens.SmallId, 0, 3)
        from learnersNext in ByteGens.ArrayOf(ByteGens.SmallId, 0, 2)
        from autoLeave in ArbMap.Default.GeneratorFor<bool>()
        select TryMembership(incoming, outgoing, learners, learnersNext, autoLeave);

    private static Membership TryMembership(ulong[] incoming, ulong[] outgoing, ulong[] learners, ulong[] learnersNext, bool autoLeave)
    {
        try { return new Membership(new JointConfig(new MajorityConfig(incoming), new MajorityConfig(outgoing)), learners, learnersNext, autoLeave); }
        catch (ConfigurationChangeException)
        {
            try { return new Membership(incoming.Where(id => id != 0).DefaultIfEmpty(1UL)); }
            catch (ConfigurationChangeException) { return new Membership([1UL, 2UL, 3UL]); }
        }
    }

    private static readonly Gen<Entry> EntryGen =
        from index in ByteGens.AnyULong
        from term in ByteGens.AnyULong
        from type in Gen.Elements(EntryType.Normal, EntryType.ConfChange)
        from data in ByteGens.ShortBytes(48)
        select new Entry(index, term, type, data);

    private static readonly Gen<SnapshotChunk?> ChunkGen = Gen.Frequency(
        (3, Gen.Constant<SnapshotChunk?>(null)),
        (1, from index in ByteGens.AnyULong
            from term in ByteGens.AnyULong
            from membership in MembershipGen
            from offset in ByteGens.AnyULong
            from total in ByteGens.AnyULong
            from data in ByteGens.ShortBytes(64)
            select (SnapshotChunk?)new SnapshotChunk(new SnapshotMetadata(index, term, membership), offset, total, data)));

    public static readonly Gen<Message> MessageGen =
        from type in Gen.Elements(Enum.GetValues<MessageType>())
        from ids in Gen.ArrayOf(ByteGens.AnyULong, 8)
        from flags in Gen.Choose(0, 3)
        from entries in ByteGens.ArrayOf(EntryGen, 0, 4)
        from chunk in ChunkGen
        select new Message
        {
            Type = type, From = ids[0], To = ids[1], Term = ids[2], LogTerm = ids[3], Index = ids[4], Commit = ids[5],
            RejectHint = ids[6], Context = ids[7], Reject = (flags & 1) != 0, LeaderTransfer = (flags & 2) != 0,
            Entries = entries, Snapshot = chunk,
        };

    private static readonly Gen<byte[]> Valid = MessageGen.Select(RaftMessageCodec.Encode);

    private static void DecodeAndReencode(byte[] input)
    {
        var message = RaftMessageCodec.Decode(input);
        Assert.Equal(input, RaftMessageCodec.Encode(message));
    }

    /// <summary>Damaged input that still decodes may be non-canonical (unsorted ids); its re-encoding must be a fixed point.</summary>
    private static void DecodeAndNormalize(byte[] input)
    {
        var once = RaftMessageCodec.Encode(RaftMessageCodec.Decode(input));
        Assert.Equal(once, RaftMessageCodec.Encode(RaftMessageCodec.Decode(once)));
    }

    [Fact]
    public void Arbitrary_bytes_decode_or_fail_with_FormatException_within_the_allocation_bound() =>
        Fuzzer.Run(output, "peer-codec", ByteGens.Mix(Valid, [RaftMessageCodec.Version]), DecodeAndNormalize, e => e is FormatException);

    [Fact]
    public void Valid_messages_round_trip() =>
        Fuzzer.Run(output, "peer-codec-roundtrip", Valid, DecodeAndReencode, _ => false);

    [Fact]
    public void A_huge_entry_count_or_length_is_refused_before_allocating()
    {
        var bytes = RaftMessageCodec.Encode(new Message { Type = MessageType.Append, From = 1, To = 2, Entries = [new Entry(1, 1, EntryType.Normal, new byte[] { 1, 2, 3 })] });
        const int countOffset = 1 + 1 + 8 * 6 + 1 + 8 + 8;
        foreach (var (offset, value) in new[] { (countOffset, 0x7FFFFFFFu), (countOffset, 0x80000000u), (countOffset, 0xFFFFFFFFu), (countOffset + 4 + 17, 0x7FFFFFFFu) })
        {
            var damaged = (byte[])bytes.Clone();
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(damaged.AsSpan(offset), value);
            var before = GC.GetAllocatedBytesForCurrentThread();
            Assert.ThrowsAny<FormatException>(() => RaftMessageCodec.Decode(damaged));
            Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64 * 1024);
        }
    }
}
