using FsCheck;
using FsCheck.Fluent;
using Keel.Quorum;
using Keel.Raft;
using Keel.Server.Peers;

namespace Keel.Server.Tests;

public class RaftMessageCodecTests
{
    private static Message Sample(MessageType type, int entries, bool snapshot) => new()
    {
        Type = type,
        From = 0x1de10955cefb9815,
        To = 0x898903983759ef,
        Term = 7,
        LogTerm = 6,
        Index = 42,
        Commit = 40,
        Reject = type == MessageType.AppendResponse,
        RejectHint = 17,
        Context = 99,
        LeaderTransfer = type == MessageType.Vote,
        Entries = Enumerable.Range(0, entries).Select(i => new Entry((ulong)(43 + i), 7, i % 3 == 2 ? EntryType.ConfChange : EntryType.Normal,
            Enumerable.Range(0, i * 5).Select(b => (byte)b).ToArray())).ToArray(),
        Snapshot = snapshot
            ? new SnapshotChunk(new SnapshotMetadata(40, 6, new Membership(new JointConfig(new MajorityConfig([1, 2, 3]), new MajorityConfig([1, 2, 5])), [4], [5], autoLeave: true)),
                128, 1024, new byte[] { 1, 2, 3, 4 })
            : null,
    };

    private static void AssertSame(Message expected, Message actual)
    {
        Assert.Equal(expected.ToString(), actual.ToString());
        Assert.Equal((expected.Type, expected.From, expected.To, expected.Term, expected.LogTerm, expected.Index, expected.Commit),
            (actual.Type, actual.From, actual.To, actual.Term, actual.LogTerm, actual.Index, actual.Commit));
        Assert.Equal((expected.Reject, expected.RejectHint, expected.Context, expected.LeaderTransfer),
            (actual.Reject, actual.RejectHint, actual.Context, actual.LeaderTransfer));
        Assert.Equal(expected.Entries.Count, actual.Entries.Count);
        for (var i = 0; i < expected.Entries.Count; i++)
        {
            Assert.Equal((expected.Entries[i].Index, expected.Entries[i].Term, expected.Entries[i].Type), (actual.Entries[i].Index, actual.Entries[i].Term, actual.Entries[i].Type));
            Assert.Equal(expected.Entries[i].Data.ToArray(), actual.Entries[i].Data.ToArray());
        }
        Assert.Equal(expected.Snapshot is null, actual.Snapshot is null);
        if (expected.Snapshot is { } chunk)
        {
            Assert.Equal(chunk.Metadata.Index, actual.Snapshot!.Metadata.Index);
            Assert.Equal(chunk.Metadata.Term, actual.Snapshot.Metadata.Term);
            Assert.Equal(chunk.Metadata.Membership, actual.Snapshot.Metadata.Membership);
            Assert.Equal((chunk.Offset, chunk.TotalBytes), (actual.Snapshot.Offset, actual.Snapshot.TotalBytes));
            Assert.Equal(chunk.Data.ToArray(), actual.Snapshot.Data.ToArray());
        }
    }

    [Theory]
    [InlineData(MessageType.Append, 5, false)]
    [InlineData(MessageType.AppendResponse, 0, false)]
    [InlineData(MessageType.Vote, 0, false)]
    [InlineData(MessageType.Heartbeat, 0, false)]
    [InlineData(MessageType.Snapshot, 0, true)]
    [InlineData(MessageType.Propose, 3, false)]
    [InlineData(MessageType.ReadIndexResponse, 0, false)]
    public void Every_field_survives_a_round_trip(MessageType type, int entries, bool snapshot)
    {
        var message = Sample(type, entries, snapshot);
        var bytes = RaftMessageCodec.Encode(message);
        Assert.Equal(RaftMessageCodec.EncodedSize(message), bytes.Length);
        AssertSame(message, RaftMessageCodec.Decode(bytes));
    }

    [Fact]
    public void Every_truncation_and_any_trailing_byte_is_refused()
    {
        var bytes = RaftMessageCodec.Encode(Sample(MessageType.Snapshot, 4, snapshot: true));
        for (var length = 0; length < bytes.Length; length++)
        {
            var cut = bytes[..length];
            Assert.ThrowsAny<FormatException>(() => RaftMessageCodec.Decode(cut));
        }
        Assert.ThrowsAny<FormatException>(() => RaftMessageCodec.Decode([.. bytes, 0]));
    }

    [Fact]
    public void Unknown_versions_types_and_negative_counts_are_refused()
    {
        var bytes = RaftMessageCodec.Encode(Sample(MessageType.Append, 1, false));
        var badVersion = (byte[])bytes.Clone();
        badVersion[0] = 9;
        Assert.ThrowsAny<FormatException>(() => RaftMessageCodec.Decode(badVersion));
        var badType = (byte[])bytes.Clone();
        badType[1] = 200;
        Assert.ThrowsAny<FormatException>(() => RaftMessageCodec.Decode(badType));
        var badCount = (byte[])bytes.Clone();
        badCount[1 + 1 + 8 * 6 + 1 + 8 + 8 + 3] = 0x80; // the entry count's sign byte
        Assert.ThrowsAny<FormatException>(() => RaftMessageCodec.Decode(badCount));
    }

    [FsCheck.Xunit.Property(MaxTest = 200)]
    public Property Random_messages_round_trip() =>
        Prop.ForAll(Arb.From(Gen.Choose(0, (int)MessageType.ReadIndexResponse)), Arb.From(Gen.Choose(0, 6)), Arb.From(Gen.Elements(true, false)),
            (type, entries, snapshot) =>
            {
                var message = Sample((MessageType)type, entries, snapshot);
                AssertSame(message, RaftMessageCodec.Decode(RaftMessageCodec.Encode(message)));
            });
}
