namespace Keel.Idempotency;

/// <summary>
/// The outcome of a completed request as the table keeps it: a status code and opaque response bytes. Errors are
/// stored and replayed like successes (Stripe replays "the same result, including 500 errors"), so a retry never
/// re-executes an operation that already ran and failed.
/// </summary>
/// <remarks>
/// The table copies the body when it stores it; the <see cref="Body"/> it hands back is a read-only view of that copy,
/// so replaying a response allocates nothing. Do not cast it back to a writable array.
/// </remarks>
public readonly struct StoredResponse
{
    /// <summary>Creates a response from a status code (gRPC, HTTP or the server's own) and the response bytes.</summary>
    public StoredResponse(int statusCode, ReadOnlyMemory<byte> body)
    {
        StatusCode = statusCode;
        Body = body;
    }

    /// <summary>The status the first execution ended with; replayed as is, errors included.</summary>
    public int StatusCode { get; }

    /// <summary>The response bytes of the first execution.</summary>
    public ReadOnlyMemory<byte> Body { get; }
}
