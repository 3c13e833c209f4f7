namespace Keel.Idempotency;

/// <summary>
/// The windows and memory bounds of an <see cref="IdempotencyTable"/>. They are part of the replicated state: every
/// replica must use the same values, and snapshots carry them.
/// </summary>
/// <remarks>
/// Defaults: completed entries are replayed for 24 h (Stripe keeps keys at least 24 h; the seed notes that most HTTP
/// clients retry within minutes, so a day is generous); in-flight claims expire after 5 minutes so a crashed executor
/// never blocks its key forever (AWS Powertools' INPROGRESS records carry their own expiry for this reason).
/// </remarks>
public sealed record IdempotencyOptions
{
    /// <summary>The default options.</summary>
    public static IdempotencyOptions Default { get; } = new();

    /// <summary>How long a completed response is replayed, from the completion's committed time. Default 24 h.</summary>
    public long CompletedWindowMs { get; init; } = 24 * 60 * 60 * 1000L;

    /// <summary>
    /// How long a claim may stay in flight before it expires and the key can be claimed again, from the claim's
    /// committed time. Default 5 minutes. Must exceed the longest execution: a claim that expires while its executor is
    /// still working lets a retry execute the request a second time.
    /// </summary>
    public long InFlightWindowMs { get; init; } = 5 * 60 * 1000L;

    /// <summary>The most entries (in flight and completed) the table holds. Default 100,000.</summary>
    public int MaxEntries { get; init; } = 100_000;

    /// <summary>The most response-body bytes the table holds over all completed entries. Default 64 MiB.</summary>
    public long MaxTotalResponseBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>The largest response body one entry may store. Default 64 KiB. At most <see cref="MaxTotalResponseBytes"/>.</summary>
    public int MaxResponseBytesPerEntry { get; init; } = 64 * 1024;

    /// <summary>
    /// How many due entries each Claim, Complete and Release removes before doing its work, so expired entries do not
    /// linger without a separate sweep. Default 2; 0 leaves expiry to <see cref="IdempotencyTable.ExpireDue"/> and to
    /// lazy removal on access and under memory pressure.
    /// </summary>
    public int SweepLimitPerOperation { get; init; } = 2;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first option that is out of range.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(CompletedWindowMs, nameof(CompletedWindowMs));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(InFlightWindowMs, nameof(InFlightWindowMs));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxEntries, nameof(MaxEntries));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxTotalResponseBytes, nameof(MaxTotalResponseBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxResponseBytesPerEntry, nameof(MaxResponseBytesPerEntry));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxResponseBytesPerEntry, MaxTotalResponseBytes, nameof(MaxResponseBytesPerEntry));
        ArgumentOutOfRangeException.ThrowIfNegative(SweepLimitPerOperation, nameof(SweepLimitPerOperation));
    }
}
