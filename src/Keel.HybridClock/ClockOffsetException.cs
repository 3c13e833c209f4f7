namespace Keel.HybridClock;

/// <summary>
/// A remote timestamp was more than the configured max offset ahead of the local wall clock, so the clock refused to
/// adopt it. Either the sender's clock or ours is broken (NTP drift or a bad step); adopting the timestamp would move
/// every later local timestamp into the future and spread the error to every node we talk to.
/// </summary>
/// <remarks>
/// The message follows CockroachDB's <c>hlc.Clock.UpdateAndCheckMaxOffset</c>: "remote wall time is too far ahead
/// ... to be trustworthy". Like CockroachDB (and unlike YugabyteDB, which noticed skew only on a later
/// <c>Now()</c>), the check runs on the receive path, so the bad timestamp never enters local state.
/// </remarks>
public sealed class ClockOffsetException : Exception
{
    /// <summary>Creates the exception for a rejected remote timestamp.</summary>
    public ClockOffsetException(HybridTimestamp remote, long localWallMs, long maxOffsetMs)
        : base(BuildMessage(remote, localWallMs, maxOffsetMs))
    {
        Remote = remote;
        LocalWallMs = localWallMs;
        MaxOffsetMs = maxOffsetMs;
    }

    /// <summary>The remote timestamp that was rejected.</summary>
    public HybridTimestamp Remote { get; }

    /// <summary>The local wall-clock reading it was compared with (ms since the Unix epoch).</summary>
    public long LocalWallMs { get; }

    /// <summary>How far the remote physical time was ahead of the local wall clock, in milliseconds.</summary>
    public long OffsetMs => Remote.PhysicalMs - LocalWallMs;

    /// <summary>The configured max offset that <see cref="OffsetMs"/> exceeded.</summary>
    public long MaxOffsetMs { get; }

    private static string BuildMessage(HybridTimestamp remote, long localWallMs, long maxOffsetMs) =>
        $"remote wall time is too far ahead ({remote.PhysicalMs - localWallMs} ms, max offset {maxOffsetMs} ms) to be " +
        $"trustworthy: remote timestamp {remote}, local wall time {HybridTimestamp.FromRaw((ulong)localWallMs << HybridTimestamp.LogicalBits)}";
}
