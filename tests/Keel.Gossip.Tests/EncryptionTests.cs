using Keel.Core;
using Keel.Gossip;

namespace Keel.Gossip.Tests;

/// <summary>AES-256-GCM envelope: every kind of bad packet is dropped with its own reason; keyring rotation on a live cluster.</summary>
public sealed class EncryptionTests
{
    private static readonly byte[] KeyA = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
    private static readonly byte[] KeyB = Enumerable.Range(101, 32).Select(i => (byte)i).ToArray();
    private static readonly byte[] KeyC = Enumerable.Range(201, 32).Select(i => (byte)i).ToArray();

    private static GossipSecureChannel Channel(ulong id, ulong sequence, params byte[][] keys) =>
        new(id, new GossipKeyring(keys), sequence, GossipSecureChannel.DeterministicNonces(new DeterministicRandom(id * 1_000 + sequence)));

    private static GossipMessage Gossip(ulong about)
    {
        var message = new GossipMessage(GossipMessageKind.Gossip);
        message.Updates.Add(new MemberUpdate(about, MemberStatus.Alive, 3, about, new MemberTags("zone-secret", "agent", "1.0", 0)));
        return message;
    }

    [Fact]
    public void A_sealed_packet_hides_the_message_and_two_seals_of_one_message_differ()
    {
        var sender = Channel(1, 100, KeyA);
        var first = sender.Seal(Gossip(7));
        var second = sender.Seal(Gossip(7));
        Assert.NotEqual(first, second); // fresh nonce and sequence each time
        Assert.NotEqual(first[2..14], second[2..14]);
        // The tags' text travels encrypted: it is nowhere in the datagram (it is in the plaintext encoding).
        var plain = GossipCodec.Encode(Gossip(7));
        Assert.True(Contains(plain, "zone-secret"u8.ToArray()));
        Assert.False(Contains(first, "zone-secret"u8.ToArray()));
        Assert.Equal(GossipSecureChannel.OverheadBytes + plain.Length, first.Length);
    }

    [Fact]
    public void Each_bad_packet_is_dropped_with_its_reason_and_never_throws()
    {
        var sender = Channel(1, 100, KeyA);
        var receiver = Channel(2, 1, KeyA);
        var good = sender.Seal(Gossip(7));

        Assert.Equal(OpenOutcome.Forged, receiver.Open(Channel(1, 5_000, KeyB).Seal(Gossip(7)), out _, out var m1)); // wrong key
        Assert.Null(m1);
        for (var i = 2; i < good.Length; i += 7)
        {
            var tampered = (byte[])good.Clone();
            tampered[i] ^= 0x20;
            Assert.Equal(OpenOutcome.Forged, receiver.Open(tampered, out _, out _)); // nonce, ciphertext or tag changed
        }
        var headerChanged = (byte[])good.Clone();
        headerChanged[1] = 9;
        Assert.Equal(OpenOutcome.Malformed, receiver.Open(headerChanged, out _, out _)); // unknown version
        Assert.Equal(OpenOutcome.Truncated, receiver.Open(good.AsSpan(0, 20), out _, out _));
        Assert.Equal(OpenOutcome.Truncated, receiver.Open([], out _, out _));
        Assert.Equal(OpenOutcome.Truncated, receiver.Open([GossipSecureChannel.Magic], out _, out _));
        Assert.Equal(OpenOutcome.Forged, receiver.Open(good.AsSpan(0, good.Length - 1), out _, out _)); // cut by one: tag broken
        Assert.Equal(OpenOutcome.Plaintext, receiver.Open(GossipCodec.Encode(Gossip(7)), out _, out _)); // a bare message
        var signedOnly = new byte[40];
        signedOnly[0] = GossipSecureChannel.Magic;
        signedOnly[1] = GossipSecureChannel.PlaintextFormatVersion; // the pre-encryption envelope
        Assert.Equal(OpenOutcome.Plaintext, receiver.Open(signedOnly, out _, out _));
        Assert.Equal(OpenOutcome.Malformed, receiver.Open(new byte[64], out _, out _)); // garbage

        Assert.Equal(OpenOutcome.Accepted, receiver.Open(good, out var from, out var message));
        Assert.Equal(1UL, from);
        Assert.Equal(7UL, message!.Updates[0].Member);
        Assert.Equal(OpenOutcome.Replayed, receiver.Open(good, out _, out var replayed));
        Assert.Null(replayed);

        Assert.Equal(1, receiver.Accepted);
        Assert.Equal(1, receiver.DroppedReplayed);
        Assert.True(receiver.DroppedForged >= 3);
        Assert.Equal(3, receiver.DroppedTruncated);
        Assert.Equal(2, receiver.DroppedPlaintext);
        Assert.True(receiver.DroppedMalformed >= 2);
        var random = new DeterministicRandom(5);
        for (var i = 0; i < 200; i++)
        {
            var garbage = new byte[random.NextInt32(200)];
            for (var j = 0; j < garbage.Length; j++) garbage[j] = (byte)random.NextUInt64();
            Assert.NotEqual(OpenOutcome.Accepted, receiver.Open(garbage, out _, out _));
        }
        receiver.AssertInvariants();
    }

