using Keel.Core;

namespace Keel.Idempotency;

public sealed partial class IdempotencyTable
{
    /// <summary>
    /// Removes up to <paramref name="maxEntries"/> entries whose window has passed at <paramref name="nowMs"/>, earliest
    /// expiry first (ties by key, ordinal), and returns how many it removed. The server calls this from a periodic log
    /// entry so expired entries leave memory even when no traffic touches them; an entry is never removed before its
    /// window has passed.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nowMs"/> is negative or earlier than <see cref="LastNowMs"/>, or <paramref name="maxEntries"/> is negative.</exception>
    public int ExpireDue(long nowMs, int maxEntries)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxEntries);
        AdvanceTime(nowMs);
        return Sweep(nowMs, maxEntries);
    }

    private int Sweep(long nowMs, int maxEntries)
    {
        var removed = 0;
        while (removed < maxEntries && TryExpireEarliest(nowMs)) removed++;
        _nextExpiryLowerBoundMs = EarliestExpiryMs();
        return removed;
    }

    private long EarliestExpiryMs()
    {
        var earliest = long.MaxValue;
        if (_inFlightByExpiry.Count > 0) earliest = _inFlightByExpiry.Min!.ExpiresAtMs;
        if (_completedByExpiry.Count > 0) earliest = Math.Min(earliest, _completedByExpiry.Min!.ExpiresAtMs);
        return earliest;
    }

    /// <summary>Removes the entry with the earliest expiry if its window has passed.</summary>
    private bool TryExpireEarliest(long nowMs)
    {
        var inFlight = _inFlightByExpiry.Count > 0 ? _inFlightByExpiry.Min : null;
        var completed = _completedByExpiry.Count > 0 ? _completedByExpiry.Min : null;
        var earliest = completed is null || (inFlight is not null && EntryExpiryComparer.Instance.Compare(inFlight, completed) < 0)
            ? inFlight
            : completed;
        if (earliest is null || earliest.ExpiresAtMs > nowMs) return false;
        RemoveEntry(earliest);
        _expirations++;
        return true;
    }

    /// <summary>
    /// Frees one entry slot if the table is at <see cref="IdempotencyOptions.MaxEntries"/>: expired entries first, then
    /// the oldest live completed entry. Returns false, changing nothing live, when only live in-flight claims remain.
    /// </summary>
    private bool TryMakeRoomForEntry(long nowMs)
    {
        if (_entries.Count < Options.MaxEntries) return true;
        while (_entries.Count >= Options.MaxEntries && TryExpireEarliest(nowMs)) { }
        while (_entries.Count >= Options.MaxEntries && _completedByExpiry.Count > 0) EvictOldestCompleted(nowMs);
        return _entries.Count < Options.MaxEntries;
    }

    /// <summary>
    /// Frees stored body bytes until <paramref name="bodyBytes"/> more fit: expired completed entries first, then the
    /// oldest live completed ones. In-flight claims hold no bytes, so a body within the per-entry limit always fits.
    /// </summary>
    private void MakeRoomForResponseBytes(int bodyBytes, long nowMs)
    {
        while (_responseBytes + bodyBytes > Options.MaxTotalResponseBytes)
        {
            Invariant.Check(_completedByExpiry.Count > 0, "response bytes over the bound with no completed entry to free");
            var oldest = _completedByExpiry.Min!;
            if (oldest.ExpiresAtMs <= nowMs)
            {
                RemoveEntry(oldest);
                _expirations++;
            }
            else
            {
                EvictOldestCompleted(nowMs);
            }
        }
    }

    private void EvictOldestCompleted(long nowMs)
    {
        var oldest = _completedByExpiry.Min!;
        Invariant.Check(oldest.ExpiresAtMs > nowMs, "eviction chose an expired entry; expired entries must go first");
        RemoveEntry(oldest);
        _evictions++;
    }
}
