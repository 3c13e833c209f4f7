namespace Keel.Gossip;

public sealed partial class SwimMember
{
    private readonly List<int> _probeOrder = []; // slots // live peers; shuffled each pass (SWIM section 4.3: round-robin probe target selection)
    private readonly List<Relay> _relays = [];
    private int _probeIndex;
    private ProbeState? _probe;
    private long _nextProbeMs;
    private uint _nextProbeSequence = 1;
    private long _promisedWakeMs = long.MaxValue;

    private sealed class ProbeState
    {
        public required ulong Target;
        public required uint Sequence;
        public required long TimeoutAtMs;
        public required long PeriodEndMs;
        public bool IndirectSent;
        public int ExpectedNacks;
        public int NacksReceived;
    }

    private sealed class Relay
    {
        public required ulong Origin;
        public required uint OriginSequence;
        public required uint Sequence;
        public required long DeadlineMs;
    }

    private long ScaledMs(long ms) => Options.LifeguardEnabled ? _health.ScaleTimeout(ms) : ms;

    // A tick far later than promised means this process was frozen (GC, CPU starvation, VM pause). Lifeguard's insight:
    // what failed was us, so nothing observed during the freeze is evidence against peers.
    private void DetectLocalPause(long nowMs)
    {
        var promised = _promisedWakeMs;
        _promisedWakeMs = long.MaxValue;
        if (!Options.LifeguardEnabled || !_ticked || promised == long.MaxValue) return;
        var latenessMs = nowMs - Math.Max(promised, _lastTickMs);
        if (latenessMs < Options.LocalHealth.PauseThresholdMs) return;
        Counters.LocalPausesDetected++;
        _health.OnMissedDeadline();
        _probe = null; // its timeout expired while we slept: no verdict either way
        _nextProbeMs = Math.Max(_nextProbeMs, nowMs + _random.NextInt64(Options.ProbeIntervalMs));
        foreach (var r in _suspects)
            if (SuspicionAt(r) is { } s) s.GraceMs += latenessMs; // refutations may be sitting unread in our socket
        // Whatever peers concluded about us while we were frozen is stale: re-announce ourselves at a raised
        // incarnation now instead of waiting to overhear the accusation, so the refutation starts spreading at once
        // (a paused member is otherwise convicted if its suspectors' timeouts end before the rumour reaches it).
        if (!HasLeft)
        {
            SetVersion(_self, MemberStatus.Alive, Incarnation + 1);
            Counters.PauseRefutations++;
            Broadcasts.Enqueue(new MemberUpdate(SelfId, MemberStatus.Alive, Incarnation, SelfId, Tags));
        }
    }

    private void AdvanceProbe(long nowMs, List<OutboundMessage> outbox)
    {
        if (_probe is { } p)
        {
            if (!p.IndirectSent && nowMs >= p.TimeoutAtMs) SendIndirectProbes(p, outbox);
            if (nowMs >= p.PeriodEndMs)
            {
                _probe = null;
                OnProbeFailed(p, nowMs);
            }
        }
        if (_probe is null && nowMs >= _nextProbeMs) StartProbe(nowMs, outbox);
        _promisedWakeMs = NextWakeMs;
    }

