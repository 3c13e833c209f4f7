using FsCheck;
using FsCheck.Fluent;
using Keel.Gossip;
using Xunit.Abstractions;

namespace Keel.Fuzz.Tests;

/// <summary>
/// The gossip codec (<see cref="GossipCodec.Decode"/>: only <see cref="GossipFormatException"/>) and the secure channel
/// (<see cref="GossipSecureChannel.Open"/>: an outcome for every packet, never an exception), including damaged
/// payloads re-signed with the shared key so the decoder behind the authentication is reached.
/// </summary>
public sealed class GossipFuzzTests(ITestOutputHelper output)
{
    private static readonly Gen<string> TagText = Gen.Elements("", "zone-a", "eu-west-1", "server", "agent", "1.2.3", "ü€", new string('x', 100));

    private static readonly Gen<MemberTags?> TagsGen = Gen.Frequency(
        (2, Gen.Constant<MemberTags?>(null)),
        (1, from zone in TagText from role in TagText from version in TagText from load in ArbMap.Default.GeneratorFor<int>()
            select (MemberTags?)new MemberTags(zone, role, version, load)));

    private static readonly Gen<MemberUpdate> UpdateGen =
        from member in ByteGens.AnyULong
        from status in Gen.Elements(Enum.GetValues<MemberStatus>())
        from incarnation in Gen.Choose(0, int.MaxValue)
        from sender in ByteGens.AnyULong
        from tags in TagsGen
        select new MemberUpdate(member, status, incarnation, sender, tags);

    public static readonly Gen<GossipMessage> MessageGen =
        from kind in Gen.Elements(Enum.GetValues<GossipMessageKind>())
        from reply in ArbMap.Default.GeneratorFor<bool>()
        from probe in ArbMap.Default.GeneratorFor<uint>()
        from target in Gen.Frequency((1, Gen.Constant(0UL)), (1, ByteGens.AnyULong))
        from root in Gen.Frequency((1, Gen.Constant(0UL)), (1, ByteGens.AnyULong))
        from updates in ByteGens.ArrayOf(UpdateGen, 0, 3)
        from digest in ByteGens.ArrayOf(ByteGens.AnyULong, 0, 3)
        from states in ByteGens.ArrayOf(UpdateGen, 0, 2)
        from wants in ByteGens.ArrayOf(ByteGens.AnyULong, 0, 3)
        from hashes in ByteGens.ArrayOf(ByteGens.AnyULong, 0, 3)
        from bucketCount in Gen.Frequency((1, Gen.Constant(0)), (1, Gen.Choose(1, 64)))
        from buckets in ByteGens.ArrayOf(Gen.Choose(0, 63), 0, 4)
        select Build(kind, reply, probe, target, root, updates, digest, states, wants, hashes, bucketCount, buckets);

    private static GossipMessage Build(GossipMessageKind kind, bool reply, uint probe, ulong target, ulong root, MemberUpdate[] updates,
        ulong[] digest, MemberUpdate[] states, ulong[] wants, ulong[] hashes, int bucketCount, int[] buckets)
    {
        var message = new GossipMessage(kind) { IsReply = reply, ProbeSequence = probe, Target = target, RootHash = root, BucketCount = bucketCount };
        message.Updates.AddRange(updates);
        message.Digest.AddRange(digest.Select(d => new DigestEntry(d, (long)(d >> 1))));
        message.States.AddRange(states);
        message.Wants.AddRange(wants);
        message.BucketHashes.AddRange(hashes);
        if (bucketCount > 0) message.Buckets.AddRange(buckets.Where(b => b < bucketCount));
        return message;
    }

    private static readonly Gen<byte[]> Valid = MessageGen.Select(GossipCodec.Encode);

    private static void DecodeAndReencode(byte[] input) => Assert.Equal(input, GossipCodec.Encode(GossipCodec.Decode(input)));

    /// <summary>Damaged input that still decodes may be non-canonical (a flagged but empty section); its re-encoding must be a fixed point.</summary>
    private static void DecodeAndNormalize(byte[] input)
    {
        var once = GossipCodec.Encode(GossipCodec.Decode(input));
        Assert.Equal(once, GossipCodec.Encode(GossipCodec.Decode(once)));
    }

    [Fact]
    public void Arbitrary_bytes_decode_or_fail_with_GossipFormatException() =>
        Fuzzer.Run(output, "gossip-codec", ByteGens.Mix(Valid, [(byte)GossipMessageKind.Ping]), DecodeAndNormalize, e => e is GossipFormatException);

    [Fact]
    public void Valid_messages_round_trip() =>
        Fuzzer.Run(output, "gossip-codec-roundtrip", Valid, DecodeAndReencode, _ => false);

    private static readonly byte[] Key = [.. Enumerable.Range(1, 32).Select(i => (byte)i)];

    /// <summary>
    /// Re-encrypts a damaged packet so it authenticates and its damaged payload reaches the decoder: GCM is counter mode,
    /// so the damaged ciphertext XOR the key stream of its nonce is the damaged plaintext, encrypted again for its tag.
    /// </summary>
    private static byte[] Reseal(byte[] packet)
    {
        const int start = 2 + GossipKeyring.NonceBytes;
        if (packet.Length < start + GossipKeyring.TagBytes) return packet;
        var copy = (byte[])packet.Clone();
        var nonce = copy.AsSpan(2, GossipKeyring.NonceBytes);
        var body = copy.AsSpan(start, copy.Length - start - GossipKeyring.TagBytes);
        using var aes = new System.Security.Cryptography.AesGcm(Key, GossipKeyring.TagBytes);
        var stream = new byte[body.Length];
        aes.Encrypt(nonce, new byte[body.Length], stream, new byte[GossipKeyring.TagBytes], copy.AsSpan(0, 2));
        var plaintext = new byte[body.Length];
        for (var i = 0; i < plaintext.Length; i++) plaintext[i] = (byte)(body[i] ^ stream[i]);
        aes.Encrypt(nonce, plaintext, body, copy.AsSpan(copy.Length - GossipKeyring.TagBytes), copy.AsSpan(0, 2));
        return copy;
    }

    [Fact]
    public void The_secure_channel_answers_every_packet_with_an_outcome()
    {
        var sender = new GossipSecureChannel(7, new GossipKeyring(Key), initialSequence: 1000, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(7) << 40 ^ (ulong)(1000))));
        var sealedPackets = MessageGen.Select(sender.Seal);
        var receiver = new GossipSecureChannel(9, new GossipKeyring(Key), initialSequence: 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(9) << 40 ^ (ulong)(1))));
        var outcomes = new int[Enum.GetValues<OpenOutcome>().Length];
        Fuzzer.Run(output, "gossip-secure-channel", ByteGens.Mix(sealedPackets, [GossipSecureChannel.Magic, GossipSecureChannel.FormatVersion], Reseal), packet =>
        {
            var outcome = receiver.Open(packet, out _, out var message);
            outcomes[(int)outcome]++;
            Assert.Equal(outcome == OpenOutcome.Accepted, message is not null);
        }, _ => false);
        receiver.AssertInvariants();
        output.WriteLine("outcomes: " + string.Join(", ", Enum.GetValues<OpenOutcome>().Select(o => $"{o} {outcomes[(int)o]}")));
        Assert.True(outcomes[(int)OpenOutcome.Malformed] > 0 && outcomes[(int)OpenOutcome.Forged] > 0);
    }
}
