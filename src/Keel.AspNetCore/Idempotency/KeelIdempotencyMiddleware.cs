using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Keel.Client;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Keel.AspNetCore.Idempotency;

/// <summary>
/// The <c>Idempotency-Key</c> middleware (IETF httpapi draft semantics), with its records in Keel so that every
/// instance of the application sees them:
/// <list type="bullet">
/// <item>the first request with a key claims it with a create-if-absent transaction (an in-flight marker on a kept-alive
/// lease), runs, and its response — status, <see cref="KeelIdempotencyOptions.StoredHeaders"/>, body — replaces the
/// marker for <see cref="KeelIdempotencyOptions.ResponseTtl"/>;</item>
/// <item>a retry with the same key and the same fingerprint (method, path and query, SHA-256 of the body) gets the
/// stored response back, marked <c>Idempotent-Replayed: true</c>, from any instance;</item>
/// <item>a duplicate while the first is still running gets 409; the same key with another fingerprint gets 422;</item>
/// <item>a missing key where one is required, or a malformed one, gets 400; a request body over the limit gets 413 —
/// all as <c>application/problem+json</c>.</item>
/// </list>
/// Two instances racing on one key are decided by Keel's transaction: exactly one claims it. An exception or (by
/// default) a 5xx from the handler removes the marker, so the key can be retried.
/// </summary>
public sealed class KeelIdempotencyMiddleware
{
    private readonly RequestDelegate _next;
    private readonly KeelClient _client;
    private readonly KeelIdempotencyOptions _options;
    private readonly ILogger _logger;
    private readonly TimeSpan _recordLeaseReuse;
    private readonly SemaphoreSlim _recordLeaseGate = new(1, 1);
    private (long Id, long GrantedAt) _recordLease;

    /// <summary>Creates the middleware (use <see cref="KeelAspNetCoreApplicationBuilderExtensions.UseKeelIdempotency"/>).</summary>
    public KeelIdempotencyMiddleware(RequestDelegate next, KeelClient client, IOptions<KeelIdempotencyOptions> options, ILogger<KeelIdempotencyMiddleware> logger)
    {
        _next = next;
        _client = client;
        _options = options.Value;
        var problems = _options.Problems().ToList();
        if (problems.Count > 0) throw new ArgumentException("KeelIdempotencyOptions: " + string.Join("; ", problems), nameof(options));
        _logger = logger;
        // Records completed close together share one lease: they live between ResponseTtl minus this and ResponseTtl.
        _recordLeaseReuse = TimeSpan.FromTicks(Math.Min(_options.ResponseTtl.Ticks / 10, TimeSpan.FromMinutes(1).Ticks));
    }

    /// <summary>Handles one request.</summary>
    public async Task InvokeAsync(HttpContext context)
    {
        var metadata = context.GetEndpoint()?.Metadata.GetMetadata<IdempotencyMetadata>();
        var required = metadata?.Required == true;
        if (metadata?.Disabled == true || (!required && !_options.Methods.Contains(context.Request.Method)))
        {
            await _next(context).ConfigureAwait(false);
            return;
        }
        var header = context.Request.Headers[_options.HeaderName];
        if (header.Count == 0)
        {
            if (required || _options.RequireKey)
            {
                await ProblemAsync(context, StatusCodes.Status400BadRequest, "Idempotency-Key missing",
                    $"This endpoint requires an {_options.HeaderName} header (a unique string per logical request, reused on retries).").ConfigureAwait(false);
                return;
            }
            await _next(context).ConfigureAwait(false);
            return;
        }
        if (header.Count > 1 || !TryParseKey(header[0], out var key))
        {
            await ProblemAsync(context, StatusCodes.Status400BadRequest, "Idempotency-Key malformed",
                $"{_options.HeaderName} must be one string of 1 to {_options.MaxKeyLength} printable ASCII characters, optionally in double quotes.").ConfigureAwait(false);
            return;
        }

        var fingerprint = await FingerprintAsync(context).ConfigureAwait(false);
        if (fingerprint is null)
        {
            await ProblemAsync(context, StatusCodes.Status413PayloadTooLarge, "Request body too large for an idempotent request",
                $"Requests with {_options.HeaderName} may carry at most {_options.MaxRequestBodyBytes} bytes of body.").ConfigureAwait(false);
            return;
        }

        var scope = _options.Scope?.Invoke(context);
        var recordKey = _options.KeyPrefix + (string.IsNullOrEmpty(scope) ? "" : Uri.EscapeDataString(scope) + "/") + Uri.EscapeDataString(key);
        KeelLease inFlight;
        TxnResult claim;
        try
        {
            // A retry (the common case for a used key) is answered from one read, without granting a lease.
            if (await _client.GetAsync(recordKey, cancellationToken: context.RequestAborted).ConfigureAwait(false) is { } known)
            {
                await AnswerFromRecordAsync(context, known, fingerprint).ConfigureAwait(false);
                return;
            }
            inFlight = await _client.GrantLeaseAsync(_options.InFlightTtl, keepAlive: true, context.RequestAborted).ConfigureAwait(false);
        }
        catch (KeelClientException e)
        {
            await UnavailableAsync(context, recordKey, e).ConfigureAwait(false);
            return;
        }
        await using (inFlight.ConfigureAwait(false))
        {
            var marker = JsonSerializer.SerializeToUtf8Bytes(new IdempotencyRecord { State = IdempotencyRecord.InFlight, Fingerprint = fingerprint }, IdempotencyJson.Default.IdempotencyRecord);
            try
            {
                claim = await _client.Txn()
                    .If(TxnCompare.Missing(recordKey))
                    .Then(TxnOp.Put(recordKey, marker, inFlight.Id))
                    .Else(TxnOp.Get(recordKey))
                    .CommitAsync(context.RequestAborted).ConfigureAwait(false);
            }
            catch (KeelClientException e)
            {
                await UnavailableAsync(context, recordKey, e).ConfigureAwait(false);
                return;
            }
            if (!claim.Succeeded)
            {
                await AnswerFromRecordAsync(context, claim.Responses[0].SingleOrDefault(), fingerprint).ConfigureAwait(false);
                return;
            }
            await RunAndStoreAsync(context, recordKey, claim.Revision, fingerprint).ConfigureAwait(false);
            // Leaving the scope revokes the in-flight lease: the marker goes with it unless the record replaced it.
        }
    }

