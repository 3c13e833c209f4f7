using System.Diagnostics;
using Keel.Core;

namespace Keel.Idempotency;

/// <summary>
/// The Idempotent Receiver's memory: for each client-supplied idempotency key, whether the request is in flight or
/// completed, and the response to replay, so a request takes effect once however often it is retried.
/// </summary>
/// <remarks>
/// <para>
/// A deterministic state machine meant to live inside Keel's replicated state machine (Raft thesis 6.3, "client
/// sessions": the server applies it from committed log entries, and expiry uses the timestamp carried in each entry,
/// never a local clock, so every replica expires the same entries at the same log position). Every method takes
/// <c>nowMs</c>, the committed hybrid-clock time of the entry being applied; it must never decrease. No method reads a
/// clock, draws a random number, or lets the iteration order of a hash table decide anything: removal order (expiry,
/// eviction) and snapshot order are by expiry time, then key in ordinal order.
/// </para>
/// <para>
/// Semantics follow Stripe and the IETF Idempotency-Key draft: the first request with a key is executed and its
/// response, error or not, is replayed to every retry for <see cref="IdempotencyOptions.CompletedWindowMs"/>; a retry
/// while the first is still executing gets <see cref="ClaimOutcome.InFlight"/> (ABORTED / 409); the same key with a
/// different request gets <see cref="ClaimOutcome.Mismatch"/> (FAILED_PRECONDITION / 422). An in-flight claim expires
/// after <see cref="IdempotencyOptions.InFlightWindowMs"/> (AWS Powertools INPROGRESS expiry) so a crashed executor
/// cannot block its key forever.
/// </para>
/// <para>
/// Memory policy: at most <see cref="IdempotencyOptions.MaxEntries"/> entries and
/// <see cref="IdempotencyOptions.MaxTotalResponseBytes"/> stored body bytes. When a new claim or a completion needs
/// room, the table first removes entries whose window has passed (expirations), then evicts live COMPLETED entries,
/// oldest completion first (evictions, counted): an evicted key's replay window is cut short, and a retry after its
/// eviction executes again. In-flight claims are never evicted, because forgetting one would let a concurrent retry run
/// the request a second time; when only in-flight entries are left the claim is refused with
/// <see cref="ClaimOutcome.TableFull"/>. Size the bounds so evictions stay at zero; watch
/// <see cref="IdempotencyCounters.Evictions"/>.
/// </para>
/// <para>Not thread-safe: the replicated state machine applies entries one at a time.</para>
/// </remarks>
public sealed partial class IdempotencyTable
{
    private readonly Dictionary<string, Entry> _entries;
    private readonly Dictionary<string, Entry>.AlternateLookup<ReadOnlySpan<char>> _entriesBySpan;
    private readonly SortedSet<Entry> _inFlightByExpiry = new(EntryExpiryComparer.Instance);
    private readonly SortedSet<Entry> _completedByExpiry = new(EntryExpiryComparer.Instance);
    private long _responseBytes;
    private long _lastNowMs;

    // A lower bound on the earliest expiry of any entry, so an operation checks with one comparison whether a sweep
    // could find anything. Entries removed after it was computed only make it more conservative.
    private long _nextExpiryLowerBoundMs = long.MaxValue;

    private long _hits, _misses, _mismatches, _inFlightConflicts, _tableFullRejections, _completions, _releases,
        _unknownClaims, _responsesTooLarge, _evictions, _expirations;

    /// <summary>Creates an empty table with <see cref="IdempotencyOptions.Default"/>.</summary>
    public IdempotencyTable() : this(IdempotencyOptions.Default) { }

    /// <summary>Creates an empty table.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public IdempotencyTable(IdempotencyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        _entries = new Dictionary<string, Entry>(StringComparer.Ordinal);
        _entriesBySpan = _entries.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The windows and bounds this table enforces.</summary>
    public IdempotencyOptions Options { get; }

    /// <summary>Entries held, in flight and completed, including expired ones not yet removed.</summary>
    public int Count => _entries.Count;

    /// <summary>Claims held in flight, including expired ones not yet removed.</summary>
    public int InFlightCount => _inFlightByExpiry.Count;

    /// <summary>Completed entries held, including expired ones not yet removed.</summary>
    public int CompletedCount => _completedByExpiry.Count;

    /// <summary>Response-body bytes held over all completed entries.</summary>
    public long ResponseBytes => _responseBytes;

    /// <summary>The latest committed time the table has been given (0 before the first operation).</summary>
    public long LastNowMs => _lastNowMs;

