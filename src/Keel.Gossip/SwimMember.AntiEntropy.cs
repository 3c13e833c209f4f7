namespace Keel.Gossip;

public sealed partial class SwimMember
{
    private long _nextPushPullMs;

    /// <summary>
    /// Order-independent hash of every (member, version) this node holds: equal hashes mean nothing to exchange, so a
    /// steady-state digest exchange costs one small message (scuttlebutt's digest, reduced to its root).
    /// </summary>
    public ulong RootHash()
    {
        ulong sum = 0;
        for (var s = 0; s < _version.Length; s++)
            if (_version[s] >= 0) sum = unchecked(sum + MixDigest(IdAt(s), _version[s]));
        return sum == 0 ? 1 : sum;
    }

    /// <summary>
    /// The bucket count the digest exchange uses for a view of <paramref name="knownCount"/> members: a power of two
    /// near N / 8, between 1 and 4,096, so a bucket holds about 8 members and a differing member costs its bucket's
    /// digest (about 8 x 16 bytes), not the whole view's.
    /// </summary>
    public static int BucketCountFor(int knownCount)
    {
        var target = Math.Clamp(knownCount / 8, 1, 4096);
        return (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)target);
    }

    /// <summary>The digest bucket of <paramref name="id"/> among <paramref name="bucketCount"/> (a power of two).</summary>
    public static int BucketOf(ulong id, int bucketCount) => (int)(MixDigest(id, 0) & (ulong)(bucketCount - 1));

    /// <summary>Per-bucket order-independent hashes of (member, version), as <see cref="RootHash"/> per bucket.</summary>
    public ulong[] BucketHashes(int bucketCount)
    {
        var hashes = new ulong[bucketCount];
        for (var s = 0; s < _version.Length; s++)
        {
            if (_version[s] < 0) continue;
            var id = IdAt(s);
            hashes[BucketOf(id, bucketCount)] += MixDigest(id, _version[s]);
        }
        return hashes;
    }

    private static ulong MixDigest(ulong id, long version)
    {
        var z = unchecked(id * 0x9E3779B97F4A7C15UL + (ulong)version);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }

    // memberlist pushPullScale: above 32 members the interval grows with log2(N / 32), so total sync load stays flat.
    private long PushPullIntervalMs()
    {
        if (Options.PushPullIntervalMs == 0) return long.MaxValue / 4;
        var n = Math.Max(1, LiveCount);
        var multiplier = n <= 32 ? 1 : (long)Math.Ceiling(Math.Log2(n) - Math.Log2(32)) + 1;
        var interval = Options.PushPullIntervalMs * multiplier;
        return interval / 2 + _random.NextInt64(interval); // uniform in [0.5, 1.5) x interval
    }

    // Digest mode is scuttlebutt with a two-level hash: A -> B: root hash and bucket hashes; B (if the roots differ) ->
    // A: its (member, version) digest of the differing buckets only; A -> B: the states B lacks in those buckets and
    // the ids A wants; B -> A: the wanted states. In steady state the exchange is one message; under churn it costs
    // about a bucket's digest per differing member instead of the whole view (memberlist's full push-pull sends every
    // state both ways: that is the full-state mode, kept as the baseline).
    private void RunAntiEntropy(long nowMs, List<OutboundMessage> outbox)
    {
        if (Options.PushPullIntervalMs == 0 || nowMs < _nextPushPullMs) return;
        _nextPushPullMs = nowMs + PushPullIntervalMs();
        Span<ulong> peer = stackalloc ulong[1];
        if (PickRandomPeers(peer, exclude: 0, aliveOnly: true) == 0) return;
        Counters.PushPullsStarted++;
        GossipMessage message;
        if (Options.AntiEntropy == AntiEntropyMode.Digest)
        {
            message = new GossipMessage(GossipMessageKind.PushPullDigest) { RootHash = RootHash() };
            message.BucketHashes.AddRange(BucketHashes(BucketCountFor(KnownCount)));
        }
        else
        {
            message = new GossipMessage(GossipMessageKind.PushPullFull);
            AppendAllStates(message.States);
        }
        outbox.Add(new OutboundMessage(peer[0], message));
    }

    private void OnPushPullDigest(ulong from, GossipMessage message, long nowMs, List<OutboundMessage> outbox)
    {
        if (!message.IsReply)
        {
            if (message.RootHash == RootHash())
            {
                Counters.PushPullsInSync++;
                return; // in sync: the whole exchange was one message
            }
            var bucketCount = message.BucketHashes.Count;
            if (bucketCount == 0 || !System.Numerics.BitOperations.IsPow2(bucketCount)) return; // malformed request
            var mine = BucketHashes(bucketCount);
            var reply = new GossipMessage(GossipMessageKind.PushPullDigest) { IsReply = true, BucketCount = bucketCount };
            for (var b = 0; b < bucketCount; b++)
                if (mine[b] != message.BucketHashes[b]) reply.Buckets.Add(b);
            if (reply.Buckets.Count == 0) return; // root collision; the next exchange will see it
            var differing = new bool[bucketCount];
            foreach (var b in reply.Buckets) differing[b] = true;
            for (var s = 0; s < _version.Length; s++)
                if (_version[s] >= 0 && differing[BucketOf(IdAt(s), bucketCount)]) reply.Digest.Add(new DigestEntry(IdAt(s), _version[s]));
            outbox.Add(new OutboundMessage(from, reply));
            return;
        }
        // The reply: their digest of the buckets that differ. Send what they lack, ask for what we lack.
        if (message.BucketCount == 0 || !System.Numerics.BitOperations.IsPow2(message.BucketCount)) return;
        var covered = new bool[message.BucketCount];
        foreach (var b in message.Buckets)
            if (b >= 0 && b < covered.Length) covered[b] = true;
        var theirs = new Dictionary<ulong, long>(message.Digest.Count);
        foreach (var d in message.Digest) theirs[d.Member] = d.Version;
        var delta = new GossipMessage(GossipMessageKind.PushPullDelta);
        for (var s = 0; s < _version.Length; s++)
        {
            if (_version[s] < 0 || !covered[BucketOf(IdAt(s), message.BucketCount)]) continue;
            if (!theirs.TryGetValue(IdAt(s), out var version) || version < _version[s]) delta.States.Add(StateOf(s));
        }
        foreach (var d in message.Digest)
        {
            var s = SlotOf(d.Member);
            if (s < 0 || _version[s] < d.Version) delta.Wants.Add(d.Member);
        }
        if (delta.States.Count > 0 || delta.Wants.Count > 0) outbox.Add(new OutboundMessage(from, delta));
    }

    private void OnPushPullDelta(ulong from, GossipMessage message, long nowMs, List<OutboundMessage> outbox)
    {
        foreach (var state in message.States) ApplyClaim(state, nowMs, relayedBy: from, fromAntiEntropy: true);
        if (message.IsReply || message.Wants.Count == 0) return;
        var reply = new GossipMessage(GossipMessageKind.PushPullDelta) { IsReply = true };
        foreach (var id in message.Wants)
            if (SlotOf(id) is var s and >= 0) reply.States.Add(StateOf(s));
        if (reply.States.Count > 0) outbox.Add(new OutboundMessage(from, reply));
    }

    private void OnPushPullFull(ulong from, GossipMessage message, long nowMs, List<OutboundMessage> outbox)
    {
        foreach (var state in message.States) ApplyClaim(state, nowMs, relayedBy: from, fromAntiEntropy: true);
        if (message.IsReply) return;
        var reply = new GossipMessage(GossipMessageKind.PushPullFull) { IsReply = true };
        AppendAllStates(reply.States);
        outbox.Add(new OutboundMessage(from, reply));
    }

    // A joiner announces itself (its own state only) and gets our whole view back, once.
    private void OnJoinRequest(ulong from, GossipMessage message, long nowMs, List<OutboundMessage> outbox)
    {
        foreach (var state in message.States)
            if (state.Member == from) ApplyClaim(state, nowMs, relayedBy: from, fromAntiEntropy: true); // a joiner speaks only for itself
        var reply = new GossipMessage(GossipMessageKind.JoinReply) { IsReply = true };
        AppendAllStates(reply.States);
        outbox.Add(new OutboundMessage(from, reply));
        Counters.JoinsServed++;
    }

    private void OnJoinReply(ulong from, GossipMessage message, long nowMs)
    {
        foreach (var state in message.States) ApplyClaim(state, nowMs, relayedBy: from, fromAntiEntropy: true);
    }

    private void AppendAllStates(List<MemberUpdate> into)
    {
        for (var s = 0; s < _version.Length; s++)
            if (_version[s] >= 0) into.Add(StateOf(s));
    }

    private MemberUpdate StateOf(int s)
    {
        var status = StatusAt(s);
        var from = status switch
        {
            MemberStatus.Suspect => SuspicionAt(s)!.Suspector,
            MemberStatus.Dead => SelfId,
            _ => IdAt(s),
        };
        return new(IdAt(s), status, IncarnationAt(s), from, status == MemberStatus.Alive ? TagsAt(s) : null);
    }
}
