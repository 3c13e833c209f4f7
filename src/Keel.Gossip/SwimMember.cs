using Keel.Core;
using Keel.Heartbeat;

namespace Keel.Gossip;

/// <summary>
/// An I/O-free SWIM member with Lifeguard (Das et al., "SWIM", DSN 2002; Dadgar et al., "Lifeguard", 2018; ported from
/// the behaviour of hashicorp/memberlist <c>state.go</c>, <c>suspicion.go</c>, <c>awareness.go</c>, <c>queue.go</c>).
/// Inputs are <see cref="Receive"/> (an authenticated, decoded message) and <see cref="Tick"/> (time passing); outputs
/// are messages appended to an outbox and <see cref="MembershipEvent"/>s. Time is a parameter, randomness comes from
/// the <see cref="DeterministicRandom"/> given, so a run is a pure function of its inputs.
/// </summary>
/// <remarks>
/// Split by concern: probing (<c>SwimMember.Probe.cs</c>), claims and refutation (<c>SwimMember.Claims.cs</c>),
/// dissemination (<c>SwimMember.Dissemination.cs</c>), anti-entropy (<c>SwimMember.AntiEntropy.cs</c>).
/// Not thread-safe; a host drives it from one loop.
/// </remarks>
public sealed partial class SwimMember
{
    private readonly DeterministicRandom _random;
    private readonly List<MemberRecord> _members = []; // insertion order: every iteration that decides anything uses it
    private readonly Dictionary<ulong, MemberRecord> _byId = [];
    private readonly List<MembershipEvent> _events = [];
    private readonly LocalHealth _health;
    private readonly PhiAccrualOptions _phiOptions;
    private long _lastTickMs;
    private bool _ticked;

    private sealed class MemberRecord
    {
        public required ulong Id;
        public MemberStatus Status;
        public long Incarnation;
        public MemberTags? Tags;
        public long StatusSinceMs;
        public Suspicion? Suspicion;
        public PhiAccrualFailureDetector? Phi; // created on first evidence: most of a large view never talks to us
        public double InboundTokens;
        public long InboundRefillMs;
        public long Version => IncarnationRules.Version(Incarnation, Status);
    }

    /// <summary>Creates member <paramref name="selfId"/> alive at incarnation 0, alone in its view.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range, or the id is 0 (reserved for "none").</exception>
    public SwimMember(ulong selfId, GossipOptions options, DeterministicRandom random, long nowMs, MemberTags? tags = null)
    {
        if (selfId == 0) throw new ArgumentOutOfRangeException(nameof(selfId), selfId, "member id 0 is reserved");
        options.Validate();
        Options = options;
        SelfId = selfId;
        _random = random;
        _health = new LocalHealth(options.LocalHealth);
        // A short window: thousands of peers each keep one, and a peer's ack rhythm changes as the cluster grows.
        _phiOptions = options.Phi ?? new PhiAccrualOptions { FirstHeartbeatEstimateMs = options.ProbeIntervalMs, AcceptableHeartbeatPauseMs = 3 * options.ProbeIntervalMs, MaxSampleSize = 32 };
        var self = AddRecord(selfId, MemberStatus.Alive, 0, tags, nowMs);
        _events.Clear(); // our own appearance is not news to us
        Broadcasts.Enqueue(new MemberUpdate(selfId, MemberStatus.Alive, 0, selfId, self.Tags));
        _nextProbeMs = nowMs + _random.NextInt64(options.ProbeIntervalMs); // desynchronise members started together
        _nextGossipMs = nowMs + JitteredGossipIntervalMs();
        _nextPushPullMs = nowMs + PushPullIntervalMs();
    }

    /// <summary>Settings.</summary>
    public GossipOptions Options { get; }

    /// <summary>This member's id.</summary>
    public ulong SelfId { get; }

    /// <summary>This member's incarnation; raised to refute suspicion and when its tags change.</summary>
    public long Incarnation => _byId[SelfId].Incarnation;

    /// <summary>This member's tags.</summary>
    public MemberTags? Tags => _byId[SelfId].Tags;

    /// <summary>True after <see cref="Leave"/>.</summary>
    public bool HasLeft { get; private set; }

    /// <summary>Lifeguard local health score (0 healthy .. 7).</summary>
    public int LocalHealthScore => _health.Score;

    /// <summary>Updates waiting to be piggybacked.</summary>
    public BroadcastQueue Broadcasts { get; } = new();

