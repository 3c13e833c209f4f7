namespace Keel.Idempotency;

/// <summary>What <see cref="IdempotencyTable.Complete(string, RequestFingerprint, StoredResponse, long)"/> did.</summary>
public enum CompleteOutcome : byte
{
    /// <summary>The in-flight claim now holds the response, which later claims replay for the completed window.</summary>
    Completed = 0,

    /// <summary>The key had already completed; the first response is kept and returned in <see cref="CompleteResult.StoredResponse"/>, the new one is dropped.</summary>
    AlreadyCompleted = 1,

    /// <summary>
    /// No live claim exists for the key: it was never claimed, was released, expired (the in-flight window passed), or
    /// was evicted. The response is not stored. An executor that sees this must assume a retry may run the request again.
    /// </summary>
    UnknownClaim = 2,

    /// <summary>The key is held by a request with a different fingerprint; nothing changed.</summary>
    Mismatch = 3,

    /// <summary>
    /// The body is larger than <see cref="IdempotencyOptions.MaxResponseBytesPerEntry"/>; nothing changed and the claim
    /// stays in flight. Complete again with a smaller response (for instance an error status with an empty body).
    /// </summary>
    ResponseTooLarge = 4,
}

/// <summary>The answer to a completion.</summary>
public readonly struct CompleteResult
{
    private readonly StoredResponse _stored;

    internal CompleteResult(CompleteOutcome outcome, long expiresAtMs, StoredResponse stored = default)
    {
        Outcome = outcome;
        ExpiresAtMs = expiresAtMs;
        _stored = stored;
    }

    /// <summary>What the table did.</summary>
    public CompleteOutcome Outcome { get; }

    /// <summary>For Completed and AlreadyCompleted, when the stored response stops being replayed (committed milliseconds); otherwise 0.</summary>
    public long ExpiresAtMs { get; }

    /// <summary>The response the table holds for the key.</summary>
    /// <exception cref="InvalidOperationException">The outcome is neither Completed nor AlreadyCompleted.</exception>
    public StoredResponse StoredResponse =>
        Outcome is CompleteOutcome.Completed or CompleteOutcome.AlreadyCompleted
            ? _stored
            : throw new InvalidOperationException($"A completion with outcome {Outcome} has no stored response.");

    /// <inheritdoc />
    public override string ToString() => $"{Outcome} (expires at {ExpiresAtMs} ms)";
}

/// <summary>What <see cref="IdempotencyTable.Release(string, RequestFingerprint, long)"/> did.</summary>
public enum ReleaseOutcome : byte
{
    /// <summary>The in-flight claim was removed; the next claim with the key is New and executes.</summary>
    Released = 0,

    /// <summary>The key had completed; completed entries are never released (that would allow a second execution).</summary>
    AlreadyCompleted = 1,

    /// <summary>No live claim exists for the key (never claimed, already released, expired or evicted).</summary>
    UnknownClaim = 2,

    /// <summary>The key is held by a request with a different fingerprint; nothing changed.</summary>
    Mismatch = 3,
}
