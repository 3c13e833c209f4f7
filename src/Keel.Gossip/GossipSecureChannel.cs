using Keel.Core;
using Keel.Core.Encoding;

namespace Keel.Gossip;

/// <summary>What <see cref="GossipSecureChannel.Open"/> decided about a packet.</summary>
public enum OpenOutcome
{
    /// <summary>Authentic, fresh and well-formed: hand it to the core.</summary>
    Accepted,

    /// <summary>Too short, wrong magic or version, or the payload does not decode.</summary>
    Malformed,

    /// <summary>The tag does not verify under any installed key: forged, corrupted, or signed with a removed key.</summary>
    Forged,

    /// <summary>Authentic but its sequence number was seen before or is older than the replay window.</summary>
    Replayed,
}

/// <summary>
/// Seals and opens gossip packets: <c>magic u8 | version u8 | sender u64 | sequence u64 | message | tag[16]</c>, the
/// tag an HMAC-SHA256-128 (<see cref="GossipKeyring"/>) over everything before it. Each sender numbers its packets;
/// the receiver keeps, per authenticated sender, the highest sequence and a 64-packet sliding window (the anti-replay
/// window of IPsec, RFC 4303 section 3.4.3), so a recorded packet replayed later is dropped even when packets are
/// reordered. Unauthenticated or replayed packets are counted and never reach the core, so they are never spread (the
/// seed's "poisoned state from a buggy or malicious node"; memberlist encrypts with AES-GCM instead, and Solana signs
/// every gossiped value).
/// </summary>
/// <remarks>
/// The host must start <c>initialSequence</c> above anything sent before a restart (e.g. wall-clock microseconds at
/// start), or a restarted member's first packets look like replays. All members share the keyring, so a key holder can
/// claim another sender id: this defends against outsiders, not against a compromised member.
/// </remarks>
public sealed class GossipSecureChannel
{
    /// <summary>First byte of every packet.</summary>
    public const byte Magic = 0x4B; // 'K'

    /// <summary>Envelope format version.</summary>
    public const byte FormatVersion = 1;

    /// <summary>Envelope bytes around a message: header and tag.</summary>
    public const int OverheadBytes = HeaderBytes + GossipKeyring.TagBytes;

    /// <summary>Width of the replay window in packets.</summary>
    public const int ReplayWindow = 64;

    private const int HeaderBytes = 1 + 1 + 8 + 8;

    private readonly Dictionary<ulong, ReplayState> _replay = [];
    private ulong _nextSequence;

    /// <summary>Creates a channel for <paramref name="selfId"/>.</summary>
    public GossipSecureChannel(ulong selfId, GossipKeyring keyring, ulong initialSequence)
    {
        SelfId = selfId;
        Keyring = keyring;
        _nextSequence = initialSequence;
    }

    /// <summary>This member's id, written as sender.</summary>
    public ulong SelfId { get; }

    /// <summary>The keys in use (rotate through it).</summary>
    public GossipKeyring Keyring { get; }

    /// <summary>Packets accepted.</summary>
    public long Accepted { get; private set; }

    /// <summary>Packets dropped as malformed.</summary>
    public long DroppedMalformed { get; private set; }

    /// <summary>Packets dropped because they did not authenticate.</summary>
    public long DroppedForged { get; private set; }

    /// <summary>Authentic packets dropped as replays.</summary>
    public long DroppedReplayed { get; private set; }

    /// <summary>Encodes, numbers and signs <paramref name="message"/>.</summary>
    public byte[] Seal(GossipMessage message)
    {
        var packet = new byte[OverheadBytes + GossipCodec.SizeOf(message)];
        var w = new BinarySpanWriter(packet);
        w.U8(Magic);
        w.U8(FormatVersion);
        w.U64(SelfId);
        w.U64(_nextSequence++);
        var bodyLength = GossipCodec.Encode(message, packet.AsSpan(HeaderBytes));
        var signedLength = HeaderBytes + bodyLength;
        Keyring.Sign(packet.AsSpan(0, signedLength), packet.AsSpan(signedLength, GossipKeyring.TagBytes));
        return packet;
    }

    /// <summary>
    /// Authenticates, checks freshness and decodes a packet. Only <see cref="OpenOutcome.Accepted"/> yields a message;
    /// the replay window advances only for packets that authenticate and decode, so garbage cannot shift it.
    /// </summary>
    public OpenOutcome Open(ReadOnlySpan<byte> packet, out ulong sender, out GossipMessage? message)
    {
        sender = 0;
        message = null;
        if (packet.Length < OverheadBytes + GossipCodec.HeaderBytes || packet[0] != Magic || packet[1] != FormatVersion)
        {
            DroppedMalformed++;
            return OpenOutcome.Malformed;
        }
        var signed = packet[..^GossipKeyring.TagBytes];
        if (!Keyring.Verify(signed, packet[^GossipKeyring.TagBytes..]))
        {
            DroppedForged++;
            return OpenOutcome.Forged;
        }
        var r = new BinarySpanReader(signed);
        r.Skip(2);
        var from = r.U64();
        var sequence = r.U64();
        _replay.TryGetValue(from, out var state);
        if (!state.IsFresh(sequence))
        {
            DroppedReplayed++;
            return OpenOutcome.Replayed;
        }
        try
        {
            message = GossipCodec.Decode(signed[HeaderBytes..]);
        }
        catch (GossipFormatException)
        {
            DroppedMalformed++;
            return OpenOutcome.Malformed;
        }
        _replay[from] = state.Record(sequence);
        sender = from;
        Accepted++;
        return OpenOutcome.Accepted;
    }

    /// <summary>Checks the channel's invariants.</summary>
    public void AssertInvariants()
    {
        Keyring.AssertInvariants();
        foreach (var (_, state) in _replay)
            Invariant.Check(state.Seen && (state.Window & 1) == 1, "the highest sequence of a sender is marked seen");
    }

    private readonly record struct ReplayState(bool Seen, ulong Highest, ulong Window)
    {
        // Bit i of Window set = sequence (Highest - i) was accepted.
        public bool IsFresh(ulong sequence)
        {
            if (!Seen || sequence > Highest) return true;
            var age = Highest - sequence;
            return age < ReplayWindow && (Window & (1UL << (int)age)) == 0;
        }

        public ReplayState Record(ulong sequence)
        {
            if (!Seen) return new ReplayState(true, sequence, 1);
            if (sequence > Highest)
            {
                var shift = sequence - Highest;
                var window = shift >= ReplayWindow ? 0 : Window << (int)shift;
                return new ReplayState(true, sequence, window | 1);
            }
            return this with { Window = Window | (1UL << (int)(Highest - sequence)) };
        }
    }
}