    /// <summary>Members known in any state, self included.</summary>
    public int KnownCount => _members.Count;

    /// <summary>Members alive or suspect, self included: the N of the log N formulas.</summary>
    public int LiveCount { get; private set; }

    /// <summary>Counters for experiments and operators.</summary>
    public GossipCounters Counters { get; } = new();

    /// <summary>Removes and returns the membership events since the last call.</summary>
    public List<MembershipEvent> DrainEvents()
    {
        var copy = new List<MembershipEvent>(_events);
        _events.Clear();
        return copy;
    }

    /// <summary>The member's state as seen here, or null when unknown.</summary>
    public MemberSnapshot? Find(ulong id, long nowMs) => _byId.TryGetValue(id, out var r) ? Snapshot(r, nowMs) : null;

    /// <summary>Every known member in the order this node learnt of them.</summary>
    public List<MemberSnapshot> Members(long nowMs) => _members.ConvertAll(r => Snapshot(r, nowMs));

    /// <summary>The health view of <paramref name="id"/>: phi-accrual plus SWIM state.</summary>
    public HealthState HealthOf(ulong id, long nowMs) => _byId.TryGetValue(id, out var r) ? Health(r, nowMs) : HealthState.Failed;

    /// <summary>Asks <paramref name="seedId"/> for its full state, announcing this member (memberlist's join push-pull).</summary>
    public void Join(ulong seedId, long nowMs, List<OutboundMessage> outbox)
    {
        if (seedId == SelfId) return;
        var message = new GossipMessage(GossipMessageKind.PushPullFull);
        AppendAllStates(message.States);
        outbox.Add(new OutboundMessage(seedId, message));
        Counters.PushPullsStarted++;
    }

    /// <summary>
    /// Adds members known from elsewhere (a seed list, a persisted view) as alive, without queuing broadcasts about
    /// them: they are not news to the cluster. Known members are left as they are.
    /// </summary>
    public void Bootstrap(IEnumerable<(ulong Id, long Incarnation, MemberTags? Tags)> members, long nowMs)
    {
        foreach (var (id, incarnation, tags) in members)
            if (id != 0 && !_byId.ContainsKey(id)) AddRecord(id, MemberStatus.Alive, incarnation, tags, nowMs);
    }

    /// <summary>Changes this member's tags: raises the incarnation so the new version supersedes the old everywhere.</summary>
    public void UpdateTags(MemberTags tags, long nowMs)
    {
        var self = _byId[SelfId];
        self.Tags = tags;
        self.Incarnation++;
        Broadcasts.Enqueue(new MemberUpdate(SelfId, MemberStatus.Alive, self.Incarnation, SelfId, tags));
    }

    /// <summary>Leaves gracefully: a left claim at a raised incarnation, which peers will not try to refute or probe.</summary>
    public void Leave(long nowMs)
    {
        if (HasLeft) return;
        HasLeft = true;
        var self = _byId[SelfId];
        SetStatus(self, MemberStatus.Left, self.Incarnation + 1, nowMs);
        Broadcasts.Enqueue(new MemberUpdate(SelfId, MemberStatus.Left, self.Incarnation, SelfId));
    }

    /// <summary>
    /// Handles one authenticated message from <paramref name="from"/>: rate limit, liveness evidence for phi,
    /// piggybacked claims, then the message itself. Replies are appended to <paramref name="outbox"/>.
    /// </summary>
    public void Receive(ulong from, GossipMessage message, long nowMs, List<OutboundMessage> outbox)
    {
        if (from == SelfId || from == 0) return;
        _byId.TryGetValue(from, out var sender);
        if (sender is not null && !TakeInboundToken(sender, nowMs))
        {
            Counters.DroppedRateLimited++;
            return;
        }
        Counters.MessagesReceived++;
        if (sender is not null && sender.Status is MemberStatus.Alive or MemberStatus.Suspect) RecordLiveness(sender, nowMs);
        foreach (var update in message.Updates) ApplyClaim(update, nowMs, relayedBy: from, fromAntiEntropy: false);
        SendCorrections(from, outbox);
        switch (message.Kind)
        {
            case GossipMessageKind.Ping: OnPing(from, message, nowMs, outbox); break;
            case GossipMessageKind.Ack: OnAck(message, nowMs, outbox); break;
            case GossipMessageKind.PingReq: OnPingReq(from, message, nowMs, outbox); break;
            case GossipMessageKind.Nack: OnNack(message); break;
            case GossipMessageKind.Gossip: break;
            case GossipMessageKind.PushPullDigest: OnPushPullDigest(from, message, nowMs, outbox); break;
            case GossipMessageKind.PushPullDelta: OnPushPullDelta(from, message, nowMs, outbox); break;
            case GossipMessageKind.PushPullFull: OnPushPullFull(from, message, nowMs, outbox); break;
        }
    }

