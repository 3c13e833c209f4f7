using Keel.Core;

namespace Keel.Heartbeat;

/// <summary>
/// Watches many peers, identified by <see cref="ulong"/> ids: feeds their heartbeats to one failure detector each and,
/// on every <see cref="Check(long)"/>, runs each peer's Healthy/Suspect/Failed state machine and returns the changes.
/// Integrates local health awareness: a check that runs late means this node itself was slow, which raises its
/// <see cref="LocalHealth"/> score (stretching every peer's tolerated pause), and a check that runs very late means
/// this node was paused, whose duration is then excused from every peer's silence so that the pause does not turn
/// into convictions of healthy peers (Lifeguard; Cassandra's <c>FailureDetector.interpret</c>).
/// </summary>
/// <remarks>
/// Peers are kept in arrays sorted by id: lookups are binary searches and checks visit peers in ascending id order,
/// so the order of reported transitions is deterministic (no hash-order dependence). Sans-I/O and not thread-safe:
/// the caller serializes calls and passes monotonic milliseconds.
/// </remarks>
public sealed class HeartbeatMonitor
{
    private readonly Func<ulong, IFailureDetector> _detectorFactory;
    private readonly List<ulong> _ids = new();
    private readonly List<PeerHealth> _peers = new();
    private readonly List<HealthTransition> _scratch = new();
    private long? _lastCheckMs;

    /// <summary>
    /// Creates a monitor; <paramref name="detectorFactory"/> makes each peer's detector (default: a
    /// <see cref="PhiAccrualFailureDetector"/> with <see cref="HeartbeatMonitorOptions.Detector"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">When a setting is out of range.</exception>
    public HeartbeatMonitor(HeartbeatMonitorOptions? options = null, Func<ulong, IFailureDetector>? detectorFactory = null)
    {
        Options = options ?? new HeartbeatMonitorOptions();
        Options.Validate();
        var detectorOptions = Options.Detector;
        _detectorFactory = detectorFactory ?? (_ => new PhiAccrualFailureDetector(detectorOptions));
        LocalHealth = new LocalHealth(Options.LocalHealth);
    }

    /// <summary>The settings in use.</summary>
    public HeartbeatMonitorOptions Options { get; }

    /// <summary>This node's own health; callers may also report their other late timers and missed deadlines to it.</summary>
    public LocalHealth LocalHealth { get; }

    /// <summary>How many peers are monitored.</summary>
    public int PeerCount => _ids.Count;

    /// <summary>The monitored peer ids in ascending order.</summary>
    public IReadOnlyList<ulong> Peers => _ids;

    /// <summary>How the most recent check's own timing was judged (Timely before the second check).</summary>
    public LocalTickOutcome LastCheckTiming { get; private set; }

    /// <summary>
    /// Starts monitoring <paramref name="peer"/> as if it had sent a heartbeat at <paramref name="nowMs"/>, so a peer
    /// that never sends one is still detected (Akka's "expected first heartbeat"). Returns false if already monitored.
    /// </summary>
    public bool AddPeer(ulong peer, long nowMs)
    {
        var index = _ids.BinarySearch(peer);
        if (index >= 0) return false;
        var health = Insert(~index, peer);
        health.OnHeartbeat(nowMs);
        return true;
    }

    /// <summary>Stops monitoring <paramref name="peer"/>; returns false if it was not monitored.</summary>
    public bool RemovePeer(ulong peer)
    {
        var index = _ids.BinarySearch(peer);
        if (index < 0) return false;
        _ids.RemoveAt(index);
        _peers.RemoveAt(index);
        return true;
    }

    /// <summary>Records a heartbeat from <paramref name="peer"/> (monitoring it from now on if it was unknown).</summary>
    public HeartbeatOutcome OnHeartbeat(ulong peer, long nowMs) => GetOrAdd(peer).OnHeartbeat(nowMs);

    /// <summary>Records a heartbeat carrying the sender's sequence number; replays of older sequence numbers are ignored.</summary>
    public HeartbeatOutcome OnHeartbeat(ulong peer, long nowMs, long sequence) => GetOrAdd(peer).OnHeartbeat(nowMs, sequence);

    /// <summary>The state of <paramref name="peer"/>. Unknown peers are not assumed healthy: asking for one throws.</summary>
    /// <exception cref="KeyNotFoundException">When the peer is not monitored.</exception>
    public HealthState StateOf(ulong peer) =>
        TryGetPeer(peer, out var health) ? health.State : throw new KeyNotFoundException($"Peer {peer} is not monitored.");

    /// <summary>The health record of <paramref name="peer"/>, if monitored.</summary>
    public bool TryGetPeer(ulong peer, out PeerHealth health)
    {
        var index = _ids.BinarySearch(peer);
        health = index >= 0 ? _peers[index] : null!;
        return index >= 0;
    }

    /// <summary>
    /// One check round at <paramref name="nowMs"/>: judges this node's own timeliness, then every peer in ascending id
    /// order; returns the state changes (an empty array, not allocated, when nothing changed).
    /// </summary>
    public IReadOnlyList<HealthTransition> Check(long nowMs)
    {
        _scratch.Clear();
        Check(nowMs, _scratch);
        return _scratch.Count == 0 ? Array.Empty<HealthTransition>() : _scratch.ToArray();
    }

    /// <summary>As <see cref="Check(long)"/>, appending the state changes to <paramref name="transitions"/> (allocation-free).</summary>
    public void Check(long nowMs, List<HealthTransition> transitions)
    {
        ArgumentNullException.ThrowIfNull(transitions);
        if (_lastCheckMs is { } lastMs)
        {
            if (nowMs < lastMs)
                throw new ArgumentOutOfRangeException(nameof(nowMs), nowMs, $"Check times must not go backwards (last check at {lastMs} ms); pass a monotonic clock.");
            LastCheckTiming = LocalHealth.OnTick(lastMs + Options.CheckIntervalMs, nowMs);
        }
        _lastCheckMs = nowMs;

        for (var i = 0; i < _peers.Count; i++)
        {
            if (_peers[i].Evaluate(nowMs, LocalHealth) is { } transition) transitions.Add(transition);
        }
    }

    /// <summary>Checks the monitor's, every peer's and the local health's invariants (O(peers x window): for tests and simulations).</summary>
    public void AssertInvariants()
    {
        Invariant.Check(_ids.Count == _peers.Count, "one health record per peer id");
        for (var i = 0; i < _ids.Count; i++)
        {
            Invariant.Check(i == 0 || _ids[i - 1] < _ids[i], "peer ids strictly ascending");
            Invariant.Check(_peers[i].Peer == _ids[i], "health record matches its id");
            _peers[i].AssertInvariants();
        }
        LocalHealth.AssertInvariants();
    }

    private PeerHealth GetOrAdd(ulong peer)
    {
        var index = _ids.BinarySearch(peer);
        return index >= 0 ? _peers[index] : Insert(~index, peer);
    }

    private PeerHealth Insert(int index, ulong peer)
    {
        var detector = _detectorFactory(peer) ?? throw new InvalidOperationException($"The detector factory returned null for peer {peer}.");
        var health = new PeerHealth(peer, detector, Options.Health);
        _ids.Insert(index, peer);
        _peers.Insert(index, health);
        return health;
    }
}