    /// <summary>The running totals.</summary>
    public IdempotencyCounters Counters => new(_hits, _misses, _mismatches, _inFlightConflicts, _tableFullRejections,
        _completions, _releases, _unknownClaims, _responsesTooLarge, _evictions, _expirations);

    /// <summary>
    /// Looks the key up and, if it is unknown, records a claim in flight. The caller executes the request only when the
    /// outcome is <see cref="ClaimOutcome.New"/>, then reports with Complete (or Release if it had no effect).
    /// </summary>
    /// <param name="key">The client's idempotency key, 1 to 255 printable ASCII characters.</param>
    /// <param name="fingerprint">The digest of the request (<see cref="RequestFingerprint.Of(ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>).</param>
    /// <param name="nowMs">The committed time of the log entry being applied; never less than the previous call's.</param>
    /// <exception cref="InvalidIdempotencyKeyException">The key is not valid.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nowMs"/> is negative or earlier than <see cref="LastNowMs"/>.</exception>
    public ClaimResult Claim(string key, RequestFingerprint fingerprint, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(key);
        return ClaimCore(key, key, fingerprint, nowMs);
    }

    /// <summary>
    /// <see cref="Claim(string, RequestFingerprint, long)"/> for a key still in a request buffer: a hit allocates
    /// nothing; only a new claim copies the key into a string.
    /// </summary>
    /// <exception cref="InvalidIdempotencyKeyException">The key is not valid.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nowMs"/> is negative or earlier than <see cref="LastNowMs"/>.</exception>
    public ClaimResult Claim(ReadOnlySpan<char> key, RequestFingerprint fingerprint, long nowMs) =>
        ClaimCore(key, null, fingerprint, nowMs);

    /// <summary>
    /// Stores the response of an in-flight claim; from now on claims with the key and fingerprint replay it, until
    /// <see cref="IdempotencyOptions.CompletedWindowMs"/> after <paramref name="nowMs"/>. Store errors too: a retry of a
    /// request that failed after taking effect must not run it again.
    /// </summary>
    /// <exception cref="InvalidIdempotencyKeyException">The key is not valid.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nowMs"/> is negative or earlier than <see cref="LastNowMs"/>.</exception>
    public CompleteResult Complete(string key, RequestFingerprint fingerprint, StoredResponse response, long nowMs) =>
        Complete(key, fingerprint, response.StatusCode, response.Body.Span, nowMs);

    /// <summary>
    /// <see cref="Complete(string, RequestFingerprint, StoredResponse, long)"/> with the status code and body given
    /// apart; the body is copied.
    /// </summary>
    /// <exception cref="InvalidIdempotencyKeyException">The key is not valid.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nowMs"/> is negative or earlier than <see cref="LastNowMs"/>.</exception>
    public CompleteResult Complete(string key, RequestFingerprint fingerprint, int statusCode, ReadOnlySpan<byte> responseBody, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(key);
        var entry = BeginOperation(key, nowMs);
        if (entry is null)
        {
            _unknownClaims++;
            return new CompleteResult(CompleteOutcome.UnknownClaim, 0);
        }
        if (entry.Fingerprint != fingerprint)
        {
            _mismatches++;
            return new CompleteResult(CompleteOutcome.Mismatch, 0);
        }
        if (entry.IsCompleted) return new CompleteResult(CompleteOutcome.AlreadyCompleted, entry.ExpiresAtMs, entry.Response);
        if (responseBody.Length > Options.MaxResponseBytesPerEntry)
        {
            _responsesTooLarge++;
            return new CompleteResult(CompleteOutcome.ResponseTooLarge, 0);
        }

        MakeRoomForResponseBytes(responseBody.Length, nowMs);
        var removed = _inFlightByExpiry.Remove(entry);
        Debug.Assert(removed);
        entry.IsCompleted = true;
        entry.CompletedAtMs = nowMs;
        entry.ExpiresAtMs = SaturatingAdd(nowMs, Options.CompletedWindowMs);
        entry.StatusCode = statusCode;
        entry.Body = responseBody.IsEmpty ? [] : responseBody.ToArray();
        _completedByExpiry.Add(entry);
        _responseBytes += entry.Body.Length;
        _nextExpiryLowerBoundMs = Math.Min(_nextExpiryLowerBoundMs, entry.ExpiresAtMs);
        _completions++;
        Invariant.Check(_responseBytes <= Options.MaxTotalResponseBytes, "stored response bytes exceed the bound after a completion");
        return new CompleteResult(CompleteOutcome.Completed, entry.ExpiresAtMs, entry.Response);
    }

