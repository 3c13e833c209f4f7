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
        foreach (var r in _members) sum = unchecked(sum + MixDigest(r.Id, r.Version));
        return sum == 0 ? 1 : sum;
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
        if (message.Digest.Count == 0)
        {
            if (message.RootHash == RootHash()) return; // in sync: the whole exchange was one small message
            var reply = new GossipMessage(GossipMessageKind.PushPullDigest) { IsReply = true, RootHash = RootHash() };
            foreach (var r in _members) reply.Digest.Add(new DigestEntry(r.Id, r.Version));
            outbox.Add(new OutboundMessage(from, reply));
            return;
        }
        var theirs = new Dictionary<ulong, long>(message.Digest.Count);
        foreach (var d in message.Digest) theirs[d.Member] = d.Version;
        var delta = new GossipMessage(GossipMessageKind.PushPullDelta);
        foreach (var r in _members)
            if (!theirs.TryGetValue(r.Id, out var version) || version < r.Version) delta.States.Add(StateOf(r));
        foreach (var d in message.Digest)
            if (!_byId.TryGetValue(d.Member, out var mine) || mine.Version < d.Version) delta.Wants.Add(d.Member);
        if (delta.States.Count > 0 || delta.Wants.Count > 0) outbox.Add(new OutboundMessage(from, delta));
    }

    private void OnPushPullDelta(ulong from, GossipMessage message, long nowMs, List<OutboundMessage> outbox)
    {
        foreach (var state in message.States) ApplyClaim(state, nowMs, relayedBy: from, fromAntiEntropy: true);
        if (message.IsReply || message.Wants.Count == 0) return;
        var reply = new GossipMessage(GossipMessageKind.PushPullDelta) { IsReply = true };
        foreach (var id in message.Wants)
            if (_byId.TryGetValue(id, out var r)) reply.States.Add(StateOf(r));
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

    private void AppendAllStates(List<MemberUpdate> into)
    {
        foreach (var r in _members) into.Add(StateOf(r));
    }

    private MemberUpdate StateOf(MemberRecord r) => new(
        r.Id, r.Status, r.Incarnation,
        r.Status == MemberStatus.Suspect ? r.Suspicion!.Suspector : r.Status == MemberStatus.Dead ? SelfId : r.Id,
        r.Status == MemberStatus.Alive ? r.Tags : null);
}
