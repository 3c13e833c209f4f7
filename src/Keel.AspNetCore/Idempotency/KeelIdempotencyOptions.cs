using Microsoft.AspNetCore.Http;

namespace Keel.AspNetCore.Idempotency;

/// <summary>
/// Settings of <see cref="KeelIdempotencyMiddleware"/>. Bound limits: request bodies over
/// <see cref="MaxRequestBodyBytes"/> are refused with 413 before anything is stored; responses over
/// <see cref="MaxResponseBodyBytes"/> still reach the first caller in full, but only their status and headers are
/// stored, so a retry gets those with an empty body and <c>Idempotent-Replay-Body-Omitted: true</c>.
/// </summary>
public sealed class KeelIdempotencyOptions
{
    /// <summary>Largest <see cref="MaxResponseBodyBytes"/> accepted: the stored record (base64 body and headers) must stay under Keel's 1.5 MiB request limit.</summary>
    public const int MaxStorableResponseBytes = 1024 * 1024;

    /// <summary>Key prefix of the records in Keel (default <c>idempotency/</c>).</summary>
    public string KeyPrefix { get; set; } = "idempotency/";

    /// <summary>The request header carrying the key (default <c>Idempotency-Key</c>, as in the IETF httpapi draft).</summary>
    public string HeaderName { get; set; } = "Idempotency-Key";

    /// <summary>The header set to <c>true</c> on a replayed response (default <c>Idempotent-Replayed</c>).</summary>
    public string ReplayedHeaderName { get; set; } = "Idempotent-Replayed";

    /// <summary>Methods the middleware handles on every endpoint (default POST and PATCH); other endpoints opt in with <c>RequireIdempotencyKey()</c>.</summary>
    public ISet<string> Methods { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { HttpMethods.Post, HttpMethods.Patch };

    /// <summary>
    /// Whether a handled request without the header is refused with 400 (default false: it runs without protection).
    /// Endpoints marked <c>RequireIdempotencyKey()</c> always require it.
    /// </summary>
    public bool RequireKey { get; set; }

    /// <summary>Longest accepted key, in characters (default 255).</summary>
    public int MaxKeyLength { get; set; } = 255;

    /// <summary>How long a completed response is kept for replay (default 24 h).</summary>
    public TimeSpan ResponseTtl { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// TTL of the lease of the in-flight marker (default 10 s), kept alive while the request runs: if the instance
    /// crashes mid-request the marker goes within this time and a retry runs the request again.
    /// </summary>
    public TimeSpan InFlightTtl { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest request body hashed into the fingerprint (default 1 MiB); larger requests get 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Largest response body stored for replay (default 256 KiB, at most <see cref="MaxStorableResponseBytes"/>).</summary>
    public int MaxResponseBodyBytes { get; set; } = 256 * 1024;

    /// <summary>Response headers stored and replayed (default Content-Type, Content-Language, Location, ETag, Last-Modified, Cache-Control).</summary>
    public ISet<string> StoredHeaders { get; } = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        "Content-Type", "Content-Language", "Location", "ETag", "Last-Modified", "Cache-Control",
    };

    /// <summary>
    /// Store 5xx responses too (default false: a server error, like an exception in the handler, removes the marker so
    /// a retry runs the request again).
    /// </summary>
    public bool StoreServerErrors { get; set; }

    /// <summary>
    /// Partitions keys, e.g. by the authenticated user (<c>ctx =&gt; ctx.User.Identity?.Name ?? ""</c>), so two callers
    /// cannot collide on a key or read each other's responses. Null (the default): one space for all callers.
    /// </summary>
    public Func<HttpContext, string>? Scope { get; set; }

    internal IEnumerable<string> Problems()
    {
        if (string.IsNullOrEmpty(KeyPrefix)) yield return "KeyPrefix must not be empty";
        if (string.IsNullOrEmpty(HeaderName)) yield return "HeaderName must not be empty";
        if (MaxKeyLength is < 1 or > 1024) yield return $"MaxKeyLength {MaxKeyLength} must be between 1 and 1024";
        if (ResponseTtl < TimeSpan.FromSeconds(1)) yield return $"ResponseTtl {ResponseTtl} must be at least 1 s";
        if (InFlightTtl < TimeSpan.FromSeconds(2)) yield return $"InFlightTtl {InFlightTtl} must be at least 2 s";
        if (MaxRequestBodyBytes < 0) yield return $"MaxRequestBodyBytes {MaxRequestBodyBytes} must not be negative";
        if (MaxResponseBodyBytes is < 0 or > MaxStorableResponseBytes)
            yield return $"MaxResponseBodyBytes {MaxResponseBodyBytes} must be between 0 and {MaxStorableResponseBytes}";
    }
}

/// <summary>Endpoint metadata that changes how <see cref="KeelIdempotencyMiddleware"/> treats an endpoint.</summary>
/// <param name="Required">The endpoint is handled whatever its method, and a request without a key gets 400.</param>
/// <param name="Disabled">The endpoint is never handled.</param>
public sealed record IdempotencyMetadata(bool Required, bool Disabled);
