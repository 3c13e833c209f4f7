using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Keel.Idempotency;

/// <summary>
/// A 256-bit digest of a request (SHA-256), stored with its idempotency key so that a retry with the same key but
/// different parameters is detected and refused (Stripe: "keys are compared with the original request's parameters";
/// IETF Idempotency-Key draft: 422 on a mismatched payload) instead of being answered with another request's response.
/// </summary>
/// <remarks>
/// Fingerprint everything that defines the operation and who asked for it (method, caller identity, payload) with
/// <see cref="Of(ReadOnlySpan{byte}, ReadOnlySpan{byte})"/>: if two clients can send the same key, a fingerprint that
/// leaves out the caller would hand one client the other's stored response. A cryptographic hash is used so a client
/// cannot craft a colliding payload; the cost (a few hundred nanoseconds for a small request) is paid once per request,
/// outside the table.
/// </remarks>
public readonly struct RequestFingerprint : IEquatable<RequestFingerprint>
{
    /// <summary>The size of a fingerprint in bytes.</summary>
    public const int SizeBytes = 32;

    private readonly ulong _w0, _w1, _w2, _w3;

    /// <summary>Builds a fingerprint from its four 64-bit words (big-endian order of the digest bytes).</summary>
    public RequestFingerprint(ulong word0, ulong word1, ulong word2, ulong word3)
    {
        _w0 = word0;
        _w1 = word1;
        _w2 = word2;
        _w3 = word3;
    }

    /// <summary>The SHA-256 of <paramref name="request"/>.</summary>
    public static RequestFingerprint Of(ReadOnlySpan<byte> request)
    {
        Span<byte> digest = stackalloc byte[SizeBytes];
        SHA256.HashData(request, digest);
        return FromBytes(digest);
    }

    /// <summary>
    /// The SHA-256 of <paramref name="scope"/> (method name, caller identity) followed by <paramref name="request"/>,
    /// with the scope's length in front so that ("ab", "c") and ("a", "bc") differ.
    /// </summary>
    public static RequestFingerprint Of(ReadOnlySpan<byte> scope, ReadOnlySpan<byte> request)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, scope.Length);
        hash.AppendData(length);
        hash.AppendData(scope);
        hash.AppendData(request);
        Span<byte> digest = stackalloc byte[SizeBytes];
        hash.GetHashAndReset(digest);
        return FromBytes(digest);
    }

    /// <summary>A fingerprint from a 32-byte digest the caller computed (for instance one carried in the request).</summary>
    /// <exception cref="ArgumentException"><paramref name="digest"/> is not exactly 32 bytes.</exception>
    public static RequestFingerprint FromBytes(ReadOnlySpan<byte> digest)
    {
        if (digest.Length != SizeBytes)
            throw new ArgumentException($"A request fingerprint is {SizeBytes} bytes; got {digest.Length}.", nameof(digest));
        return new RequestFingerprint(
            BinaryPrimitives.ReadUInt64BigEndian(digest),
            BinaryPrimitives.ReadUInt64BigEndian(digest[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(digest[16..]),
            BinaryPrimitives.ReadUInt64BigEndian(digest[24..]));
    }

    /// <summary>Writes the 32 digest bytes to <paramref name="destination"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than 32 bytes.</exception>
    public void WriteTo(Span<byte> destination)
    {
        if (destination.Length < SizeBytes)
            throw new ArgumentException($"Need {SizeBytes} bytes to write a fingerprint; got {destination.Length}.", nameof(destination));
        BinaryPrimitives.WriteUInt64BigEndian(destination, _w0);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], _w1);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], _w2);
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], _w3);
    }

    /// <inheritdoc />
    public bool Equals(RequestFingerprint other) =>
        _w0 == other._w0 && _w1 == other._w1 && _w2 == other._w2 && _w3 == other._w3;

    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is RequestFingerprint other && Equals(other);

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(_w0, _w1, _w2, _w3);

    /// <summary>The digest as 64 lowercase hexadecimal digits.</summary>
    public override string ToString()
    {
        Span<byte> digest = stackalloc byte[SizeBytes];
        WriteTo(digest);
        return Convert.ToHexStringLower(digest);
    }

    /// <summary>True when both fingerprints have the same digest.</summary>
    public static bool operator ==(RequestFingerprint left, RequestFingerprint right) => left.Equals(right);

    /// <summary>True when the fingerprints differ.</summary>
    public static bool operator !=(RequestFingerprint left, RequestFingerprint right) => !left.Equals(right);
}
