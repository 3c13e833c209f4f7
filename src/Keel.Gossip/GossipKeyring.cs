using System.Security.Cryptography;
using Keel.Core;

namespace Keel.Gossip;

/// <summary>
/// The AES-256-GCM keys gossip packets are encrypted with, memberlist's keyring (<c>keyring.go</c>; Consul's
/// <c>consul keyring -install/-use/-remove/-list</c>): one primary key encrypts every packet sent, every installed key
/// is tried to decrypt a packet received. Rotation without downtime: install the new key everywhere (accepted, not
/// used), make it primary everywhere (used to encrypt; the old key still accepted), then remove the old key.
/// </summary>
/// <remarks>Pure computation (no I/O, no randomness: nonces come from <see cref="GossipSecureChannel"/>'s seam).</remarks>
public sealed class GossipKeyring : IDisposable
{
    /// <summary>Length of every key: AES-256.</summary>
    public const int KeyBytes = 32;

    /// <summary>Bytes of the GCM authentication tag.</summary>
    public const int TagBytes = 16;

    /// <summary>Bytes of the GCM nonce.</summary>
    public const int NonceBytes = 12;

    /// <summary>Most keys installed at once (a rotation needs two; the bound keeps decryption attempts few).</summary>
    public const int MaxKeys = 16;

    private readonly List<(byte[] Key, AesGcm Cipher)> _keys = []; // index 0 is the primary

    /// <summary>Creates a keyring whose primary key is <paramref name="primaryKey"/>.</summary>
    /// <exception cref="ArgumentException">The key is not <see cref="KeyBytes"/> long.</exception>
    public GossipKeyring(ReadOnlySpan<byte> primaryKey)
    {
        CheckKey(primaryKey);
        _keys.Add(Entry(primaryKey));
    }

    /// <summary>Creates a keyring from <paramref name="keys"/>, the first the primary (duplicates are ignored).</summary>
    /// <exception cref="ArgumentException">No key, more than <see cref="MaxKeys"/>, or a key not <see cref="KeyBytes"/> long.</exception>
    public GossipKeyring(IReadOnlyList<byte[]> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (keys.Count == 0) throw new ArgumentException("a keyring needs at least one key", nameof(keys));
        CheckKey(keys[0]);
        _keys.Add(Entry(keys[0]));
        for (var i = 1; i < keys.Count; i++) Install(keys[i]);
    }

    /// <summary>Installed keys, the primary included.</summary>
    public int Count => _keys.Count;

    /// <summary>Copies of the installed keys, the primary first.</summary>
    public IReadOnlyList<byte[]> Keys => _keys.ConvertAll(k => k.Key.ToArray());

    /// <summary>True when <paramref name="key"/> is installed.</summary>
    public bool Contains(ReadOnlySpan<byte> key) => IndexOf(key) >= 0;

    /// <summary>True when <paramref name="key"/> is the primary (encrypting) key.</summary>
    public bool IsPrimary(ReadOnlySpan<byte> key) => IndexOf(key) == 0;

    /// <summary>Installs a key that is accepted on receive but not used to encrypt. Installing twice is a no-op.</summary>
    /// <exception cref="ArgumentException">The key is not <see cref="KeyBytes"/> long.</exception>
    /// <exception cref="KeyringException">The keyring already holds <see cref="MaxKeys"/> keys.</exception>
    public void Install(ReadOnlySpan<byte> key)
    {
        CheckKey(key);
        if (IndexOf(key) >= 0) return;
        if (_keys.Count >= MaxKeys) throw new KeyringException($"the keyring already holds {MaxKeys} keys; remove one first");
        _keys.Add(Entry(key));
    }

    /// <summary>Makes an installed key the primary (encrypting) key; the old primary stays accepted.</summary>
    /// <exception cref="KeyringException">The key is not installed.</exception>
    public void UseAsPrimary(ReadOnlySpan<byte> key)
    {
        var index = IndexOf(key);
        if (index < 0) throw new KeyringException("cannot use a key that is not installed; install it first");
        var chosen = _keys[index];
        _keys.RemoveAt(index);
        _keys.Insert(0, chosen);
    }