    private void StartProbe(long nowMs, List<OutboundMessage> outbox)
    {
        var intervalMs = ScaledMs(Options.ProbeIntervalMs);
        _nextProbeMs = nowMs + intervalMs;
        if (_probeOrder.Count == 0) return;
        if (_probeIndex >= _probeOrder.Count)
        {
            _random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_probeOrder));
            _probeIndex = 0;
        }
        var target = IdAt(_probeOrder[_probeIndex++]);
        var p = new ProbeState
        {
            Target = target,
            Sequence = _nextProbeSequence++,
            TimeoutAtMs = nowMs + ScaledMs(Options.ProbeTimeoutMs),
            PeriodEndMs = nowMs + intervalMs,
        };
        _probe = p;
        Counters.ProbesStarted++;
        var ping = new GossipMessage(GossipMessageKind.Ping) { ProbeSequence = p.Sequence, Target = target };
        AttachBroadcasts(ping);
        outbox.Add(new OutboundMessage(target, ping));
    }

    private void SendIndirectProbes(ProbeState p, List<OutboundMessage> outbox)
    {
        p.IndirectSent = true;
        Span<ulong> chosen = stackalloc ulong[Math.Min(Options.IndirectProbes, 16)];
        var count = PickRandomPeers(chosen, exclude: p.Target, aliveOnly: true);
        for (var i = 0; i < count; i++)
        {
            var request = new GossipMessage(GossipMessageKind.PingReq) { ProbeSequence = p.Sequence, Target = p.Target };
            AttachBroadcasts(request);
            outbox.Add(new OutboundMessage(chosen[i], request));
            Counters.PingReqsSent++;
        }
        p.ExpectedNacks = Options.LifeguardEnabled ? count : 0;
    }

    private void OnProbeFailed(ProbeState p, long nowMs)
    {
        Counters.ProbesFailed++;
        if (Options.LifeguardEnabled)
        {
            // memberlist probeNode: missing nacks mean our own network or CPU may be the problem.
            var delta = p.ExpectedNacks > 0 ? Math.Max(0, p.ExpectedNacks - p.NacksReceived) : 1;
            for (var i = 0; i < delta; i++) _health.OnMissedDeadline();
        }
        var r = SlotOf(p.Target);
        if (r >= 0 && IsLive(StatusAt(r)))
            ApplyClaim(new MemberUpdate(p.Target, MemberStatus.Suspect, IncarnationAt(r), SelfId), nowMs, relayedBy: SelfId, fromAntiEntropy: false);
    }

    private void OnPing(ulong from, GossipMessage ping, long nowMs, List<OutboundMessage> outbox)
    {
        if (ping.Target != 0 && ping.Target != SelfId) return; // meant for a member that used to live at this address
        var ack = new GossipMessage(GossipMessageKind.Ack) { ProbeSequence = ping.ProbeSequence };
        AttachBroadcasts(ack);
        outbox.Add(new OutboundMessage(from, ack));
    }

    private void OnAck(GossipMessage ack, long nowMs, List<OutboundMessage> outbox)
    {
        if (_probe is { } p && p.Sequence == ack.ProbeSequence)
        {
            _probe = null;
            if (Options.LifeguardEnabled) _health.OnTimelyRound();
            var target = SlotOf(p.Target);
            if (target >= 0 && IsLive(StatusAt(target))) RecordLiveness(target, nowMs);
            return;
        }
        for (var i = 0; i < _relays.Count; i++)
        {
            var relay = _relays[i];
            if (relay.Sequence != ack.ProbeSequence) continue;
            _relays.RemoveAt(i);
            var forwarded = new GossipMessage(GossipMessageKind.Ack) { ProbeSequence = relay.OriginSequence };
            AttachBroadcasts(forwarded);
            outbox.Add(new OutboundMessage(relay.Origin, forwarded));
            return;
        }
    }

    private void OnPingReq(ulong from, GossipMessage request, long nowMs, List<OutboundMessage> outbox)
    {
        if (request.Target == 0 || request.Target == SelfId || _relays.Count >= 64) return; // bounded: a ping-req flood cannot grow state
        var relay = new Relay
        {
            Origin = from,
            OriginSequence = request.ProbeSequence,
            Sequence = _nextProbeSequence++,
            // Nack a little before the origin gives up, so the nack can still arrive (memberlist uses the probe timeout).
            DeadlineMs = nowMs + Options.ProbeTimeoutMs * 4 / 5,
        };
        _relays.Add(relay);
        var ping = new GossipMessage(GossipMessageKind.Ping) { ProbeSequence = relay.Sequence, Target = request.Target };
        AttachBroadcasts(ping);
        outbox.Add(new OutboundMessage(request.Target, ping));
    }

    private void OnNack(GossipMessage nack)
    {
        if (_probe is { } p && p.Sequence == nack.ProbeSequence && p.NacksReceived < p.ExpectedNacks)
        {
            p.NacksReceived++;
            Counters.NacksReceived++;
        }
    }

    private void AdvanceRelays(long nowMs, List<OutboundMessage> outbox)
    {
        for (var i = _relays.Count - 1; i >= 0; i--)
        {
            var relay = _relays[i];
            if (nowMs < relay.DeadlineMs) continue;
            _relays.RemoveAt(i);
            if (!Options.LifeguardEnabled) continue; // plain SWIM has no nacks
            var nack = new GossipMessage(GossipMessageKind.Nack) { ProbeSequence = relay.OriginSequence };
            outbox.Add(new OutboundMessage(relay.Origin, nack));
        }
    }

    private void InsertIntoProbeOrder(int slot)
    {
        // A random position, as memberlist does, so a new member is probed within one pass and the order stays random.
        var at = _random.NextInt32(_probeOrder.Count + 1);
        _probeOrder.Insert(at, slot);
        if (at < _probeIndex) _probeIndex++;
    }

    // Up to destination.Length distinct random live peers other than `exclude`, drawn from the probe order in O(k).
    private int PickRandomPeers(Span<ulong> destination, ulong exclude, bool aliveOnly)
    {
        var count = 0;
        var n = _probeOrder.Count;
        for (var attempt = 0; attempt < destination.Length * 4 && count < destination.Length && n > 0; attempt++)
        {
            var slot = _probeOrder[_random.NextInt32(n)];
            var id = IdAt(slot);
            if (id == exclude || destination[..count].Contains(id)) continue;
            if (aliveOnly && StatusAt(slot) != MemberStatus.Alive) continue;
            destination[count++] = id;
        }
        return count;
    }

    private void RemoveFromProbeOrder(int slot)
    {
        var at = _probeOrder.IndexOf(slot);
        if (at < 0) return;
        _probeOrder.RemoveAt(at);
        if (at < _probeIndex) _probeIndex--;
    }
}
