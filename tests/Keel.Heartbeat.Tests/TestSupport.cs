using Keel.Heartbeat;

namespace Keel.Heartbeat.Tests;

/// <summary>Helpers shared by the heartbeat tests.</summary>
internal static class TestSupport
{
    /// <summary>Akka's literal formula, kept to check that the overflow-free rewrite computes the same numbers.</summary>
    public static double AkkaPhi(double timeDiffMs, double meanMs, double stdDeviationMs)
    {
        var y = (timeDiffMs - meanMs) / stdDeviationMs;
        var e = Math.Exp(-y * (1.5976 + 0.070566 * y * y));
        return timeDiffMs > meanMs ? -Math.Log10(e / (1.0 + e)) : -Math.Log10(1.0 - 1.0 / (1.0 + e));
    }

    /// <summary>Feeds heartbeats every <paramref name="intervalMs"/> from <paramref name="startMs"/>; returns the last arrival time.</summary>
    public static long FeedSteady(IFailureDetector detector, long startMs, long intervalMs, int count)
    {
        var t = startMs;
        for (var i = 0; i < count; i++)
        {
            t = startMs + i * intervalMs;
            detector.Heartbeat(t);
        }
        return t;
    }

    /// <summary>The first silence (1 ms resolution) after the last heartbeat at which phi reaches <paramref name="phi"/>.</summary>
    public static long SilenceUntilPhi(PhiAccrualFailureDetector detector, double phi)
    {
        var last = detector.LastHeartbeatMs!.Value;
        for (long dt = 0; dt < 1_000_000; dt++)
            if (detector.Phi(last + dt) >= phi) return dt;
        throw new InvalidOperationException("phi never reached");
    }
}

/// <summary>A detector whose suspicion the test sets directly, to drive <see cref="PeerHealth"/>'s state machine precisely.</summary>
internal sealed class ScriptedDetector : IFailureDetector
{
    public double Level { get; set; }
    public double LastMultiplier { get; private set; } = 1;
    public long LastEvaluatedAtMs { get; private set; }
    public double Threshold { get; init; } = 8;
    public bool IsMonitoring => LastHeartbeatMs.HasValue;
    public long? LastHeartbeatMs { get; set; }
    public HeartbeatOutcome Heartbeat(long nowMs) { LastHeartbeatMs = nowMs; return HeartbeatOutcome.Accepted; }
    public HeartbeatOutcome Heartbeat(long nowMs, long sequence) => Heartbeat(nowMs);
    public double Suspicion(long nowMs, double timeoutMultiplier = 1)
    {
        LastMultiplier = timeoutMultiplier;
        LastEvaluatedAtMs = nowMs;
        return Level;
    }
    public bool IsAvailable(long nowMs) => Level < Threshold;
    public void Reset() => LastHeartbeatMs = null;
    public void AssertInvariants() { }
}