    /// <summary>Removes a key; packets encrypted with it are then dropped.</summary>
    /// <exception cref="KeyringException">The key is the primary (switch the primary first) or is not installed.</exception>
    public void Remove(ReadOnlySpan<byte> key)
    {
        var index = IndexOf(key);
        if (index < 0) throw new KeyringException("cannot remove a key that is not installed");
        if (index == 0) throw new KeyringException("cannot remove the primary key; make another key primary first");
        _keys[index].Cipher.Dispose();
        _keys.RemoveAt(index);
    }

    /// <summary>
    /// Makes the keyring exactly <paramref name="keys"/> (the first the primary): how a host applies a keyring decided
    /// elsewhere (the replicated log, a reloaded key file). Checked first: an invalid list changes nothing.
    /// </summary>
    /// <exception cref="ArgumentException">No key, more than <see cref="MaxKeys"/>, or a key not <see cref="KeyBytes"/> long.</exception>
    public void ReplaceAll(IReadOnlyList<byte[]> keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (keys.Count == 0) throw new ArgumentException("a keyring needs at least one key", nameof(keys));
        if (keys.Count > MaxKeys) throw new ArgumentException($"a keyring holds at most {MaxKeys} keys", nameof(keys));
        foreach (var key in keys) CheckKey(key);
        var next = new List<(byte[] Key, AesGcm Cipher)>();
        foreach (var key in keys)
        {
            if (next.Any(k => k.Key.AsSpan().SequenceEqual(key))) continue;
            var index = IndexOf(key);
            next.Add(index >= 0 ? _keys[index] : Entry(key));
        }
        foreach (var old in _keys)
            if (!next.Any(k => ReferenceEquals(k.Cipher, old.Cipher))) old.Cipher.Dispose();
        _keys.Clear();
        _keys.AddRange(next);
    }

    /// <summary>Encrypts <paramref name="plaintext"/> under the primary key into <paramref name="ciphertext"/> (same length) and <paramref name="tag"/>.</summary>
    public void Encrypt(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag, ReadOnlySpan<byte> associatedData) =>
        _keys[0].Cipher.Encrypt(nonce, plaintext, ciphertext, tag, associatedData);

    /// <summary>
    /// Decrypts with each installed key, the primary first, until one authenticates; false (and
    /// <paramref name="plaintext"/> cleared) when none does: a wrong or removed key, or a changed byte.
    /// </summary>
    public bool TryDecrypt(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, ReadOnlySpan<byte> associatedData, Span<byte> plaintext)
    {
        if (nonce.Length != NonceBytes || tag.Length != TagBytes || plaintext.Length != ciphertext.Length) return false;
        foreach (var (_, cipher) in _keys)
        {
            try
            {
                cipher.Decrypt(nonce, ciphertext, tag, plaintext, associatedData);
                return true;
            }
            catch (AuthenticationTagMismatchException)
            {
                // Not this key (or tampered): try the next one. AesGcm clears the output on failure.
            }
        }
        return false;
    }

    /// <summary>Checks the keyring's invariants.</summary>
    public void AssertInvariants()
    {
        Invariant.Check(_keys.Count is >= 1 and <= MaxKeys, "a keyring has a primary key and at most MaxKeys keys");
        foreach (var k in _keys) Invariant.Check(k.Key.Length == KeyBytes, "installed keys are AES-256 keys");
    }

    /// <summary>Releases the ciphers.</summary>
    public void Dispose()
    {
        foreach (var (_, cipher) in _keys) cipher.Dispose();
    }

    /// <summary>Why <paramref name="key"/> cannot be a gossip key, or null when it can.</summary>
    public static string? Problem(ReadOnlySpan<byte> key) =>
        key.Length == KeyBytes ? null : $"gossip keys are AES-256 keys of {KeyBytes} bytes (e.g. `openssl rand -base64 32`), got {key.Length} bytes";

    private static (byte[], AesGcm) Entry(ReadOnlySpan<byte> key) => (key.ToArray(), new AesGcm(key, TagBytes));

    private int IndexOf(ReadOnlySpan<byte> key)
    {
        for (var i = 0; i < _keys.Count; i++)
            if (key.SequenceEqual(_keys[i].Key)) return i;
        return -1;
    }

    private static void CheckKey(ReadOnlySpan<byte> key)
    {
        if (Problem(key) is { } problem) throw new ArgumentException(problem, nameof(key));
    }
}

/// <summary>A keyring operation that would break encryption (removing the primary, using an unknown key).</summary>
public sealed class KeyringException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public KeyringException(string message) : base(message) { }
}
