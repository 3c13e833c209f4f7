namespace Keel.Heartbeat;

/// <summary>Settings of <see cref="HeartbeatMonitor"/>: the detector, the suspicion counter and local health awareness.</summary>
public sealed record HeartbeatMonitorOptions
{
    /// <summary>How often the caller runs <see cref="HeartbeatMonitor.Check(long)"/>; a check arriving much later than this reveals that this node was slow or paused.</summary>
    public long CheckIntervalMs { get; init; } = 1000;

    /// <summary>Settings of the phi accrual detector created for each peer (unless a detector factory is given).</summary>
    public PhiAccrualOptions Detector { get; init; } = new();

    /// <summary>Settings of each peer's suspicion counter.</summary>
    public HealthOptions Health { get; init; } = new();

    /// <summary>Settings of this node's own health awareness (Lifeguard).</summary>
    public LocalHealthOptions LocalHealth { get; init; } = new();

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first setting that is out of range.</summary>
    public void Validate()
    {
        if (CheckIntervalMs < 1 || CheckIntervalMs > HeartbeatHistory.MaxIntervalMs)
            throw new ArgumentOutOfRangeException(nameof(CheckIntervalMs), CheckIntervalMs, $"The check interval must be between 1 and {HeartbeatHistory.MaxIntervalMs} ms.");
        ArgumentNullException.ThrowIfNull(Detector);
        ArgumentNullException.ThrowIfNull(Health);
        ArgumentNullException.ThrowIfNull(LocalHealth);
        Detector.Validate();
        Health.Validate();
        LocalHealth.Validate();
    }
}
