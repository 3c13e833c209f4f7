using System.Security.Cryptography;
using Keel.Core;

namespace Keel.Gossip;

/// <summary>
/// The shared secret keys gossip messages are authenticated with (HMAC-SHA256). Rotation without downtime follows
/// memberlist's keyring (<c>keyring.go</c>, <c>serf keys install/use/remove</c>): install the new key everywhere (it is
/// accepted but not used), make it primary everywhere (used to sign; old key still accepted), then remove the old key.
/// Messages are always signed with the primary and verified against every installed key.
/// </summary>
public sealed class GossipKeyring
{
    /// <summary>Smallest accepted key length (HMAC-SHA256 key of 128 bits).</summary>
    public const int MinKeyBytes = 16;

    /// <summary>Bytes of the authentication tag: HMAC-SHA256 truncated to 128 bits (RFC 4868, HMAC-SHA-256-128).</summary>
    public const int TagBytes = 16;

    private readonly List<byte[]> _keys = []; // index 0 is the primary

    /// <summary>Creates a keyring whose primary key is <paramref name="primaryKey"/>.</summary>
    /// <exception cref="ArgumentException">The key is shorter than <see cref="MinKeyBytes"/>.</exception>
    public GossipKeyring(ReadOnlySpan<byte> primaryKey)
    {
        CheckKey(primaryKey);
        _keys.Add(primaryKey.ToArray());
    }

    /// <summary>Installed keys, the primary included.</summary>
    public int Count => _keys.Count;

    /// <summary>True when <paramref name="key"/> is installed.</summary>
    public bool Contains(ReadOnlySpan<byte> key) => IndexOf(key) >= 0;

    /// <summary>True when <paramref name="key"/> is the primary (signing) key.</summary>
    public bool IsPrimary(ReadOnlySpan<byte> key) => IndexOf(key) == 0;

    /// <summary>Installs a key that is accepted on receive but not used to sign. Installing twice is a no-op.</summary>
    /// <exception cref="ArgumentException">The key is shorter than <see cref="MinKeyBytes"/>.</exception>
    public void Install(ReadOnlySpan<byte> key)
    {
        CheckKey(key);
        if (IndexOf(key) < 0) _keys.Add(key.ToArray());
    }

    /// <summary>Makes an installed key the primary (signing) key; the old primary stays accepted.</summary>
    /// <exception cref="KeyringException">The key is not installed.</exception>
    public void UseAsPrimary(ReadOnlySpan<byte> key)
    {
        var index = IndexOf(key);
        if (index < 0) throw new KeyringException("cannot use a key that is not installed; install it first");
        var chosen = _keys[index];
        _keys.RemoveAt(index);
        _keys.Insert(0, chosen);
    }

    /// <summary>Removes a key; messages signed with it are then rejected.</summary>
    /// <exception cref="KeyringException">The key is the primary (switch the primary first) or is not installed.</exception>
    public void Remove(ReadOnlySpan<byte> key)
    {
        var index = IndexOf(key);
        if (index < 0) throw new KeyringException("cannot remove a key that is not installed");
        if (index == 0) throw new KeyringException("cannot remove the primary key; make another key primary first");
        _keys.RemoveAt(index);
    }

    /// <summary>Writes the tag of <paramref name="data"/> under the primary key.</summary>
    public void Sign(ReadOnlySpan<byte> data, Span<byte> tag)
    {
        Span<byte> full = stackalloc byte[HMACSHA256.HashSizeInBytes];
        HMACSHA256.HashData(_keys[0], data, full);
        full[..TagBytes].CopyTo(tag);
    }

    /// <summary>True when <paramref name="tag"/> is the tag of <paramref name="data"/> under any installed key (constant-time compare).</summary>
    public bool Verify(ReadOnlySpan<byte> data, ReadOnlySpan<byte> tag)
    {
        if (tag.Length != TagBytes) return false;
        Span<byte> full = stackalloc byte[HMACSHA256.HashSizeInBytes];
        var ok = false;
        foreach (var key in _keys)
        {
            HMACSHA256.HashData(key, data, full);
            ok |= CryptographicOperations.FixedTimeEquals(full[..TagBytes], tag);
        }
        return ok;
    }

    /// <summary>Checks the keyring's invariants.</summary>
    public void AssertInvariants()
    {
        Invariant.Check(_keys.Count >= 1, "a keyring always has a primary key");
        foreach (var k in _keys) Invariant.Check(k.Length >= MinKeyBytes, "installed keys are long enough");
    }

    private int IndexOf(ReadOnlySpan<byte> key)
    {
        for (var i = 0; i < _keys.Count; i++)
            if (key.SequenceEqual(_keys[i])) return i;
        return -1;
    }

    private static void CheckKey(ReadOnlySpan<byte> key)
    {
        if (key.Length < MinKeyBytes) throw new ArgumentException($"gossip keys must be at least {MinKeyBytes} bytes, got {key.Length}", nameof(key));
    }
}

/// <summary>A keyring operation that would break authentication (removing the primary, using an unknown key).</summary>
public sealed class KeyringException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public KeyringException(string message) : base(message) { }
}