    /// <summary>Keel could not be reached to check or claim the key: the request is not run (running it unguarded could run it twice).</summary>
    private Task UnavailableAsync(HttpContext context, string recordKey, KeelClientException e)
    {
        _logger.LogWarning(e, "keel: idempotency record {Key} could not be checked or claimed", recordKey);
        context.Response.Headers.RetryAfter = "1";
        return ProblemAsync(context, StatusCodes.Status503ServiceUnavailable, "Idempotency store unavailable",
            "The request was not processed because its idempotency key could not be checked; retry with the same key.");
    }

    private async Task RunAndStoreAsync(HttpContext context, string recordKey, long markerRevision, string fingerprint)
    {
        var original = context.Response.Body;
        var capture = new CapturingStream(original, _options.MaxResponseBodyBytes);
        context.Response.Body = capture;
        try
        {
            await _next(context).ConfigureAwait(false);
        }
        finally
        {
            context.Response.Body = original;
        }
        var status = context.Response.StatusCode;
        if (status >= 500 && !_options.StoreServerErrors) return;
        var record = new IdempotencyRecord
        {
            State = IdempotencyRecord.Done,
            Fingerprint = fingerprint,
            Status = status,
            Headers = context.Response.Headers.Where(h => _options.StoredHeaders.Contains(h.Key))
                .SelectMany(h => h.Value.Select(v => new[] { h.Key, v ?? "" })).ToArray(),
            Body = capture.Overflowed ? null : capture.Captured.ToArray(),
            BodyOmitted = capture.Overflowed,
        };
        try
        {
            // The client disconnecting must not stop the record from being written: the work is done.
            using var bound = new CancellationTokenSource(_client.Options.CommandTimeout * 2);
            var leaseId = await RecordLeaseAsync(bound.Token).ConfigureAwait(false);
            var stored = await _client.Txn()
                .If(TxnCompare.ModRevision(recordKey, CompareOp.Equal, markerRevision))
                .Then(TxnOp.Put(recordKey, JsonSerializer.SerializeToUtf8Bytes(record, IdempotencyJson.Default.IdempotencyRecord), leaseId))
                .CommitAsync(bound.Token).ConfigureAwait(false);
            if (!stored.Succeeded)
                _logger.LogWarning("keel: idempotency record {Key} changed while its request ran (its in-flight lease expired?); response not stored", recordKey);
        }
        catch (Exception e) when (e is KeelClientException or OperationCanceledException or ObjectDisposedException)
        {
            _logger.LogWarning(e, "keel: storing idempotency record {Key} failed; a retry will run the request again", recordKey);
        }
    }

