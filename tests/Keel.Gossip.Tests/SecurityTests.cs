using Keel.Gossip;

namespace Keel.Gossip.Tests;

public sealed class SecurityTests
{
    private static readonly byte[] KeyA = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
    private static readonly byte[] KeyB = Enumerable.Range(101, 32).Select(i => (byte)i).ToArray();

    private static GossipMessage Ping() => new(GossipMessageKind.Ping) { ProbeSequence = 7, Target = 2 };

    [Fact]
    public void An_authentic_packet_is_accepted_once_and_its_replay_is_dropped()
    {
        var sender = new GossipSecureChannel(1, new GossipKeyring(KeyA), 100, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(1) << 40 ^ (ulong)(100))));
        var receiver = new GossipSecureChannel(2, new GossipKeyring(KeyA), 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(2) << 40 ^ (ulong)(1))));
        var packet = sender.Seal(Ping());

        Assert.Equal(OpenOutcome.Accepted, receiver.Open(packet, out var from, out var message));
        Assert.Equal(1UL, from);
        Assert.Equal(GossipMessageKind.Ping, message!.Kind);
        Assert.Equal(OpenOutcome.Replayed, receiver.Open(packet, out _, out var replayed));
        Assert.Null(replayed);
        Assert.Equal(1, receiver.DroppedReplayed);
        receiver.AssertInvariants();
    }

    [Fact]
    public void Reordered_packets_within_the_window_are_accepted_but_ones_older_than_the_window_are_not()
    {
        var sender = new GossipSecureChannel(1, new GossipKeyring(KeyA), 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(1) << 40 ^ (ulong)(1))));
        var receiver = new GossipSecureChannel(2, new GossipKeyring(KeyA), 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(2) << 40 ^ (ulong)(1))));
        var packets = Enumerable.Range(0, 100).Select(_ => sender.Seal(Ping())).ToArray();

        Assert.Equal(OpenOutcome.Accepted, receiver.Open(packets[50], out _, out _));
        Assert.Equal(OpenOutcome.Accepted, receiver.Open(packets[49], out _, out _)); // late but fresh
        Assert.Equal(OpenOutcome.Accepted, receiver.Open(packets[99], out _, out _));
        Assert.Equal(OpenOutcome.Replayed, receiver.Open(packets[30], out _, out _)); // 69 behind: outside the window
        Assert.Equal(OpenOutcome.Accepted, receiver.Open(packets[40], out _, out _)); // 59 behind: inside
        Assert.Equal(OpenOutcome.Replayed, receiver.Open(packets[40], out _, out _));
    }

    [Fact]
    public void A_tampered_or_foreign_key_packet_is_dropped_as_forged_and_never_delivered()
    {
        var sender = new GossipSecureChannel(1, new GossipKeyring(KeyA), 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(1) << 40 ^ (ulong)(1))));
        var outsider = new GossipSecureChannel(1, new GossipKeyring(KeyB), 1000, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(1) << 40 ^ (ulong)(1000))));
        var receiver = new GossipSecureChannel(2, new GossipKeyring(KeyA), 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(2) << 40 ^ (ulong)(1))));
        var tampered = sender.Seal(Ping());
        tampered[20] ^= 0x01;

        Assert.Equal(OpenOutcome.Forged, receiver.Open(tampered, out _, out var m1));
        Assert.Equal(OpenOutcome.Forged, receiver.Open(outsider.Seal(Ping()), out _, out var m2));
        Assert.Equal(OpenOutcome.Malformed, receiver.Open(new byte[10], out _, out _));
        Assert.Null(m1);
        Assert.Null(m2);
        Assert.Equal(2, receiver.DroppedForged);
        Assert.Equal(1, receiver.DroppedMalformed);
        Assert.Equal(0, receiver.Accepted);
        // The forged packet's high sequence did not move the window: the genuine first packet still gets in.
        Assert.Equal(OpenOutcome.Accepted, receiver.Open(sender.Seal(Ping()), out _, out _));
    }

    [Fact]
    public void Keys_rotate_without_downtime_install_then_use_then_remove()
    {
        var ringA = new GossipKeyring(KeyA);
        var ringB = new GossipKeyring(KeyA);
        var a = new GossipSecureChannel(1, ringA, 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(1) << 40 ^ (ulong)(1))));
        var b = new GossipSecureChannel(2, ringB, 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(2) << 40 ^ (ulong)(1))));

        ringA.Install(KeyB);
        ringB.Install(KeyB);
        Assert.Equal(OpenOutcome.Accepted, b.Open(a.Seal(Ping()), out _, out _)); // still signs with the old key

        ringA.UseAsPrimary(KeyB); // a switches first; b has not yet: both directions must keep working
        Assert.True(ringA.IsPrimary(KeyB));
        Assert.Equal(OpenOutcome.Accepted, b.Open(a.Seal(Ping()), out _, out _));
        Assert.Equal(OpenOutcome.Accepted, a.Open(b.Seal(Ping()), out _, out _));
        ringB.UseAsPrimary(KeyB);

        var oldKeyPacket = new GossipSecureChannel(1, new GossipKeyring(KeyA), 10_000, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(1) << 40 ^ (ulong)(10_000)))).Seal(Ping());
        ringA.Remove(KeyA);
        ringB.Remove(KeyA);
        Assert.Equal(OpenOutcome.Accepted, b.Open(a.Seal(Ping()), out _, out _));
        Assert.Equal(OpenOutcome.Forged, b.Open(oldKeyPacket, out _, out _)); // the retired key no longer opens anything
        Assert.Equal(1, ringB.Count);
        ringA.AssertInvariants();
    }

    [Fact]
    public void Keyring_refuses_operations_that_would_break_authentication()
    {
        var ring = new GossipKeyring(KeyA);
        Assert.Throws<KeyringException>(() => ring.Remove(KeyA));
        Assert.Throws<KeyringException>(() => ring.UseAsPrimary(KeyB));
        Assert.Throws<KeyringException>(() => ring.Remove(KeyB));
        Assert.Throws<ArgumentException>(() => ring.Install(new byte[8]));
    }

    [Fact]
    public void A_forged_death_claim_injected_into_a_cluster_is_dropped_and_never_spreads()
    {
        var cluster = TestCluster.Converged(5, seed: 11);
        var attacker = new GossipSecureChannel(4, new GossipKeyring(KeyB), 1_000_000, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(4) << 40 ^ (ulong)(1_000_000))));
        var lie = new GossipMessage(GossipMessageKind.Gossip);
        lie.Updates.Add(new MemberUpdate(3, MemberStatus.Dead, 50, 4));
        cluster.Inject(4, 1, attacker.Seal(lie));
        cluster.Inject(4, 2, attacker.Seal(lie));
        cluster.Run(5_000);

        Assert.Equal(1, cluster[1].Channel.DroppedForged);
        Assert.Equal(1, cluster[2].Channel.DroppedForged);
        Assert.True(cluster.AllSee(3, MemberStatus.Alive));
        Assert.Equal(0, cluster[3].Member.Incarnation); // nothing ever reached member 3 to refute
    }

    [Fact]
    public void A_replayed_recorded_suspicion_is_dropped_by_every_receiver()
    {
        var sender = new GossipSecureChannel(1, new GossipKeyring(KeyA), 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(1) << 40 ^ (ulong)(1))));
        var receiver = new GossipSecureChannel(2, new GossipKeyring(KeyA), 1, GossipSecureChannel.DeterministicNonces(new Keel.Core.DeterministicRandom((ulong)(2) << 40 ^ (ulong)(1))));
        var suspicion = new GossipMessage(GossipMessageKind.Gossip);
        suspicion.Updates.Add(new MemberUpdate(3, MemberStatus.Suspect, 0, 1));
        var recorded = sender.Seal(suspicion);
        Assert.Equal(OpenOutcome.Accepted, receiver.Open(recorded, out _, out _));
        for (var i = 0; i < 5; i++) Assert.Equal(OpenOutcome.Replayed, receiver.Open(recorded, out _, out _));
        Assert.Equal(5, receiver.DroppedReplayed);
    }
}
