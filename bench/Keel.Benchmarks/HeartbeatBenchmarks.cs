using BenchmarkDotNet.Attributes;
using Keel.Heartbeat;

namespace Keel.Benchmarks;

/// <summary>
/// Hot paths of the heartbeat library: phi evaluation and heartbeat recording on a full 1000-interval window
/// (both must be O(1) and allocation-free; phi under 50 ns), and one monitor check over 100 peers.
/// </summary>
[MemoryDiagnoser]
public class HeartbeatBenchmarks
{
    private PhiAccrualFailureDetector _detector = null!;
    private PhiAccrualFailureDetector _recording = null!;
    private HeartbeatMonitor _monitor = null!;
    private readonly List<HealthTransition> _transitions = new();
    private long _lastMs;
    private long _nowMs;
    private long _checkMs;

    [GlobalSetup]
    public void Setup()
    {
        _detector = new PhiAccrualFailureDetector();
        _recording = new PhiAccrualFailureDetector();
        for (var i = 0; i < 2000; i++)
        {
            // Jittered 1 s intervals so the deviation is realistic and the window is full (every add evicts).
            _lastMs = i * 1000L + (i * 7919 % 200);
            _detector.Heartbeat(_lastMs);
            _recording.Heartbeat(_lastMs);
        }
        _nowMs = _lastMs;
        _lastRecordingMs = _lastMs;

        _monitor = new HeartbeatMonitor();
        for (ulong peer = 0; peer < 100; peer++)
            for (var i = 0; i < 50; i++) _monitor.OnHeartbeat(peer, i * 1000L);
        _checkMs = 49_000;
    }

    /// <summary>
    /// The anchor: the bare logistic approximation phi evaluates (one exp and one log10), with no state. Phi's ratio
    /// against it is the cost of the detector's bookkeeping.
    /// </summary>
    [Benchmark(Baseline = true)]
    public double Anchor_ExpAndLog()
    {
        var y = (((_nowMs++ - _lastMs) & 4095) - 2000) / 300.0;
        var e = Math.Exp(-y * (1.5976 + 0.070566 * y * y));
        return -Math.Log10(e / (1 + e));
    }

    /// <summary>Phi at a silence that cycles over 0..4 s (both branches of the formula).</summary>
    [Benchmark]
    public double Phi()
    {
        var silence = (_nowMs++ - _lastMs) & 4095;
        return _detector.Phi(_lastMs + silence);
    }

    /// <summary>Records one heartbeat 1 s after the previous one: availability check, eviction, statistics refresh.</summary>
    [Benchmark]
    public HeartbeatOutcome Heartbeat()
    {
        _lastRecordingMs += 1000;
        return _recording.Heartbeat(_lastRecordingMs);
    }

    private long _lastRecordingMs;

    /// <summary>One check round of a monitor with 100 peers (no transitions: all healthy).</summary>
    [Benchmark]
    public int MonitorCheck100Peers()
    {
        _transitions.Clear();
        _monitor.Check(_checkMs, _transitions);
        return _transitions.Count;
    }
}