    private async Task AnswerFromRecordAsync(HttpContext context, KeyValue? existing, string fingerprint)
    {
        IdempotencyRecord? record = null;
        if (existing is not null)
        {
            try
            {
                record = JsonSerializer.Deserialize(existing.ValueBytes.Span, IdempotencyJson.Default.IdempotencyRecord);
            }
            catch (JsonException)
            {
            }
        }
        if (record is null)
        {
            await ProblemAsync(context, StatusCodes.Status409Conflict, "Idempotency record unreadable",
                "The stored record for this key is not one this middleware wrote; use another key.").ConfigureAwait(false);
            return;
        }
        if (!string.Equals(record.Fingerprint, fingerprint, StringComparison.Ordinal))
        {
            await ProblemAsync(context, StatusCodes.Status422UnprocessableEntity, "Idempotency-Key reused",
                $"This {_options.HeaderName} was already used for a request with another method, path or body.").ConfigureAwait(false);
            return;
        }
        if (record.State == IdempotencyRecord.InFlight)
        {
            context.Response.Headers.RetryAfter = "1";
            await ProblemAsync(context, StatusCodes.Status409Conflict, "Request in progress",
                $"A request with this {_options.HeaderName} is still being processed; retry later.").ConfigureAwait(false);
            return;
        }
        context.Response.StatusCode = record.Status;
        foreach (var pair in record.Headers ?? []) context.Response.Headers.Append(pair[0], pair[1]);
        context.Response.Headers[_options.ReplayedHeaderName] = "true";
        if (record.BodyOmitted) context.Response.Headers["Idempotent-Replay-Body-Omitted"] = "true";
        var body = record.Body ?? [];
        context.Response.ContentLength = body.Length;
        if (body.Length > 0) await context.Response.Body.WriteAsync(body, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>A lease for completed records, shared by those completed within <see cref="_recordLeaseReuse"/> of its grant.</summary>
    private async Task<long> RecordLeaseAsync(CancellationToken cancellationToken)
    {
        await _recordLeaseGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var now = Stopwatch.GetTimestamp();
            if (_recordLease.Id != 0 && Stopwatch.GetElapsedTime(_recordLease.GrantedAt, now) < _recordLeaseReuse) return _recordLease.Id;
            // Not kept alive and not disposed: it expires with the records on it.
            var lease = await _client.GrantLeaseAsync(_options.ResponseTtl, keepAlive: false, cancellationToken).ConfigureAwait(false);
            _recordLease = (lease.Id, now);
            return lease.Id;
        }
        finally
        {
            _recordLeaseGate.Release();
        }
    }

    /// <summary>SHA-256 over method, path, query and body (buffered so the handler can read it again); null when the body is over the limit.</summary>
    private async Task<string?> FingerprintAsync(HttpContext context)
    {
        var request = context.Request;
        if (request.ContentLength > _options.MaxRequestBodyBytes) return null;
        request.EnableBuffering();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes($"{request.Method.ToUpperInvariant()} {request.PathBase}{request.Path}{request.QueryString}\n"));
        var buffer = new byte[16 * 1024];
        long total = 0;
        int read;
        while ((read = await request.Body.ReadAsync(buffer, context.RequestAborted).ConfigureAwait(false)) > 0)
        {
            total += read;
            if (total > _options.MaxRequestBodyBytes) return null;
            hash.AppendData(buffer, 0, read);
        }
        request.Body.Position = 0;
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private bool TryParseKey(string? raw, out string key)
    {
        key = (raw ?? "").Trim();
        // The draft's key is a structured-field string ("..."); a bare token is accepted too.
        if (key.Length >= 2 && key[0] == '"' && key[^1] == '"') key = key[1..^1];
        if (key.Length == 0 || key.Length > _options.MaxKeyLength) return false;
        foreach (var c in key)
            if (c is < ' ' or > '~') return false;
        return true;
    }

    private static Task ProblemAsync(HttpContext context, int status, string title, string detail) =>
        TypedResults.Problem(detail, statusCode: status, title: title).ExecuteAsync(context);
}

/// <summary>The stored form of an idempotency record: an in-flight marker or a completed response.</summary>
internal sealed class IdempotencyRecord
{
    public const string InFlight = "in-flight";
    public const string Done = "done";

    public string State { get; set; } = InFlight;

    public string Fingerprint { get; set; } = "";

    public int Status { get; set; }

    public string[][]? Headers { get; set; }

    public byte[]? Body { get; set; }

    public bool BodyOmitted { get; set; }
}

[JsonSerializable(typeof(IdempotencyRecord))]
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class IdempotencyJson : JsonSerializerContext;

/// <summary>Passes every write through to the response and keeps a copy of the first <c>limit</c> bytes.</summary>
internal sealed class CapturingStream(Stream inner, int limit) : Stream
{
    public MemoryStream Captured { get; } = new();

    public bool Overflowed { get; private set; }

    private void Keep(ReadOnlySpan<byte> data)
    {
        if (Overflowed) return;
        if (Captured.Length + data.Length > limit)
        {
            Overflowed = true;
            Captured.SetLength(0);
            return;
        }
        Captured.Write(data);
    }

    public override void Write(byte[] buffer, int offset, int count)
    {
        Keep(buffer.AsSpan(offset, count));
        inner.Write(buffer, offset, count);
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        Keep(buffer);
        inner.Write(buffer);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Keep(buffer.Span);
        return inner.WriteAsync(buffer, cancellationToken);
    }

    public override void Flush() => inner.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
