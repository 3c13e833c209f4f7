namespace Keel.Idempotency;

/// <summary>What <see cref="IdempotencyTable.Claim(string, RequestFingerprint, long)"/> found for a key.</summary>
/// <remarks>gRPC mapping (see <see cref="ClaimOutcomeExtensions.ToGrpcStatusCode"/>) follows the IETF Idempotency-Key draft's HTTP codes.</remarks>
public enum ClaimOutcome : byte
{
    /// <summary>The key was unknown (or its entry had expired): the claim is now recorded as in flight and the caller must execute the request, then call Complete or Release.</summary>
    New = 0,

    /// <summary>The same key and fingerprint is being executed and has not completed: answer ABORTED (HTTP 409), the client retries later.</summary>
    InFlight = 1,

    /// <summary>The same key and fingerprint already completed: replay <see cref="ClaimResult.Response"/>, do not execute again.</summary>
    Completed = 2,

    /// <summary>The key is in use by a request with a different fingerprint: answer FAILED_PRECONDITION (HTTP 422); the key was reused for another request.</summary>
    Mismatch = 3,

    /// <summary>The table is at its entry limit and every entry is in flight, so nothing may be evicted safely: answer RESOURCE_EXHAUSTED and do not execute.</summary>
    TableFull = 4,
}

/// <summary>The gRPC status a server answers with for each <see cref="ClaimOutcome"/>.</summary>
public static class ClaimOutcomeExtensions
{
    /// <summary>gRPC code ABORTED.</summary>
    public const int GrpcAborted = 10;

    /// <summary>gRPC code FAILED_PRECONDITION.</summary>
    public const int GrpcFailedPrecondition = 9;

    /// <summary>gRPC code RESOURCE_EXHAUSTED.</summary>
    public const int GrpcResourceExhausted = 8;

    /// <summary>
    /// The gRPC status code to answer with, or null when the request proceeds: <see cref="ClaimOutcome.New"/> (execute)
    /// and <see cref="ClaimOutcome.Completed"/> (replay the stored status and body).
    /// </summary>
    public static int? ToGrpcStatusCode(this ClaimOutcome outcome) => outcome switch
    {
        ClaimOutcome.InFlight => GrpcAborted,
        ClaimOutcome.Mismatch => GrpcFailedPrecondition,
        ClaimOutcome.TableFull => GrpcResourceExhausted,
        _ => null,
    };
}

/// <summary>
/// The answer to a claim: a small struct, so a claim that hits a completed entry allocates nothing (the stored body is
/// returned as a read-only view of the table's copy).
/// </summary>
public readonly struct ClaimResult
{
    private readonly StoredResponse _response;

    internal ClaimResult(ClaimOutcome outcome, long expiresAtMs, StoredResponse response = default)
    {
        Outcome = outcome;
        ExpiresAtMs = expiresAtMs;
        _response = response;
    }

    /// <summary>What the table found.</summary>
    public ClaimOutcome Outcome { get; }

    /// <summary>
    /// When the entry the answer is about stops being remembered, in committed milliseconds: for New and InFlight the
    /// end of the in-flight window, for Completed and Mismatch the end of the entry's window, for TableFull the
    /// earliest moment an in-flight claim can expire and free a slot. Useful as a retry-after hint.
    /// </summary>
    public long ExpiresAtMs { get; }

    /// <summary>True only for <see cref="ClaimOutcome.New"/>: the caller owns the claim and must execute the request.</summary>
    public bool ShouldExecute => Outcome == ClaimOutcome.New;

    /// <summary>The stored response to replay.</summary>
    /// <exception cref="InvalidOperationException">The outcome is not <see cref="ClaimOutcome.Completed"/>.</exception>
    public StoredResponse Response =>
        Outcome == ClaimOutcome.Completed
            ? _response
            : throw new InvalidOperationException($"A claim with outcome {Outcome} has no stored response; only Completed does.");

    /// <inheritdoc />
    public override string ToString() => $"{Outcome} (expires at {ExpiresAtMs} ms)";
}
