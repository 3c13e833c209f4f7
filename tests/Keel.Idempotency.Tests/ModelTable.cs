namespace Keel.Idempotency.Tests;

/// <summary>
/// A naive reference for <see cref="IdempotencyTable"/>: a list scanned in full, expired entries dropped before every
/// operation. It states the specification plainly (an entry is live while now &lt; its expiry; when room is needed the
/// oldest live completed entry goes; in-flight entries are never evicted) so the real table can be checked against it.
/// </summary>
internal sealed class ModelTable(IdempotencyOptions options)
{
    private sealed class ModelEntry(string key, int payload, long expiresAtMs)
    {
        public string Key { get; } = key;
        public int Payload { get; } = payload;
        public long ExpiresAtMs { get; set; } = expiresAtMs;
        public bool Completed { get; set; }
        public int Status { get; set; }
        public byte[] Body { get; set; } = [];
    }

    private readonly List<ModelEntry> _entries = [];

    public long Hits, Misses, Mismatches, InFlightConflicts, TableFullRejections, Completions, Releases, UnknownClaims,
        ResponsesTooLarge, Evictions;

    public int LiveCount => _entries.Count;

    public long LiveBytes => _entries.Where(e => e.Completed).Sum(e => (long)e.Body.Length);

    public (ClaimOutcome Outcome, long ExpiresAtMs, int Status, byte[]? Body) Claim(string key, int payload, long nowMs)
    {
        Purge(nowMs);
        var entry = Find(key);
        if (entry is not null)
        {
            if (entry.Payload != payload) { Mismatches++; return (ClaimOutcome.Mismatch, entry.ExpiresAtMs, 0, null); }
            if (entry.Completed) { Hits++; return (ClaimOutcome.Completed, entry.ExpiresAtMs, entry.Status, entry.Body); }
            InFlightConflicts++;
            return (ClaimOutcome.InFlight, entry.ExpiresAtMs, 0, null);
        }
        if (_entries.Count >= options.MaxEntries)
        {
            var oldest = OldestCompleted();
            if (oldest is null)
            {
                TableFullRejections++;
                return (ClaimOutcome.TableFull, _entries.Min(e => e.ExpiresAtMs), 0, null);
            }
            _entries.Remove(oldest);
            Evictions++;
        }
        var created = new ModelEntry(key, payload, Add(nowMs, options.InFlightWindowMs));
        _entries.Add(created);
        Misses++;
        return (ClaimOutcome.New, created.ExpiresAtMs, 0, null);
    }

    public (CompleteOutcome Outcome, long ExpiresAtMs, int Status, byte[]? Body) Complete(string key, int payload, int status, byte[] body, long nowMs)
    {
        Purge(nowMs);
        var entry = Find(key);
        if (entry is null) { UnknownClaims++; return (CompleteOutcome.UnknownClaim, 0, 0, null); }
        if (entry.Payload != payload) { Mismatches++; return (CompleteOutcome.Mismatch, 0, 0, null); }
        if (entry.Completed) return (CompleteOutcome.AlreadyCompleted, entry.ExpiresAtMs, entry.Status, entry.Body);
        if (body.Length > options.MaxResponseBytesPerEntry) { ResponsesTooLarge++; return (CompleteOutcome.ResponseTooLarge, 0, 0, null); }
        while (LiveBytes + body.Length > options.MaxTotalResponseBytes)
        {
            _entries.Remove(OldestCompleted()!);
            Evictions++;
        }
        entry.Completed = true;
        entry.Status = status;
        entry.Body = body.ToArray();
        entry.ExpiresAtMs = Add(nowMs, options.CompletedWindowMs);
        Completions++;
        return (CompleteOutcome.Completed, entry.ExpiresAtMs, entry.Status, entry.Body);
    }

    public ReleaseOutcome Release(string key, int payload, long nowMs)
    {
        Purge(nowMs);
        var entry = Find(key);
        if (entry is null) { UnknownClaims++; return ReleaseOutcome.UnknownClaim; }
        if (entry.Payload != payload) { Mismatches++; return ReleaseOutcome.Mismatch; }
        if (entry.Completed) return ReleaseOutcome.AlreadyCompleted;
        _entries.Remove(entry);
        Releases++;
        return ReleaseOutcome.Released;
    }

    public void AssertCountersMatch(IdempotencyCounters actual)
    {
        Assert.Equal(
            (Hits, Misses, Mismatches, InFlightConflicts, TableFullRejections, Completions, Releases, UnknownClaims, ResponsesTooLarge, Evictions),
            (actual.Hits, actual.Misses, actual.Mismatches, actual.InFlightConflicts, actual.TableFullRejections,
             actual.Completions, actual.Releases, actual.UnknownClaims, actual.ResponsesTooLarge, actual.Evictions));
    }

    public void Purge(long nowMs) => _entries.RemoveAll(e => e.ExpiresAtMs <= nowMs);

    private ModelEntry? Find(string key) => _entries.FirstOrDefault(e => string.Equals(e.Key, key, StringComparison.Ordinal));

    private ModelEntry? OldestCompleted() => _entries
        .Where(e => e.Completed)
        .OrderBy(e => e.ExpiresAtMs)
        .ThenBy(e => e.Key, StringComparer.Ordinal)
        .FirstOrDefault();

    private static long Add(long timeMs, long windowMs) => timeMs > long.MaxValue - windowMs ? long.MaxValue : timeMs + windowMs;
}