    /// <summary>
    /// Advances time: pause detection, probe stages, suspicion expiry, gossip rounds and anti-entropy. Call it at
    /// least every <see cref="NextWakeMs"/>; calling more often is harmless.
    /// </summary>
    public void Tick(long nowMs, List<OutboundMessage> outbox)
    {
        if (_ticked && nowMs < _lastTickMs) nowMs = _lastTickMs; // time never runs backwards inside the core
        DetectLocalPause(nowMs);
        _lastTickMs = nowMs;
        _ticked = true;
        if (HasLeft)
        {
            RunGossipRound(nowMs, outbox); // keep spreading the leave for a while
            return;
        }
        AdvanceRelays(nowMs, outbox);
        AdvanceProbe(nowMs, outbox);
        ExpireSuspicions(nowMs);
        RunGossipRound(nowMs, outbox);
        RunAntiEntropy(nowMs, outbox);
    }

    /// <summary>The next time <see cref="Tick"/> has work to do.</summary>
    public long NextWakeMs
    {
        get
        {
            var next = Math.Min(_nextGossipMs, HasLeft ? long.MaxValue : _nextProbeMs);
            if (Options.PushPullIntervalMs > 0) next = Math.Min(next, _nextPushPullMs);
            if (_probe is { } p) next = Math.Min(next, p.IndirectSent ? p.PeriodEndMs : p.TimeoutAtMs);
            foreach (var relay in _relays) next = Math.Min(next, relay.DeadlineMs);
            foreach (var r in _members) if (r.Suspicion is { } s) next = Math.Min(next, s.DeadlineMs);
            return next;
        }
    }

    /// <summary>Checks the member's invariants (tests call it after every step).</summary>
    public void AssertInvariants()
    {
        _health.AssertInvariants();
        Broadcasts.AssertInvariants();
        Invariant.Check(_members.Count == _byId.Count, "the member list and index agree");
        var live = 0;
        foreach (var r in _members)
        {
            Invariant.Check(_byId.TryGetValue(r.Id, out var indexed) && ReferenceEquals(indexed, r), "every listed member is indexed");
            Invariant.Check(r.Incarnation >= 0, "incarnations are non-negative");
            Invariant.Check((r.Suspicion is not null) == (r.Status == MemberStatus.Suspect), "a suspicion timer exists exactly for suspects");
            if (r.Status is MemberStatus.Alive or MemberStatus.Suspect) live++;
        }
        Invariant.Check(live == LiveCount, "the live count matches the member states");
        var self = _byId[SelfId];
        Invariant.Check(HasLeft ? self.Status == MemberStatus.Left : self.Status == MemberStatus.Alive, "a member never believes itself suspect or dead");
        Invariant.Check(_probe is null || _probe.Target != SelfId, "a member never probes itself");
        var seen = new HashSet<ulong>();
        foreach (var id in _probeOrder) Invariant.Check(seen.Add(id) && id != SelfId, "the probe order has each peer once and never self");
    }

    private MemberSnapshot Snapshot(MemberRecord r, long nowMs) =>
        new(r.Id, r.Status, r.Incarnation, r.Tags, Health(r, nowMs), r.Phi?.Phi(nowMs) ?? 0, r.StatusSinceMs, r.Suspicion?.DeadlineMs);

    private HealthState Health(MemberRecord r, long nowMs)
    {
        if (r.Status is MemberStatus.Dead or MemberStatus.Left) return HealthState.Failed;
        if (r.Status == MemberStatus.Suspect) return HealthState.Suspect;
        if (r.Phi is { } phi && !phi.IsAvailable(nowMs)) return HealthState.Suspect;
        return HealthState.Healthy;
    }

