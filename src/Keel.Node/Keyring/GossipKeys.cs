namespace Keel.Node.Keyring;

/// <summary>What a <see cref="KeyringChange"/> does (memberlist's keyring operations, plus the bootstrap).</summary>
public enum KeyringAction : byte
{
    /// <summary>Sets the keyring when it is empty (the first server to lead a new cluster proposes it); a no-op otherwise.</summary>
    Initialize = 1,

    /// <summary>Adds a key that is accepted on receive but does not encrypt.</summary>
    Install = 2,

    /// <summary>Makes an installed key the primary (encrypting) key.</summary>
    Use = 3,

    /// <summary>Removes a key that is not the primary.</summary>
    Remove = 4,
}

/// <summary>A change of the replicated gossip keyring, proposed through the Raft log so every server applies it in log order.</summary>
/// <param name="Action">What to do.</param>
/// <param name="Keys">The key (Install, Use, Remove) or the whole keyring, primary first (Initialize).</param>
public sealed record KeyringChange(KeyringAction Action, IReadOnlyList<byte[]> Keys);

/// <summary>
/// The gossip keyring as the replicated state machine holds it: AES-256 keys, the primary first, empty until a leader
/// initializes it (from <c>--gossip-key-file</c> or a key the host generated). An immutable value with a pure
/// transition function, as the auth store: every server applies the same changes in the same order and ends with the
/// same keys, so a rotation through <c>keel keyring</c> reaches every server, including one that was down (it catches
/// up from the log or a snapshot).
/// </summary>
public sealed class GossipKeys
{
    /// <summary>Bytes of a key (AES-256).</summary>
    public const int KeyBytes = 32;

    /// <summary>Most keys at once (memberlist has no bound; this one keeps every packet's decryption attempts few).</summary>
    public const int MaxKeys = 16;

    private readonly byte[][] _keys;

    private GossipKeys(byte[][] keys) => _keys = keys;

    /// <summary>No keyring yet.</summary>
    public static GossipKeys Empty { get; } = new([]);

    /// <summary>The keys, primary first (copies).</summary>
    public IReadOnlyList<byte[]> Keys => Array.ConvertAll(_keys, k => k.ToArray());

    /// <summary>True before initialization.</summary>
    public bool IsEmpty => _keys.Length == 0;

    /// <summary>The primary key (a copy), or null when empty.</summary>
    public byte[]? Primary => _keys.Length == 0 ? null : _keys[0].ToArray();

    /// <summary>True when both hold the same keys in the same order.</summary>
    public bool SameAs(GossipKeys other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return _keys.Length == other._keys.Length && _keys.Zip(other._keys).All(p => p.First.AsSpan().SequenceEqual(p.Second));
    }

    /// <summary>Why <paramref name="change"/> cannot apply to this keyring, or null when it can (checked before proposing and again at apply).</summary>
    public string? Refusal(KeyringChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        if (!Enum.IsDefined(change.Action)) return $"keel: unknown keyring action {(byte)change.Action}";
        if (change.Keys.Count == 0) return "keel: a keyring change needs a key";
        if (change.Keys.Count > MaxKeys) return $"keel: a gossip keyring holds at most {MaxKeys} keys";
        foreach (var key in change.Keys)
            if (key.Length != KeyBytes) return $"keel: gossip keys are AES-256 keys of {KeyBytes} bytes (base64 of 32 random bytes, e.g. `openssl rand -base64 32`), got {key.Length} bytes";
        if (change.Action != KeyringAction.Initialize && change.Keys.Count != 1) return "keel: install, use and remove take one key";
        var index = IndexOf(change.Keys[0]);
        return change.Action switch
        {
            KeyringAction.Initialize => null,
            KeyringAction.Install when IsEmpty => "keel: the gossip keyring is not initialized yet (no leader has proposed it)",
            KeyringAction.Install when index < 0 && _keys.Length >= MaxKeys => $"keel: the gossip keyring already holds {MaxKeys} keys; remove one first",
            KeyringAction.Use when index < 0 => "keel: cannot use a gossip key that is not installed; install it first",
            KeyringAction.Remove when index < 0 => "keel: cannot remove a gossip key that is not installed",
            KeyringAction.Remove when index == 0 => "keel: cannot remove the primary gossip key; make another key primary first",
            _ => null,
        };
    }

    /// <summary>The keyring after <paramref name="change"/>, or the refusal (and this keyring unchanged). Never throws.</summary>
    public (GossipKeys Next, string? Refusal) Apply(KeyringChange change)
    {
        if (Refusal(change) is { } refusal) return (this, refusal);
        var key = change.Keys[0];
        var index = IndexOf(key);
        switch (change.Action)
        {
            case KeyringAction.Initialize:
                if (!IsEmpty) return (this, null);
                var distinct = new List<byte[]>();
                foreach (var k in change.Keys)
                    if (!distinct.Any(d => d.AsSpan().SequenceEqual(k))) distinct.Add(k.ToArray());
                return (new GossipKeys([.. distinct]), null);
            case KeyringAction.Install:
                return index >= 0 ? (this, null) : (new GossipKeys([.. _keys, key.ToArray()]), null);
            case KeyringAction.Use:
                return (new GossipKeys([_keys[index], .. _keys.Where((_, i) => i != index)]), null);
            default:
                return (new GossipKeys([.. _keys.Where((_, i) => i != index)]), null);
        }
    }

    /// <summary>Writes the keyring (a count, then the keys) into a node snapshot.</summary>
    public void WriteTo(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write((byte)_keys.Length);
        foreach (var key in _keys) writer.Write(key);
    }

    /// <summary>Reads <see cref="WriteTo"/>'s bytes.</summary>
    /// <exception cref="InvalidCommandException">The bytes are not a keyring.</exception>
    public static GossipKeys ReadFrom(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var count = reader.ReadByte();
        if (count > MaxKeys) throw new InvalidCommandException($"a gossip keyring of {count} keys in a node snapshot (at most {MaxKeys})");
        var keys = new byte[count][];
        for (var i = 0; i < count; i++)
        {
            keys[i] = reader.ReadBytes(KeyBytes);
            if (keys[i].Length != KeyBytes) throw new EndOfStreamException("a gossip key cut short in a node snapshot");
        }
        return new GossipKeys(keys);
    }

    private int IndexOf(byte[] key)
    {
        for (var i = 0; i < _keys.Length; i++)
            if (_keys[i].AsSpan().SequenceEqual(key)) return i;
        return -1;
    }
}