    [Fact]
    public void A_packet_older_than_the_replay_window_is_dropped_even_if_never_seen()
    {
        var sender = Channel(1, 1, KeyA);
        var receiver = Channel(2, 1, KeyA);
        var packets = Enumerable.Range(0, 100).Select(_ => sender.Seal(Gossip(3))).ToList();
        Assert.Equal(OpenOutcome.Accepted, receiver.Open(packets[99], out _, out _));
        Assert.Equal(OpenOutcome.Replayed, receiver.Open(packets[10], out _, out _)); // 89 behind the newest
        Assert.Equal(OpenOutcome.Accepted, receiver.Open(packets[98], out _, out _)); // reordered, inside the window
        // A restarted sender numbers above everything it sent before, so its packets are accepted.
        Assert.Equal(OpenOutcome.Accepted, receiver.Open(Channel(1, 1_000_000, KeyA).Seal(Gossip(3)), out _, out _));
    }

    [Fact]
    public void Keyring_install_use_remove_and_list_follow_memberlist()
    {
        using var ring = new GossipKeyring(KeyA);
        ring.Install(KeyB);
        ring.Install(KeyB); // no-op
        Assert.Equal([KeyA, KeyB], ring.Keys);
        ring.UseAsPrimary(KeyB);
        Assert.Equal([KeyB, KeyA], ring.Keys);
        Assert.True(ring.IsPrimary(KeyB));
        Assert.Throws<KeyringException>(() => ring.Remove(KeyB)); // the primary
        Assert.Throws<KeyringException>(() => ring.Remove(KeyC)); // not installed
        Assert.Throws<KeyringException>(() => ring.UseAsPrimary(KeyC));
        Assert.Throws<ArgumentException>(() => ring.Install(new byte[16])); // AES-256 only
        ring.Remove(KeyA);
        Assert.Equal([KeyB], ring.Keys);
        ring.ReplaceAll([KeyC, KeyA]);
        Assert.Equal([KeyC, KeyA], ring.Keys);
        Assert.Throws<ArgumentException>(() => ring.ReplaceAll([]));
        Assert.Equal([KeyC, KeyA], ring.Keys); // a refused replacement changes nothing
        for (var i = 0; i < GossipKeyring.MaxKeys - 2; i++) ring.Install(Enumerable.Repeat((byte)i, 32).ToArray());
        Assert.Throws<KeyringException>(() => ring.Install(KeyB));
        ring.AssertInvariants();
    }

    [Fact]
    public void Rotation_between_two_members_keeps_every_packet_accepted_and_retires_the_old_key()
    {
        var a = Channel(1, 1, KeyA);
        var b = Channel(2, 1, KeyA);
        var oldKeyPacket = Channel(1, 500_000, KeyA).Seal(Gossip(3));
        void Talk()
        {
            Assert.Equal(OpenOutcome.Accepted, b.Open(a.Seal(Gossip(3)), out _, out _));
            Assert.Equal(OpenOutcome.Accepted, a.Open(b.Seal(Gossip(4)), out _, out _));
        }
        a.Keyring.Install(KeyB);
        Talk();
        b.Keyring.Install(KeyB);
        a.Keyring.UseAsPrimary(KeyB); // a encrypts with B; b still with A: both accepted
        Talk();
        b.Keyring.UseAsPrimary(KeyB);
        Talk();
        a.Keyring.Remove(KeyA);
        b.Keyring.Remove(KeyA);
        Talk();
        Assert.Equal(OpenOutcome.Forged, b.Open(oldKeyPacket, out _, out _)); // the retired key opens nothing
    }

    [Fact]
    public void Rotating_the_key_on_a_live_five_member_cluster_loses_no_member()
    {
        var cluster = TestCluster.Converged(5, seed: 21);
        foreach (var node in cluster.Nodes) node.Member.DrainEvents();
        var dropsBefore = Drops(cluster);

        // consul keyring -install, -use, -remove: each step reaches members one by one, some time apart.
        foreach (var node in cluster.Nodes) { node.Channel.Keyring.Install(KeyB); cluster.Run(700); }
        foreach (var node in cluster.Nodes) { node.Channel.Keyring.UseAsPrimary(KeyB); cluster.Run(700); }
        cluster.Run(2_000);
        foreach (var node in cluster.Nodes) { node.Channel.Keyring.Remove(TestCluster.Key); cluster.Run(700); }
        cluster.Run(15_000);

        foreach (var node in cluster.Nodes)
        {
            Assert.Equal([KeyB], node.Channel.Keyring.Keys);
            var events = node.Member.DrainEvents();
            Assert.DoesNotContain(events, e => e.To is MemberStatus.Suspect or MemberStatus.Dead);
            Assert.Equal(5, node.Member.LiveCount);
        }
        for (ulong id = 1; id <= 5; id++) Assert.True(cluster.AllSee(id, MemberStatus.Alive));
        Assert.Equal(dropsBefore, Drops(cluster)); // not one packet failed to decrypt
    }

    [Fact]
    public void Removing_the_old_key_before_every_member_switched_cuts_members_off()
    {
        // The control for the rotation test: the same steps in the wrong order do lose members, so that test can fail.
        var cluster = TestCluster.Converged(5, seed: 21);
        foreach (var node in cluster.Nodes) node.Member.DrainEvents();
        foreach (var node in cluster.Nodes.Take(2))
        {
            node.Channel.Keyring.Install(KeyB);
            node.Channel.Keyring.UseAsPrimary(KeyB);
            node.Channel.Keyring.Remove(TestCluster.Key);
        }
        cluster.Run(15_000);
        Assert.True(Drops(cluster) > 0);
        Assert.Contains(cluster.Nodes.SelectMany(n => n.Member.DrainEvents()), e => e.To is MemberStatus.Suspect or MemberStatus.Dead);
    }

    private static long Drops(TestCluster cluster) =>
        cluster.Nodes.Sum(n => Enum.GetValues<OpenOutcome>().Where(o => o != OpenOutcome.Accepted).Sum(o => n.Channel.Dropped(o)));

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