    private bool TakeInboundToken(MemberRecord r, long nowMs)
    {
        var capacity = (double)Options.MaxMessagesPerSecondPerSender;
        if (r.InboundRefillMs == 0 && r.InboundTokens == 0) { r.InboundTokens = capacity; r.InboundRefillMs = nowMs; }
        var elapsedMs = nowMs - r.InboundRefillMs;
        if (elapsedMs > 0)
        {
            r.InboundTokens = Math.Min(capacity, r.InboundTokens + elapsedMs * capacity / 1000.0);
            r.InboundRefillMs = nowMs;
        }
        if (r.InboundTokens < 1) return false;
        r.InboundTokens -= 1;
        return true;
    }

    private void RecordLiveness(MemberRecord r, long nowMs)
    {
        r.Phi ??= new PhiAccrualFailureDetector(_phiOptions);
        r.Phi.Heartbeat(nowMs);
    }

    private MemberRecord AddRecord(ulong id, MemberStatus status, long incarnation, MemberTags? tags, long nowMs)
    {
        var r = new MemberRecord { Id = id, Status = status, Incarnation = incarnation, Tags = tags, StatusSinceMs = nowMs, };
        _members.Add(r);
        _byId.Add(id, r);
        if (status is MemberStatus.Alive or MemberStatus.Suspect) LiveCount++;
        if (id != SelfId && status == MemberStatus.Alive) InsertIntoProbeOrder(id);
        _events.Add(new MembershipEvent(id, null, status, incarnation, nowMs));
        return r;
    }

    private void SetStatus(MemberRecord r, MemberStatus status, long incarnation, long nowMs)
    {
        var wasLive = r.Status is MemberStatus.Alive or MemberStatus.Suspect;
        var isLive = status is MemberStatus.Alive or MemberStatus.Suspect;
        var changed = r.Status != status;
        var old = r.Status;
        var oldIncarnation = r.Incarnation;
        r.Status = status;
        r.Incarnation = incarnation;
        if (status != MemberStatus.Suspect && r.Suspicion is not null)
        {
            r.Suspicion = null;
            _suspects.Remove(r);
        }
        if (wasLive != isLive) LiveCount += isLive ? 1 : -1;
        if (!changed)
        {
            // An alive member with a new incarnation (refuted, or changed its tags) is news too.
            if (status == MemberStatus.Alive && incarnation != oldIncarnation) _events.Add(new MembershipEvent(r.Id, old, status, incarnation, nowMs));
            return;
        }
        r.StatusSinceMs = nowMs;
        if (r.Id != SelfId)
        {
            if (!isLive) RemoveFromProbeOrder(r.Id);
            else if (!wasLive) InsertIntoProbeOrder(r.Id);
            if (old is MemberStatus.Dead or MemberStatus.Left && isLive) r.Phi = null;
        }
        _events.Add(new MembershipEvent(r.Id, old, status, incarnation, nowMs));
    }
}

/// <summary>Counters of one member, for experiments and operators.</summary>
public sealed class GossipCounters
{
    /// <summary>Messages accepted by <see cref="SwimMember.Receive"/>.</summary>
    public long MessagesReceived { get; internal set; }

    /// <summary>Messages dropped by the per-sender inbound rate limit.</summary>
    public long DroppedRateLimited { get; internal set; }

    /// <summary>Probes started.</summary>
    public long ProbesStarted { get; internal set; }

    /// <summary>Probes that ended without any ack.</summary>
    public long ProbesFailed { get; internal set; }

    /// <summary>Indirect probe requests sent.</summary>
    public long PingReqsSent { get; internal set; }

    /// <summary>Nacks received (Lifeguard).</summary>
    public long NacksReceived { get; internal set; }

    /// <summary>Times this member refuted a suspicion or death claim about itself.</summary>
    public long Refutations { get; internal set; }

    /// <summary>Members this member declared dead itself (its suspicion timed out).</summary>
    public long DeathsDeclared { get; internal set; }

    /// <summary>Gossip rounds skipped by the outbound byte budget.</summary>
    public long GossipRoundsThrottled { get; internal set; }

    /// <summary>Local pauses detected (the tick came far too late).</summary>
    public long LocalPausesDetected { get; internal set; }

    /// <summary>Anti-entropy exchanges started.</summary>
    public long PushPullsStarted { get; internal set; }

    /// <summary>Direct answers to senders of stale accusations (carrying the newer alive claim).</summary>
    public long CorrectionsSent { get; internal set; }

    /// <summary>Claims rejected as stale or about unknown members.</summary>
    public long StaleClaimsIgnored { get; internal set; }
}
