using System.Security.Cryptography;
using System.Text;

namespace Keel.Server.Security;

/// <summary>
/// The cluster secret of <c>--peer-secret-file</c>: a member dialing a peer proves it holds the secret by answering
/// the listener's random challenge with an HMAC-SHA256 over it (the secret itself never crosses the wire, and a
/// recorded answer is useless for another challenge). Every member must be given the same file.
/// </summary>
public sealed class PeerSecret
{
    /// <summary>The shortest secret accepted (128 bits).</summary>
    public const int MinBytes = 16;

    /// <summary>Bytes of a challenge.</summary>
    public const int ChallengeBytes = 16;

    /// <summary>Bytes of a proof.</summary>
    public const int ProofBytes = 32;

    private static readonly byte[] Label = Encoding.ASCII.GetBytes("keel peer hello v3");
    private readonly byte[] _key;

    private PeerSecret(byte[] key) => _key = key;

    /// <summary>
    /// Reads a secret file: its bytes with surrounding whitespace trimmed (so <c>openssl rand -base64 32 &gt; file</c>
    /// and an editor's trailing newline both work), at least <see cref="MinBytes"/> of them.
    /// </summary>
    /// <exception cref="ArgumentException">The file cannot be read or is too short.</exception>
    public static PeerSecret Load(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"--peer-secret-file: cannot read {path}: {exception.Message}", exception);
        }
        var trimmed = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(bytes).Trim());
        if (trimmed.Length < MinBytes)
            throw new ArgumentException($"--peer-secret-file: {path} holds {trimmed.Length} bytes; at least {MinBytes} are needed (e.g. `openssl rand -base64 32 > {path}`)");
        return new PeerSecret(trimmed);
    }

    /// <summary>A secret from bytes (tests, embedding).</summary>
    public static PeerSecret FromBytes(ReadOnlySpan<byte> key) =>
        key.Length >= MinBytes ? new PeerSecret(key.ToArray()) : throw new ArgumentException($"a peer secret needs at least {MinBytes} bytes");

    /// <summary>
    /// The proof for <paramref name="challenge"/> from member <paramref name="from"/> to <paramref name="to"/> in
    /// <paramref name="clusterId"/>: binding the ids means a proof cannot be replayed by another member or towards another.
    /// </summary>
    public void Prove(ReadOnlySpan<byte> challenge, ulong clusterId, ulong from, ulong to, Span<byte> proof)
    {
        Span<byte> message = stackalloc byte[Label.Length + ChallengeBytes + 24];
        Label.CopyTo(message);
        challenge[..ChallengeBytes].CopyTo(message[Label.Length..]);
        var ids = message[(Label.Length + ChallengeBytes)..];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(ids, clusterId);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(ids[8..], from);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(ids[16..], to);
        HMACSHA256.HashData(_key, message, proof);
    }

    /// <summary>True when <paramref name="proof"/> is the right answer (compared in constant time).</summary>
    public bool Verify(ReadOnlySpan<byte> challenge, ulong clusterId, ulong from, ulong to, ReadOnlySpan<byte> proof)
    {
        Span<byte> expected = stackalloc byte[ProofBytes];
        Prove(challenge, clusterId, from, to, expected);
        return CryptographicOperations.FixedTimeEquals(expected, proof);
    }
}
