namespace Keel.Gossip;

public sealed partial class SwimMember
{
    private long _nextGossipMs;
    private double _gossipTokens = double.NaN;
    private long _gossipTokensRefillMs;

    /// <summary>The current retransmission limit: lambda x ceil(log10(N + 1)).</summary>
    public int RetransmitLimit => BroadcastQueue.RetransmitLimit(Options.RetransmitMultiplier, Math.Max(1, LiveCount));

    // Fills the rest of a packet with queued updates (memberlist piggybacks on every probe message, SWIM section 4.1).
    private void AttachBroadcasts(GossipMessage message)
    {
        var budget = Options.MaxMessageBytes - GossipSecureChannel.OverheadBytes - GossipCodec.SizeOf(message) - 4;
        Broadcasts.Take(budget, RetransmitLimit, message.Updates);
    }

    private long JitteredGossipIntervalMs()
    {
        var jitter = (long)(Options.GossipIntervalMs * Options.GossipJitterFraction);
        return Math.Max(1, Options.GossipIntervalMs + _random.NextInt64(-jitter, jitter + 1));
    }

    private void RunGossipRound(long nowMs, List<OutboundMessage> outbox)
    {
        if (nowMs < _nextGossipMs) return;
        _nextGossipMs = nowMs + JitteredGossipIntervalMs();
        if (Broadcasts.Count == 0) return;
        RefillGossipTokens(nowMs);
        Span<ulong> targets = stackalloc ulong[Math.Min(Options.GossipFanout, 32)];
        var count = PickRandomPeers(targets, exclude: 0, aliveOnly: false);
        for (var i = 0; i < count && Broadcasts.Count > 0; i++)
        {
            // Token bucket on our own gossip bytes: under churn a member spreads updates at a bounded rate instead of
            // joining a storm (the seed's 40%-of-bandwidth incident); unsent updates wait in the queue.
            if (_gossipTokens < Options.MaxMessageBytes)
            {
                Counters.GossipRoundsThrottled++;
                break;
            }
            var message = new GossipMessage(GossipMessageKind.Gossip);
            AttachBroadcasts(message);
            if (message.Updates.Count == 0) break;
            _gossipTokens -= GossipSecureChannel.OverheadBytes + GossipCodec.SizeOf(message);
            outbox.Add(new OutboundMessage(targets[i], message));
        }
    }

    private void RefillGossipTokens(long nowMs)
    {
        var capacity = (double)Options.MaxGossipBytesPerSecond;
        if (double.IsNaN(_gossipTokens))
        {
            _gossipTokens = capacity;
            _gossipTokensRefillMs = nowMs;
            return;
        }
        _gossipTokens = Math.Min(capacity, _gossipTokens + (nowMs - _gossipTokensRefillMs) * capacity / 1000.0);
        _gossipTokensRefillMs = nowMs;
    }
}
