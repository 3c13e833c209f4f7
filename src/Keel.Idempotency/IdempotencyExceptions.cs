namespace Keel.Idempotency;

/// <summary>An idempotency key broke the rules of <see cref="IdempotencyKey"/>: the request must be refused with INVALID_ARGUMENT.</summary>
public sealed class InvalidIdempotencyKeyException : ArgumentException
{
    /// <summary>Creates the exception with the reason the key was refused.</summary>
    public InvalidIdempotencyKeyException(string message) : base(message) { }
}

/// <summary>
/// A snapshot given to <see cref="IdempotencyTable.Restore(ReadOnlySpan{byte})"/> is corrupt, truncated, of an unknown
/// version, or describes a state the table could never reach. The snapshot must not be used.
/// </summary>
public sealed class IdempotencySnapshotException : FormatException
{
    /// <summary>Creates the exception with what was wrong with the snapshot.</summary>
    public IdempotencySnapshotException(string message) : base(message) { }

    /// <summary>Creates the exception with what was wrong with the snapshot and the error that revealed it.</summary>
    public IdempotencySnapshotException(string message, Exception inner) : base(message, inner) { }
}
