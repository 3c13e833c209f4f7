using System.Text;
using BenchmarkDotNet.Attributes;
using Keel.Core;
using Keel.Idempotency;

namespace Keel.Benchmarks;

/// <summary>
/// The idempotency table's request path: a retry that hits a completed entry (target: under 200 ns, no allocation),
/// and a first request (claim, then complete) in a table kept at its entry bound, so every new claim also evicts the
/// oldest completed entry. Plus the fingerprint of a typical request and a snapshot of a full table.
/// </summary>
[MemoryDiagnoser]
public class IdempotencyBenchmarks
{
    private const int TableEntries = 10_000;
    private const int KeyRing = 1 << 16;

    private IdempotencyTable _hitTable = null!;
    private IdempotencyTable _fullTable = null!;
    private string[] _keys = null!;
    private string _hitKey = null!;
    private char[] _hitKeyBuffer = null!;
    private RequestFingerprint _fingerprint;
    private byte[] _request = null!;
    private byte[] _response = null!;
    private byte[] _snapshot = null!;
    private long _nowMs;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        var random = new DeterministicRandom(42);
        _keys = new string[KeyRing];
        for (var i = 0; i < _keys.Length; i++)
            _keys[i] = new Guid(random.NextInt32(int.MaxValue), (short)random.NextInt32(short.MaxValue), (short)i, 1, 2, 3, 4, 5, 6, 7, 8).ToString();
        _request = Encoding.UTF8.GetBytes("{\"amount\":1000,\"currency\":\"EUR\",\"customer\":\"cus_9s6XKzkNRiz8i3\",\"description\":\"order 1234\",\"source\":\"tok_visa\"}");
        _fingerprint = RequestFingerprint.Of("client-7"u8, _request);
        _response = Encoding.UTF8.GetBytes("{\"id\":\"ch_3MmlLrLkdIwHu7ix0snN0B15\",\"status\":\"succeeded\",\"amount\":1000}");

        var options = new IdempotencyOptions { MaxEntries = TableEntries };
        _hitTable = new IdempotencyTable(options);
        _fullTable = new IdempotencyTable(options);
        _nowMs = 1_700_000_000_000;
        for (var i = 0; i < TableEntries; i++)
        {
            _nowMs++;
            _hitTable.Claim(_keys[i], _fingerprint, _nowMs);
            _hitTable.Complete(_keys[i], _fingerprint, 0, _response, _nowMs);
            _fullTable.Claim(_keys[i], _fingerprint, _nowMs);
            _fullTable.Complete(_keys[i], _fingerprint, 0, _response, _nowMs);
        }
        _next = TableEntries;
        _hitKey = _keys[TableEntries / 2];
        _hitKeyBuffer = ("Idempotency-Key: " + _hitKey).ToCharArray();
        _snapshot = _hitTable.Snapshot();
        _plainDictionary = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < TableEntries; i++) _plainDictionary[_keys[i]] = i;
    }

    private Dictionary<string, int> _plainDictionary = null!;

    /// <summary>The anchor: one lookup of the same key in a plain dictionary of 10,000 string keys.</summary>
    [Benchmark(Baseline = true)]
    public int Anchor_DictionaryLookup() => _plainDictionary.TryGetValue(_hitKey, out var value) ? value : -1;

    /// <summary>A retry answered from a completed entry (string key).</summary>
    [Benchmark]
    public int ClaimHitCompleted() => _hitTable.Claim(_hitKey, _fingerprint, _nowMs).Response.StatusCode;

    /// <summary>A retry answered from a completed entry, the key still in the request buffer.</summary>
    [Benchmark]
    public int ClaimHitCompletedSpanKey() =>
        _hitTable.Claim(_hitKeyBuffer.AsSpan(17), _fingerprint, _nowMs).Response.StatusCode;

    /// <summary>A first request: claim (evicting the oldest completed entry, the table being full), then complete.</summary>
    [Benchmark]
    public CompleteOutcome ClaimNewThenCompleteAtCapacity()
    {
        var key = _keys[_next++ & (KeyRing - 1)];
        _nowMs++;
        _fullTable.Claim(key, _fingerprint, _nowMs);
        return _fullTable.Complete(key, _fingerprint, 0, _response, _nowMs).Outcome;
    }

    /// <summary>SHA-256 fingerprint of a ~120-byte request with a caller scope.</summary>
    [Benchmark]
    public RequestFingerprint FingerprintOfRequest() => RequestFingerprint.Of("client-7"u8, _request);

    /// <summary>Snapshot of a table of 10,000 completed entries.</summary>
    [Benchmark]
    public int Snapshot10k() => _hitTable.Snapshot().Length;

    /// <summary>Restore of a table of 10,000 completed entries.</summary>
    [Benchmark]
    public int Restore10k() => IdempotencyTable.Restore(_snapshot).Count;
}
