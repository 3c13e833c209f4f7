namespace Keel.Idempotency;

/// <summary>
/// Running totals of what an <see cref="IdempotencyTable"/> has done. They are part of the replicated state (kept in
/// snapshots), so every replica reports the same numbers.
/// </summary>
/// <param name="Hits">Claims answered with a stored response (<see cref="ClaimOutcome.Completed"/>).</param>
/// <param name="Misses">Claims that created a new in-flight entry (<see cref="ClaimOutcome.New"/>).</param>
/// <param name="Mismatches">Claims, completions and releases refused because the fingerprint differed.</param>
/// <param name="InFlightConflicts">Claims answered <see cref="ClaimOutcome.InFlight"/>.</param>
/// <param name="TableFullRejections">Claims refused with <see cref="ClaimOutcome.TableFull"/>.</param>
/// <param name="Completions">In-flight claims completed with a response.</param>
/// <param name="Releases">In-flight claims released without a response.</param>
/// <param name="UnknownClaims">Completions and releases for a key with no live claim.</param>
/// <param name="ResponsesTooLarge">Completions refused because the body exceeded the per-entry limit.</param>
/// <param name="Evictions">Live completed entries removed early to stay within the memory bounds; each one shortened that key's window.</param>
/// <param name="Expirations">Entries removed because their window had passed (in flight or completed).</param>
public readonly record struct IdempotencyCounters(
    long Hits,
    long Misses,
    long Mismatches,
    long InFlightConflicts,
    long TableFullRejections,
    long Completions,
    long Releases,
    long UnknownClaims,
    long ResponsesTooLarge,
    long Evictions,
    long Expirations);
