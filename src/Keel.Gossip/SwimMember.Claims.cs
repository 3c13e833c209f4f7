namespace Keel.Gossip;

public sealed partial class SwimMember
{
    private readonly List<int> _suspects = [];
    private readonly List<MemberUpdate> _corrections = [];

    /// <summary>The suspicion timeout bounds for the current cluster size (Lifeguard; plain SWIM uses the minimum).</summary>
    public (long MinMs, long MaxMs) SuspicionTimeoutBoundsMs()
    {
        var n = Math.Max(1, LiveCount);
        var minMs = Math.Max(Options.MinSuspicionTimeoutMs, (long)(Options.SuspicionMultiplier * Math.Max(1.0, Math.Log10(n)) * Options.ProbeIntervalMs));
        return Options.LifeguardEnabled ? (minMs, minMs * Options.SuspicionMaxTimeoutMultiplier) : (minMs, minMs);
    }

    // Applies one claim about one member. `relayedBy` is the member we heard it from; anti-entropy claims are
    // second-hand, so a "dead" from a push-pull only makes us suspect (memberlist mergeState), giving the member its
    // own chance to refute instead of letting one confused node kill it everywhere.
    private void ApplyClaim(MemberUpdate claim, long nowMs, ulong relayedBy, bool fromAntiEntropy)
    {
        if (fromAntiEntropy && claim.Status == MemberStatus.Dead)
            claim = claim with { Status = MemberStatus.Suspect, From = relayedBy };
        if (claim.Member == SelfId)
        {
            ApplyClaimAboutSelf(claim, nowMs, fromAntiEntropy);
            return;
        }
        if (claim.Member == 0) return;
        var r = SlotOf(claim.Member);
        if (r < 0)
        {
            // Only the member itself can introduce it (an alive claim); rumours about strangers are dropped.
            if (claim.Status != MemberStatus.Alive)
            {
                Counters.StaleClaimsIgnored++;
                return;
            }
            AddRecord(claim.Member, MemberStatus.Alive, claim.Incarnation, claim.Tags, nowMs);
            Broadcasts.Enqueue(claim);
            return;
        }
        var status = StatusAt(r);
        var incarnation = IncarnationAt(r);
        if (claim.Status == MemberStatus.Suspect && status == MemberStatus.Suspect && claim.Incarnation == incarnation)
        {
            if (Options.LifeguardEnabled && SuspicionAt(r)!.Confirm(claim.From)) Broadcasts.Enqueue(claim);
            return;
        }
        if (!IncarnationRules.Supersedes(claim.Incarnation, claim.Status, incarnation, status))
        {
            Counters.StaleClaimsIgnored++;
            // The sender still accuses a member we know refuted: tell it directly. Retransmissions are bounded, so a
            // member that missed every copy of a refutation would otherwise convict on its own (measured: the lone
            // suspector missing the refutation was the cause of the false deaths under pauses).
            if (!fromAntiEntropy && status == MemberStatus.Alive && claim.Status != MemberStatus.Alive && relayedBy != SelfId)
                _corrections.Add(StateOf(r));
            return;
        }
        SetStatus(r, claim.Status, claim.Incarnation, nowMs);
        switch (claim.Status)
        {
            case MemberStatus.Alive:
                if (claim.Tags is not null) _tags[r] = claim.Tags;
                break;
            case MemberStatus.Suspect:
                StartSuspicion(r, claim.From, nowMs);
                break;
        }
        Broadcasts.Enqueue(claim.Status == MemberStatus.Alive ? claim with { Tags = TagsAt(r) } : claim);
    }

    private void StartSuspicion(int r, ulong suspector, long nowMs)
    {
        var (minMs, maxMs) = SuspicionTimeoutBoundsMs();
        // Lifeguard: with few members there are few possible confirmers (memberlist: k = min(k, n - 2)).
        var k = Options.LifeguardEnabled ? Math.Max(1, Math.Min(Options.SuspicionConfirmations, LiveCount - 2)) : 1;
        var peer = Peer(r);
        if (peer.Suspicion is null) _suspects.Add(r);
        peer.Suspicion = new Suspicion(suspector, nowMs, minMs, maxMs, k);
    }

    private void ApplyClaimAboutSelf(MemberUpdate claim, long nowMs, bool fromAntiEntropy)
    {
        if (HasLeft) return;
        var refute = claim.Status == MemberStatus.Alive
            ? claim.Incarnation > Incarnation // someone holds a newer "us", e.g. from before a restart
            : claim.Incarnation >= Incarnation; // suspect, dead or left at our incarnation: deny it
        if (!refute)
        {
            // An old accusation still circulating: answer its sender with our current incarnation.
            if (claim.Status != MemberStatus.Alive && !fromAntiEntropy) _corrections.Add(StateOf(_self));
            return;
        }
        // SWIM 4.2: the accused raises its incarnation; the new alive claim supersedes the accusation everywhere.
        SetVersion(_self, MemberStatus.Alive, claim.Incarnation + 1);
        Counters.Refutations++;
        if (Options.LifeguardEnabled) _health.OnMissedDeadline(); // memberlist refute: being suspected hints we are slow
        Broadcasts.Enqueue(new MemberUpdate(SelfId, MemberStatus.Alive, Incarnation, SelfId, Tags));
    }

    // Sends the corrections collected while applying one message back to its sender, in one packet at most.
    private void SendCorrections(ulong to, List<OutboundMessage> outbox)
    {
        if (_corrections.Count == 0) return;
        var message = new GossipMessage(GossipMessageKind.Gossip);
        var budget = Options.MaxMessageBytes - GossipSecureChannel.OverheadBytes - GossipCodec.SizeOf(message) - 4;
        foreach (var c in _corrections)
        {
            var size = GossipCodec.SizeOf(c);
            if (size > budget) break;
            if (message.Updates.Exists(u => u.Member == c.Member)) continue;
            message.Updates.Add(c);
            budget -= size;
        }
        _corrections.Clear();
        Counters.CorrectionsSent++;
        outbox.Add(new OutboundMessage(to, message));
    }

    private void ExpireSuspicions(long nowMs)
    {
        for (var i = _suspects.Count - 1; i >= 0; i--)
        {
            if (i >= _suspects.Count) continue;
            var r = _suspects[i];
            if (nowMs < SuspicionAt(r)!.DeadlineMs) continue;
            Counters.DeathsDeclared++;
            var claim = new MemberUpdate(IdAt(r), MemberStatus.Dead, IncarnationAt(r), SelfId);
            SetStatus(r, MemberStatus.Dead, IncarnationAt(r), nowMs);
            Broadcasts.Enqueue(claim);
        }
    }
}
