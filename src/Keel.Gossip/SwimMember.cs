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
    private readonly MemberDirectory _directory;
    // The view, indexed by directory index (compact: 16 bytes per member, so 10,000 members x 10,000 views fit in a
    // simulation). _version[i] is IncarnationRules.Version(incarnation, status), or -1 for a member this node does not
    // know. Iteration in index order decides everything that iterates, never a hash order.
    private long[] _version = [];
    private long[] _sinceMs = [];
    private readonly Dictionary<int, PeerState> _peers = []; // only members that talk to us or are suspected
    private readonly Dictionary<int, MemberTags> _tags = []; // only members whose tags we know
    private readonly List<MembershipEvent> _events = [];
    private readonly LocalHealth _health;
    private readonly PhiAccrualOptions _phiOptions;
    private readonly int _self;
    private long _lastTickMs;
    private bool _ticked;

    private sealed class PeerState
    {
        public Suspicion? Suspicion;
        public PhiAccrualFailureDetector? Phi; // created on first evidence: most of a large view never talks to us
        public double InboundTokens = double.NaN;
        public long InboundRefillMs;
    }

    /// <summary>Creates member <paramref name="selfId"/> alive at incarnation 0, alone in its view.</summary>
    /// <param name="selfId">This member's id (not 0).</param>
    /// <param name="options">Settings.</param>
    /// <param name="random">Source of every random choice.</param>
    /// <param name="nowMs">Current time.</param>
    /// <param name="tags">This member's tags.</param>
    /// <param name="directory">Id interning table; pass one shared instance to many members simulated in one process
    /// (see <see cref="MemberDirectory"/>); null gives this member its own.</param>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range, or the id is 0 (reserved for "none").</exception>
    public SwimMember(ulong selfId, GossipOptions options, DeterministicRandom random, long nowMs, MemberTags? tags = null, MemberDirectory? directory = null)
    {
        if (selfId == 0) throw new ArgumentOutOfRangeException(nameof(selfId), selfId, "member id 0 is reserved");
        options.Validate();
        Options = options;
        SelfId = selfId;
        _random = random;
        _directory = directory ?? new MemberDirectory();
        _health = new LocalHealth(options.LocalHealth);
        // A short window: thousands of peers each keep one, and a peer's ack rhythm changes as the cluster grows.
        _phiOptions = options.Phi ?? new PhiAccrualOptions { FirstHeartbeatEstimateMs = options.ProbeIntervalMs, AcceptableHeartbeatPauseMs = 3 * options.ProbeIntervalMs, MaxSampleSize = 32 };
        _self = AddRecord(selfId, MemberStatus.Alive, 0, tags, nowMs, recordEvent: false);
        Broadcasts.Enqueue(new MemberUpdate(selfId, MemberStatus.Alive, 0, selfId, tags));
        _nextProbeMs = nowMs + _random.NextInt64(options.ProbeIntervalMs); // desynchronise members started together
        _nextGossipMs = nowMs + JitteredGossipIntervalMs();
        _nextPushPullMs = nowMs + PushPullIntervalMs();
    }

    /// <summary>Settings.</summary>
    public GossipOptions Options { get; }

    /// <summary>This member's id.</summary>
    public ulong SelfId { get; }

    /// <summary>This member's incarnation; raised to refute suspicion and when its tags change.</summary>
    public long Incarnation => IncarnationAt(_self);

    /// <summary>This member's tags.</summary>
    public MemberTags? Tags => TagsAt(_self);

    /// <summary>True after <see cref="Leave"/>.</summary>
    public bool HasLeft { get; private set; }

    /// <summary>Lifeguard local health score (0 healthy .. 7).</summary>
    public int LocalHealthScore => _health.Score;

    /// <summary>Updates waiting to be piggybacked.</summary>
    public BroadcastQueue Broadcasts { get; } = new();

    /// <summary>Members known in any state, self included.</summary>
    public int KnownCount { get; private set; }

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
    public MemberSnapshot? Find(ulong id, long nowMs) => SlotOf(id) is var s and >= 0 ? Snapshot(s, nowMs) : null;

    /// <summary>The member's status as seen here, or null when unknown (cheap: no snapshot).</summary>
    public MemberStatus? StatusOf(ulong id) => SlotOf(id) is var s and >= 0 ? StatusAt(s) : null;

    /// <summary>Every known member, in the order their ids were interned.</summary>
    public List<MemberSnapshot> Members(long nowMs)
    {
        var list = new List<MemberSnapshot>(KnownCount);
        for (var s = 0; s < _version.Length; s++)
            if (_version[s] >= 0) list.Add(Snapshot(s, nowMs));
        return list;
    }

    /// <summary>The health view of <paramref name="id"/>: phi-accrual plus SWIM state.</summary>
    public HealthState HealthOf(ulong id, long nowMs) => SlotOf(id) is var s and >= 0 ? Health(s, nowMs) : HealthState.Failed;

    /// <summary>
    /// Asks <paramref name="seedId"/> for its full state, announcing this member. The joiner pulls the whole view once,
    /// from one seed (memberlist's join push-pull); this is join cost, separate from the periodic anti-entropy, which
    /// afterwards exchanges digests and deltas only.
    /// </summary>
    public void Join(ulong seedId, long nowMs, List<OutboundMessage> outbox)
    {
        if (seedId == SelfId || seedId == 0) return;
        var message = new GossipMessage(GossipMessageKind.JoinRequest);
        message.States.Add(StateOf(_self));
        outbox.Add(new OutboundMessage(seedId, message));
        Counters.JoinsStarted++;
    }

    /// <summary>
    /// Adds members known from elsewhere (a seed list, a persisted view) as alive, without queuing broadcasts or
    /// raising events about them: they are not news. Known members are left as they are.
    /// </summary>
    public void Bootstrap(IEnumerable<(ulong Id, long Incarnation, MemberTags? Tags)> members, long nowMs)
    {
        var added = false;
        foreach (var (id, incarnation, tags) in members)
        {
            if (id == 0 || SlotOf(id) >= 0) continue;
            AddRecord(id, MemberStatus.Alive, incarnation, tags, nowMs, recordEvent: false, intoProbeOrder: false);
            _probeOrder.Add(_directory.IndexOf(id));
            added = true;
        }
        if (!added) return;
        // One shuffle instead of a random insertion per member (that is O(N) each: O(N^2) for a large bootstrap).
        _random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_probeOrder));
        _probeIndex = 0;
    }

    /// <summary>Changes this member's tags: raises the incarnation so the new version supersedes the old everywhere.</summary>
    public void UpdateTags(MemberTags tags, long nowMs)
    {
        _tags[_self] = tags;
        SetVersion(_self, MemberStatus.Alive, Incarnation + 1);
        Broadcasts.Enqueue(new MemberUpdate(SelfId, MemberStatus.Alive, Incarnation, SelfId, tags));
    }

    /// <summary>Leaves gracefully: a left claim at a raised incarnation, which peers will not try to refute or probe.</summary>
    public void Leave(long nowMs)
    {
        if (HasLeft) return;
        HasLeft = true;
        SetStatus(_self, MemberStatus.Left, Incarnation + 1, nowMs);
        Broadcasts.Enqueue(new MemberUpdate(SelfId, MemberStatus.Left, Incarnation, SelfId));
    }

    /// <summary>
    /// Handles one authenticated message from <paramref name="from"/>: rate limit, liveness evidence for phi,
    /// piggybacked claims, then the message itself. Replies are appended to <paramref name="outbox"/>.
    /// </summary>
    public void Receive(ulong from, GossipMessage message, long nowMs, List<OutboundMessage> outbox)
    {
        if (from == SelfId || from == 0) return;
        var sender = SlotOf(from);
        if (sender >= 0 && !TakeInboundToken(sender, nowMs))
        {
            Counters.DroppedRateLimited++;
            return;
        }
        Counters.MessagesReceived++;
        if (sender >= 0 && IsLive(StatusAt(sender))) RecordLiveness(sender, nowMs);
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
            case GossipMessageKind.JoinRequest: OnJoinRequest(from, message, nowMs, outbox); break;
            case GossipMessageKind.JoinReply: OnJoinReply(from, message, nowMs); break;
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
            foreach (var s in _suspects) next = Math.Min(next, _peers[s].Suspicion!.DeadlineMs);
            return next;
        }
    }

    /// <summary>Checks the member's invariants (tests call it after every step).</summary>
    public void AssertInvariants()
    {
        _health.AssertInvariants();
        Broadcasts.AssertInvariants();
        Invariant.Check(_version.Length == _sinceMs.Length, "the view arrays have one length");
        var live = 0;
        var known = 0;
        for (var s = 0; s < _version.Length; s++)
        {
            if (_version[s] < 0) continue;
            Invariant.Check(s < _directory.Count, "every known member is interned");
            known++;
            var status = StatusAt(s);
            var suspected = _peers.TryGetValue(s, out var peer) && peer.Suspicion is not null;
            Invariant.Check(suspected == (status == MemberStatus.Suspect), "a suspicion timer exists exactly for suspects");
            Invariant.Check(suspected == _suspects.Contains(s), "the suspect list holds exactly the suspects");
            if (IsLive(status)) live++;
        }
        Invariant.Check(live == LiveCount, "the live count matches the member states");
        Invariant.Check(known == KnownCount, "the known count matches the view");
        Invariant.Check(HasLeft ? StatusAt(_self) == MemberStatus.Left : StatusAt(_self) == MemberStatus.Alive, "a member never believes itself suspect or dead");
        Invariant.Check(_probe is null || _probe.Target != SelfId, "a member never probes itself");
        var seen = new HashSet<int>();
        foreach (var s in _probeOrder)
            Invariant.Check(seen.Add(s) && s != _self && StatusAt(s) is MemberStatus.Alive or MemberStatus.Suspect, "the probe order has each live peer once and never self");
    }

    private static bool IsLive(MemberStatus status) => status is MemberStatus.Alive or MemberStatus.Suspect;

    private int SlotOf(ulong id)
    {
        var s = _directory.IndexOf(id);
        return s >= 0 && s < _version.Length && _version[s] >= 0 ? s : -1;
    }

    private ulong IdAt(int slot) => _directory.IdAt(slot);

    private MemberStatus StatusAt(int slot) => (MemberStatus)(_version[slot] & 3);

    private long IncarnationAt(int slot) => _version[slot] >> 2;

    private MemberTags? TagsAt(int slot) => _tags.TryGetValue(slot, out var t) ? t : null;

    private PeerState Peer(int slot)
    {
        if (!_peers.TryGetValue(slot, out var peer)) _peers.Add(slot, peer = new PeerState());
        return peer;
    }

    private Suspicion? SuspicionAt(int slot) => _peers.TryGetValue(slot, out var p) ? p.Suspicion : null;

    private void SetVersion(int slot, MemberStatus status, long incarnation) => _version[slot] = IncarnationRules.Version(incarnation, status);

    private MemberSnapshot Snapshot(int s, long nowMs)
    {
        _peers.TryGetValue(s, out var peer);
        return new(IdAt(s), StatusAt(s), IncarnationAt(s), TagsAt(s), Health(s, nowMs), peer?.Phi?.Phi(nowMs) ?? 0, _sinceMs[s], peer?.Suspicion?.DeadlineMs);
    }

    private HealthState Health(int s, long nowMs)
    {
        var status = StatusAt(s);
        if (status is MemberStatus.Dead or MemberStatus.Left) return HealthState.Failed;
        if (status == MemberStatus.Suspect) return HealthState.Suspect;
        if (_peers.TryGetValue(s, out var peer) && peer.Phi is { } phi && !phi.IsAvailable(nowMs)) return HealthState.Suspect;
        return HealthState.Healthy;
    }

    private bool TakeInboundToken(int s, long nowMs)
    {
        var r = Peer(s);
        var capacity = (double)Options.MaxMessagesPerSecondPerSender;
        if (double.IsNaN(r.InboundTokens)) { r.InboundTokens = capacity; r.InboundRefillMs = nowMs; }
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

    private void RecordLiveness(int s, long nowMs)
    {
        var peer = Peer(s);
        peer.Phi ??= new PhiAccrualFailureDetector(_phiOptions);
        peer.Phi.Heartbeat(nowMs);
    }

    private int AddRecord(ulong id, MemberStatus status, long incarnation, MemberTags? tags, long nowMs, bool recordEvent = true, bool intoProbeOrder = true)
    {
        var s = _directory.Intern(id);
        if (s >= _version.Length)
        {
            var length = Math.Max(Math.Max(16, _version.Length * 2), _directory.Count);
            var oldLength = _version.Length;
            Array.Resize(ref _version, length);
            Array.Resize(ref _sinceMs, length);
            _version.AsSpan(oldLength).Fill(-1);
        }
        SetVersion(s, status, incarnation);
        _sinceMs[s] = nowMs;
        if (tags is not null) _tags[s] = tags;
        KnownCount++;
        if (IsLive(status)) LiveCount++;
        if (intoProbeOrder && id != SelfId && status == MemberStatus.Alive) InsertIntoProbeOrder(s);
        if (recordEvent) _events.Add(new MembershipEvent(id, null, status, incarnation, nowMs));
        return s;
    }

    private void SetStatus(int s, MemberStatus status, long incarnation, long nowMs)
    {
        var old = StatusAt(s);
        var oldIncarnation = IncarnationAt(s);
        var wasLive = IsLive(old);
        var isLive = IsLive(status);
        SetVersion(s, status, incarnation);
        if (status != MemberStatus.Suspect && _peers.TryGetValue(s, out var peer) && peer.Suspicion is not null)
        {
            peer.Suspicion = null;
            _suspects.Remove(s);
        }
        if (wasLive != isLive) LiveCount += isLive ? 1 : -1;
        if (old == status)
        {
            // An alive member with a new incarnation (refuted, or changed its tags) is news too.
            if (status == MemberStatus.Alive && incarnation != oldIncarnation) _events.Add(new MembershipEvent(IdAt(s), old, status, incarnation, nowMs));
            return;
        }
        _sinceMs[s] = nowMs;
        if (s != _self)
        {
            if (!isLive) RemoveFromProbeOrder(s);
            else if (!wasLive) InsertIntoProbeOrder(s);
            if (old is MemberStatus.Dead or MemberStatus.Left && isLive && _peers.TryGetValue(s, out var p)) p.Phi = null;
        }
        _events.Add(new MembershipEvent(IdAt(s), old, status, incarnation, nowMs));
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

    /// <summary>Anti-entropy exchanges that ended at the root hash (nothing to exchange).</summary>
    public long PushPullsInSync { get; internal set; }

    /// <summary>Join requests sent (one full-state pull from one seed each).</summary>
    public long JoinsStarted { get; internal set; }

    /// <summary>Join requests answered with this member's full state.</summary>
    public long JoinsServed { get; internal set; }

    /// <summary>Times this member, after detecting its own pause, re-announced itself alive at a raised incarnation.</summary>
    public long PauseRefutations { get; internal set; }

    /// <summary>Direct answers to senders of stale accusations (carrying the newer alive claim).</summary>
    public long CorrectionsSent { get; internal set; }

    /// <summary>Claims rejected as stale or about unknown members.</summary>
    public long StaleClaimsIgnored { get; internal set; }
}
