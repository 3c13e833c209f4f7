using Keel.Core;
using Keel.Core.Encoding;

namespace Keel.Gossip;

/// <summary>What <see cref="GossipSecureChannel.Open"/> decided about a packet; every value but Accepted is a drop reason.</summary>
public enum OpenOutcome
{
    /// <summary>Authentic, fresh and well-formed: hand it to the core.</summary>
    Accepted,

    /// <summary>Wrong magic, an unknown envelope version, or an authentic payload that does not decode.</summary>
    Malformed,

    /// <summary>Does not decrypt under any installed key: a wrong or removed key, or a changed byte (GCM tag mismatch).</summary>
    Forged,

    /// <summary>Authentic but its sequence number was seen before or is older than the replay window.</summary>
    Replayed,

    /// <summary>Shorter than the smallest encrypted packet (cut in transit, or not a packet at all).</summary>
    Truncated,

    /// <summary>Not encrypted: a bare gossip message or the signed-only envelope of Keel before encryption (version 1).</summary>
    Plaintext,
}

/// <summary>Fills a span with unpredictable bytes: the randomness seam for nonces (the host passes <c>RandomNumberGenerator.Fill</c>).</summary>
public delegate void NonceSource(Span<byte> destination);

/// <summary>
/// Seals and opens gossip packets with AES-256-GCM, memberlist's format (<c>security.go</c>: version byte, 12-byte random
/// nonce, ciphertext, 16-byte tag): <c>magic u8 | version u8 = 2 | nonce[12] | AES-GCM(sender u64 | sequence u64 |
/// message) | tag[16]</c>, the header (magic, version) as associated data, encrypted under the keyring's primary key.
/// Each nonce is a 4-byte prefix drawn once per channel from a <see cref="NonceSource"/> seam followed by the packet's
/// 8-byte sequence number, so one channel never repeats a nonce (the sequence only grows), and two channels under one
/// key collide only if their random prefixes match and their sequence ranges overlap (each starts from its start
/// time in microseconds and grows by the packets sent). Each sender numbers its packets; the
/// receiver keeps, per authenticated sender, the highest sequence and a 64-packet sliding window (IPsec's anti-replay
/// window, RFC 4303 section 3.4.3), so a recorded packet replayed later is dropped even when packets are reordered.
/// Packets that do not decrypt, are replayed, truncated, malformed or plaintext are counted per reason and never reach
/// the core, so they are never spread. <see cref="Open"/> never throws.
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

    /// <summary>Envelope format version: 2 is AES-256-GCM (1 was HMAC-signed plaintext, now dropped as <see cref="OpenOutcome.Plaintext"/>).</summary>
    public const byte FormatVersion = 2;

    /// <summary>The signed-only envelope of earlier versions.</summary>
    public const byte PlaintextFormatVersion = 1;

    /// <summary>Envelope bytes around a message: header, nonce, sender and sequence, tag.</summary>
    public const int OverheadBytes = HeaderBytes + GossipKeyring.NonceBytes + InnerHeaderBytes + GossipKeyring.TagBytes;

    /// <summary>Width of the replay window in packets.</summary>
    public const int ReplayWindow = 64;

    /// <summary>Most senders whose replay state is kept; beyond it the sender with the lowest sequence is forgotten (bounded memory under a flood of authentic senders).</summary>
    public const int MaxTrackedSenders = 65_536;

    private const int HeaderBytes = 2;
    private const int InnerHeaderBytes = 8 + 8;

    private readonly Dictionary<ulong, ReplayState> _replay = [];
    private readonly byte[] _noncePrefix = new byte[4];
    private readonly long[] _dropped = new long[Enum.GetValues<OpenOutcome>().Length];
    private ulong _nextSequence;

    /// <summary>Creates a channel for <paramref name="selfId"/>.</summary>
    /// <param name="selfId">This member's id, written (encrypted) as the sender.</param>
    /// <param name="keyring">The keys; the channel encrypts with its primary, decrypts with any.</param>
    /// <param name="initialSequence">The first sequence number (above anything sent before a restart).</param>
    /// <param name="nonces">Source of the random 4-byte nonce prefix (read once).</param>
    public GossipSecureChannel(ulong selfId, GossipKeyring keyring, ulong initialSequence, NonceSource nonces)
    {
        ArgumentNullException.ThrowIfNull(keyring);
        ArgumentNullException.ThrowIfNull(nonces);
        SelfId = selfId;
        Keyring = keyring;
        nonces(_noncePrefix);
        _nextSequence = initialSequence;
    }

    /// <summary>A nonce source for deterministic tests and simulations (not for production: predictable).</summary>
    public static NonceSource DeterministicNonces(DeterministicRandom random)
    {
        ArgumentNullException.ThrowIfNull(random);
        return destination =>
        {
            for (var i = 0; i < destination.Length; i++) destination[i] = (byte)random.NextUInt64();
        };
    }

    /// <summary>This member's id, written as sender.</summary>
    public ulong SelfId { get; }

    /// <summary>The keys in use (rotate through it).</summary>
    public GossipKeyring Keyring { get; }

    /// <summary>Packets accepted.</summary>
    public long Accepted { get; private set; }

    /// <summary>Packets dropped for <paramref name="reason"/>.</summary>
    public long Dropped(OpenOutcome reason) => _dropped[(int)reason];

    /// <summary>Packets dropped as malformed.</summary>
    public long DroppedMalformed => Dropped(OpenOutcome.Malformed);

    /// <summary>Packets dropped because they did not decrypt under any installed key.</summary>
    public long DroppedForged => Dropped(OpenOutcome.Forged);

    /// <summary>Authentic packets dropped as replays.</summary>
    public long DroppedReplayed => Dropped(OpenOutcome.Replayed);

    /// <summary>Packets dropped as too short.</summary>
    public long DroppedTruncated => Dropped(OpenOutcome.Truncated);

    /// <summary>Packets dropped because they were not encrypted.</summary>
    public long DroppedPlaintext => Dropped(OpenOutcome.Plaintext);

    /// <summary>Encodes, numbers and encrypts <paramref name="message"/> under the primary key.</summary>
    public byte[] Seal(GossipMessage message)
    {
        var bodyLength = GossipCodec.SizeOf(message);
        var packet = new byte[OverheadBytes + bodyLength];
        packet[0] = Magic;
        packet[1] = FormatVersion;
        var nonce = packet.AsSpan(HeaderBytes, GossipKeyring.NonceBytes);
        var sequence = _nextSequence++;
        _noncePrefix.CopyTo(nonce);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(nonce[4..], sequence);
        var plaintextLength = InnerHeaderBytes + bodyLength;
        var plaintext = new byte[plaintextLength];
        var w = new BinarySpanWriter(plaintext);
        w.U64(SelfId);
        w.U64(sequence);
        GossipCodec.Encode(message, plaintext.AsSpan(InnerHeaderBytes));
        var cipherStart = HeaderBytes + GossipKeyring.NonceBytes;
        Keyring.Encrypt(nonce, plaintext, packet.AsSpan(cipherStart, plaintextLength), packet.AsSpan(cipherStart + plaintextLength, GossipKeyring.TagBytes), packet.AsSpan(0, HeaderBytes));
        return packet;
    }

    /// <summary>
    /// Decrypts, checks freshness and decodes a packet. Only <see cref="OpenOutcome.Accepted"/> yields a message; the
    /// replay window advances only for packets that decrypt and decode, so garbage cannot shift it. Never throws.
    /// </summary>
    public OpenOutcome Open(ReadOnlySpan<byte> packet, out ulong sender, out GossipMessage? message)
    {
        sender = 0;
        message = null;
        var outcome = OpenCore(packet, out var from, out var decoded);
        if (outcome != OpenOutcome.Accepted)
        {
            _dropped[(int)outcome]++;
            return outcome;
        }
        sender = from;
        message = decoded;
        Accepted++;
        return outcome;
    }

    private OpenOutcome OpenCore(ReadOnlySpan<byte> packet, out ulong from, out GossipMessage? message)
    {
        from = 0;
        message = null;
        if (packet.Length == 0) return OpenOutcome.Truncated;
        if (packet[0] != Magic) return LooksLikeBareMessage(packet) ? OpenOutcome.Plaintext : OpenOutcome.Malformed;
        if (packet.Length < 2) return OpenOutcome.Truncated;
        if (packet[1] == PlaintextFormatVersion) return OpenOutcome.Plaintext;
        if (packet[1] != FormatVersion) return OpenOutcome.Malformed;
        if (packet.Length < OverheadBytes + GossipCodec.HeaderBytes) return OpenOutcome.Truncated;
        var nonce = packet.Slice(HeaderBytes, GossipKeyring.NonceBytes);
        var ciphertext = packet[(HeaderBytes + GossipKeyring.NonceBytes)..^GossipKeyring.TagBytes];
        var plaintext = new byte[ciphertext.Length];
        if (!Keyring.TryDecrypt(nonce, ciphertext, packet[^GossipKeyring.TagBytes..], packet[..HeaderBytes], plaintext)) return OpenOutcome.Forged;
        var r = new BinarySpanReader(plaintext);
        from = r.U64();
        var sequence = r.U64();
        _replay.TryGetValue(from, out var state);
        if (!state.IsFresh(sequence)) return OpenOutcome.Replayed;
        try
        {
            message = GossipCodec.Decode(plaintext.AsSpan(InnerHeaderBytes));
        }
        catch (GossipFormatException)
        {
            return OpenOutcome.Malformed;
        }
        if (!_replay.ContainsKey(from) && _replay.Count >= MaxTrackedSenders) ForgetOneSender();
        _replay[from] = state.Record(sequence);
        return OpenOutcome.Accepted;
    }

    // A gossip message without an envelope starts with a message kind (1..10); classify it as plaintext only if it
    // decodes, so random bytes count as malformed.
    private static bool LooksLikeBareMessage(ReadOnlySpan<byte> packet)
    {
        if (packet[0] is < (byte)GossipMessageKind.Ping or > (byte)GossipMessageKind.JoinReply) return false;
        try
        {
            GossipCodec.Decode(packet);
            return true;
        }
        catch (GossipFormatException)
        {
            return false;
        }
    }

    // Bounded state: forget the sender with the lowest highest-sequence (the one heard from longest ago, roughly). Its
    // replays could be accepted again only if it is forgotten, which takes MaxTrackedSenders other authentic senders.
    private void ForgetOneSender()
    {
        ulong oldest = 0;
        var lowest = ulong.MaxValue;
        foreach (var (id, state) in _replay)
        {
            if (state.Highest >= lowest) continue;
            lowest = state.Highest;
            oldest = id;
        }
        _replay.Remove(oldest);
    }

    /// <summary>Checks the channel's invariants.</summary>
    public void AssertInvariants()
    {
        Keyring.AssertInvariants();
        Invariant.Check(_replay.Count <= MaxTrackedSenders, "the replay state is bounded");
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