    /// <summary>
    /// Removes an in-flight claim whose execution had no effect (it failed before changing anything, for instance it
    /// was rejected by validation or could not reach a dependency), so a retry executes it afresh. Never release a
    /// claim whose request may have taken effect: complete it with the error instead.
    /// </summary>
    /// <exception cref="InvalidIdempotencyKeyException">The key is not valid.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="nowMs"/> is negative or earlier than <see cref="LastNowMs"/>.</exception>
    public ReleaseOutcome Release(string key, RequestFingerprint fingerprint, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(key);
        var entry = BeginOperation(key, nowMs);
        if (entry is null)
        {
            _unknownClaims++;
            return ReleaseOutcome.UnknownClaim;
        }
        if (entry.Fingerprint != fingerprint)
        {
            _mismatches++;
            return ReleaseOutcome.Mismatch;
        }
        if (entry.IsCompleted) return ReleaseOutcome.AlreadyCompleted;
        RemoveEntry(entry);
        _releases++;
        return ReleaseOutcome.Released;
    }

    private ClaimResult ClaimCore(ReadOnlySpan<char> key, string? keyString, RequestFingerprint fingerprint, long nowMs)
    {
        var entry = BeginOperation(key, nowMs);
        if (entry is not null)
        {
            if (entry.Fingerprint != fingerprint)
            {
                _mismatches++;
                return new ClaimResult(ClaimOutcome.Mismatch, entry.ExpiresAtMs);
            }
            if (entry.IsCompleted)
            {
                _hits++;
                return new ClaimResult(ClaimOutcome.Completed, entry.ExpiresAtMs, entry.Response);
            }
            _inFlightConflicts++;
            return new ClaimResult(ClaimOutcome.InFlight, entry.ExpiresAtMs);
        }

        if (!TryMakeRoomForEntry(nowMs))
        {
            _tableFullRejections++;
            return new ClaimResult(ClaimOutcome.TableFull, _inFlightByExpiry.Min!.ExpiresAtMs);
        }
        var created = new Entry(keyString ?? key.ToString(), fingerprint, nowMs, SaturatingAdd(nowMs, Options.InFlightWindowMs));
        _entries.Add(created.Key, created);
        _inFlightByExpiry.Add(created);
        _nextExpiryLowerBoundMs = Math.Min(_nextExpiryLowerBoundMs, created.ExpiresAtMs);
        _misses++;
        Invariant.Check(_entries.Count <= Options.MaxEntries, "entry count exceeds the bound after a claim");
        return new ClaimResult(ClaimOutcome.New, created.ExpiresAtMs);
    }

    /// <summary>
    /// The work every operation starts with: validate, advance time, run the bounded sweep, then find the key's live
    /// entry. An entry whose window has passed is removed here, so what a caller sees depends only on committed time,
    /// never on when a sweep happened to run.
    /// </summary>
    private Entry? BeginOperation(ReadOnlySpan<char> key, long nowMs)
    {
        IdempotencyKey.Validate(key);
        AdvanceTime(nowMs);
        if (nowMs >= _nextExpiryLowerBoundMs && Options.SweepLimitPerOperation > 0) Sweep(nowMs, Options.SweepLimitPerOperation);
        if (!_entriesBySpan.TryGetValue(key, out var entry)) return null;
        if (entry.ExpiresAtMs > nowMs) return entry;
        RemoveEntry(entry);
        _expirations++;
        return null;
    }

    private void AdvanceTime(long nowMs)
    {
        if (nowMs < _lastNowMs || nowMs < 0) ThrowTimeWentBackwards(nowMs);
        _lastNowMs = nowMs;
    }

    private void ThrowTimeWentBackwards(long nowMs) => throw new ArgumentOutOfRangeException(nameof(nowMs), nowMs,
        $"Committed time must be non-negative and never decrease: got {nowMs} ms after {_lastNowMs} ms. " +
        "The idempotency table must be driven by the committed hybrid-clock time of log entries, in log order.");

    private void RemoveEntry(Entry entry)
    {
        var removedFromMap = _entries.Remove(entry.Key);
        var removedFromIndex = entry.IsCompleted ? _completedByExpiry.Remove(entry) : _inFlightByExpiry.Remove(entry);
        Invariant.Check(removedFromMap && removedFromIndex, "an entry was missing from the key map or its expiry index");
        if (entry.IsCompleted) _responseBytes -= entry.Body!.Length;
    }

    private static long SaturatingAdd(long timeMs, long windowMs) =>
        timeMs > long.MaxValue - windowMs ? long.MaxValue : timeMs + windowMs;
}
