using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Keel.Gossip;

namespace Keel.Gossip.Tests;

public sealed class CodecTests
{
    private static MemberUpdate MakeUpdate(ulong member, byte status, long incarnation, ulong from, bool tags, int load) =>
        new(member, (MemberStatus)(status % 4), Math.Abs(incarnation % 1_000_000), from,
            tags ? new MemberTags($"zone-{member % 7}", "agent", "1.2.3", load) : null);

    [Property(MaxTest = 300)]
    public Property Encoding_round_trips_every_message(byte kindSeed, ulong target, long incarnation, byte[] bytes, bool reply) =>
        Prop.ToProperty(RoundTrips(kindSeed, target, incarnation, bytes ?? [], reply));

    private static bool RoundTrips(byte kindSeed, ulong target, long incarnation, byte[] bytes, bool reply)
            {
                var message = new GossipMessage((GossipMessageKind)(1 + kindSeed % 8))
                {
                    ProbeSequence = (uint)(bytes.Length * 31),
                    Target = target,
                    IsReply = reply,
                    RootHash = (ulong)incarnation,
                };
                for (var i = 0; i < bytes.Length % 6; i++)
                    message.Updates.Add(MakeUpdate((ulong)(bytes[i] + 1), bytes[i], incarnation + i, target ^ (ulong)i, bytes[i] % 2 == 0, bytes[i] * 3));
                for (var i = 0; i < bytes.Length % 4; i++) message.Digest.Add(new DigestEntry((ulong)i + 1, incarnation ^ i));
                for (var i = 0; i < bytes.Length % 3; i++) message.States.Add(MakeUpdate((ulong)i + 9, (byte)i, i, 1, i == 1, -i));
                for (var i = 0; i < bytes.Length % 5; i++) message.Wants.Add((ulong)(i * 1000 + 1));

                var encoded = GossipCodec.Encode(message);
                var decoded = GossipCodec.Decode(encoded);
                return encoded.Length == GossipCodec.SizeOf(message)
                    && decoded.Kind == message.Kind && decoded.ProbeSequence == message.ProbeSequence
                    && decoded.Target == message.Target && decoded.IsReply == message.IsReply && decoded.RootHash == message.RootHash
                    && decoded.Updates.SequenceEqual(message.Updates) && decoded.Digest.SequenceEqual(message.Digest)
                    && decoded.States.SequenceEqual(message.States) && decoded.Wants.SequenceEqual(message.Wants);
            }

    [Property(MaxTest = 300)]
    public Property Decoding_arbitrary_bytes_either_succeeds_or_throws_the_typed_error(byte[] bytes) =>
        Prop.ToProperty(Decodes(bytes ?? []));

    private static bool Decodes(byte[] bytes)
    {
        try
        {
            GossipCodec.Decode(bytes);
            return true;
        }
        catch (GossipFormatException)
        {
            return true;
        }
    }

    [Fact]
    public void Truncating_a_message_gives_a_typed_format_error()
    {
        var message = new GossipMessage(GossipMessageKind.Gossip);
        message.Updates.Add(new MemberUpdate(5, MemberStatus.Alive, 3, 5, new MemberTags("eu-1", "server", "0.1", 42)));
        var encoded = GossipCodec.Encode(message);
        for (var cut = 0; cut < encoded.Length; cut++)
            Assert.Throws<GossipFormatException>(() => GossipCodec.Decode(encoded.AsSpan(0, cut)));
    }

    [Fact]
    public void A_ping_is_small()
    {
        var ping = new GossipMessage(GossipMessageKind.Ping) { ProbeSequence = 1, Target = 42 };
        Assert.Equal(15, GossipCodec.SizeOf(ping));
        Assert.Equal(15 + GossipSecureChannel.OverheadBytes, new GossipSecureChannel(1, new GossipKeyring(TestCluster.Key), 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(1) << 40 ^ (ulong)(1)))).Seal(ping).Length);
    }

    [Fact]
    public void Tags_are_bounded_to_512_bytes()
    {
        var ok = new MemberTags(new string('z', 255), new string('r', 240), "", 1);
        Assert.True(ok.EncodedSize <= MemberTags.MaxEncodedBytes);
        Assert.Throws<MetadataTooLargeException>(() => new MemberTags(new string('z', 255), new string('r', 255), "v", 1));
        Assert.Throws<MetadataTooLargeException>(() => new MemberTags(new string('z', 256), "", "", 1));
    }
}
