using Keel.Core;

namespace Keel.Idempotency;

public sealed partial class IdempotencyTable
{
    /// <summary>
    /// Checks every structural invariant of the table and throws <see cref="InvariantViolationException"/> on the first
    /// broken one. Walks all entries, so it is for tests and the simulator, not for the request path.
    /// </summary>
    /// <exception cref="InvariantViolationException">The table's state is inconsistent (a bug).</exception>
    public void AssertInvariants()
    {
        Invariant.Check(_entries.Count == _inFlightByExpiry.Count + _completedByExpiry.Count,
            "every entry is in exactly one expiry index");
        Invariant.Check(_entries.Count <= Options.MaxEntries, "the entry count is within MaxEntries");
        Invariant.Check(_lastNowMs >= 0, "committed time is non-negative");
        Invariant.Check(_responseBytes >= 0 && _responseBytes <= Options.MaxTotalResponseBytes,
            "stored response bytes are within MaxTotalResponseBytes");

        foreach (var entry in _inFlightByExpiry)
        {
            CheckCommon(entry);
            Invariant.Check(!entry.IsCompleted && entry.Body is null, "an in-flight entry holds no response");
            Invariant.Check(entry.ExpiresAtMs == SaturatingAdd(entry.ClaimedAtMs, Options.InFlightWindowMs),
                "an in-flight entry expires one in-flight window after its claim");
        }

        long bytes = 0;
        foreach (var entry in _completedByExpiry)
        {
            CheckCommon(entry);
            Invariant.Check(entry.IsCompleted && entry.Body is not null, "a completed entry holds a response");
            Invariant.Check(entry.Body!.Length <= Options.MaxResponseBytesPerEntry, "a stored body is within MaxResponseBytesPerEntry");
            Invariant.Check(entry.ClaimedAtMs <= entry.CompletedAtMs && entry.CompletedAtMs <= _lastNowMs,
                "a completion happens after its claim and not in the future");
            Invariant.Check(entry.ExpiresAtMs == SaturatingAdd(entry.CompletedAtMs, Options.CompletedWindowMs),
                "a completed entry expires one completed window after its completion");
            bytes += entry.Body.Length;
        }
        Invariant.Check(bytes == _responseBytes, "the stored-byte total matches the bodies held");
        Invariant.Check(_nextExpiryLowerBoundMs <= EarliestExpiryMs(), "the sweep bound never exceeds the earliest expiry");
    }

    /// <summary>For tests: every held key, in the order expiry and eviction act on (expiry time, then key ordinal).</summary>
    internal List<string> KeysInExpiryOrder()
    {
        var all = new List<Entry>(_inFlightByExpiry);
        all.AddRange(_completedByExpiry);
        all.Sort(EntryExpiryComparer.Instance);
        return all.ConvertAll(entry => entry.Key);
    }

    /// <summary>For tests: the entry held for a key, expired or not.</summary>
    internal Entry? FindEntry(string key) => _entries.GetValueOrDefault(key);

    private void CheckCommon(Entry entry)
    {
        Invariant.Check(_entries.TryGetValue(entry.Key, out var mapped) && ReferenceEquals(mapped, entry),
            "an indexed entry is the one the key map holds");
        Invariant.Check(IdempotencyKey.IsValid(entry.Key), "a stored key is valid");
        Invariant.Check(entry.ClaimedAtMs >= 0 && entry.ClaimedAtMs <= _lastNowMs, "a claim is not in the future");
    }
}
