namespace Keel.Mvcc;

/// <summary>
/// One version of a key, as etcd's <c>mvccpb.KeyValue</c> (api/mvccpb/kv.proto): the key, the revision that created
/// its current generation, the revision of this version, the number of puts since creation, the value and the lease.
/// Immutable and shared between the index, the change log and responses, so reads never copy values.
/// </summary>
/// <param name="Key">The key (compared as unsigned bytes).</param>
/// <param name="CreateRevision">Revision of the put that created the key (its current generation); 0 in a DELETE event.</param>
/// <param name="ModRevision">Revision of the write that produced this version.</param>
/// <param name="Version">1 on create, +1 per put; 0 in a DELETE event.</param>
/// <param name="Value">The value; empty in a DELETE event or a keys-only read.</param>
/// <param name="Lease">The lease id attached to the key, 0 for none.</param>
public sealed record KeyValue(byte[] Key, long CreateRevision, long ModRevision, long Version, byte[] Value, long Lease)
{
    /// <summary>Content equality (records compare arrays by reference, which is not what tests and models need).</summary>
    public bool Equals(KeyValue? other) =>
        other is not null && CreateRevision == other.CreateRevision && ModRevision == other.ModRevision &&
        Version == other.Version && Lease == other.Lease &&
        Key.AsSpan().SequenceEqual(other.Key) && Value.AsSpan().SequenceEqual(other.Value);

    /// <summary>A hash consistent with <see cref="Equals(KeyValue?)"/>.</summary>
    public override int GetHashCode() => HashCode.Combine(ModRevision, Version, Key.Length, Value.Length);

    /// <summary>Readable form for test failures: key and value as escaped text.</summary>
    public override string ToString() =>
        $"{{key={KeyText.Show(Key)} create={CreateRevision} mod={ModRevision} ver={Version} value={KeyText.Show(Value)} lease={Lease}}}";
}

/// <summary>The kind of a change, as etcd's <c>mvccpb.Event.EventType</c>.</summary>
public enum EventType
{
    /// <summary>A put (create or update).</summary>
    Put = 0,

    /// <summary>A delete.</summary>
    Delete = 1,
}

/// <summary>
/// One change in the history, as etcd's <c>mvccpb.Event</c>: for a PUT the new version; for a DELETE a kv holding only
/// the key and mod_revision = the delete's revision (other fields 0); <see cref="PrevKv"/> the version before it.
/// </summary>
/// <param name="Type">PUT or DELETE.</param>
/// <param name="Kv">The version written (for DELETE: key and mod revision only).</param>
/// <param name="PrevKv">The version the change replaced, or null if the key did not exist.</param>
public sealed record WatchEvent(EventType Type, KeyValue Kv, KeyValue? PrevKv);
