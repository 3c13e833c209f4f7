namespace Keel.Mvcc;

/// <summary>
/// One version of a key, as etcd's <c>mvccpb.KeyValue</c> (api/mvccpb/kv.proto): the key, the revision that created
/// its current generation, the revision of this version, the number of puts since creation, the value and the lease.
/// Immutable and shared between the index, the change log and responses, so reads never copy what they do not hand out.
/// </summary>
/// <remarks>
/// The value is either an array of its own (a version made with the public constructor) or a slice of a
/// <see cref="ValueSegment"/> (a store given a <see cref="ValueSegmentSource"/> copies every value into one, so a million
/// values are not a million arrays on the GC heap). <see cref="ValueSpan"/> reads either without copying;
/// <see cref="Value"/> copies a segment's slice into a new array on every call, so code inside the store reads spans.
/// </remarks>
public sealed record KeyValue
{
    // A byte[] (the value itself) or a ValueSegment (the value is _valueLength bytes at _valueOffset in it).
    private readonly object _value;
    private readonly int _valueOffset;
    private readonly int _valueLength;

    /// <summary>A version holding its value in an array of its own.</summary>
    /// <param name="Key">The key (compared as unsigned bytes).</param>
    /// <param name="CreateRevision">Revision of the put that created the key (its current generation); 0 in a DELETE event.</param>
    /// <param name="ModRevision">Revision of the write that produced this version.</param>
    /// <param name="Version">1 on create, +1 per put; 0 in a DELETE event.</param>
    /// <param name="Value">The value; empty in a DELETE event or a keys-only read.</param>
    /// <param name="Lease">The lease id attached to the key, 0 for none.</param>
    public KeyValue(byte[] Key, long CreateRevision, long ModRevision, long Version, byte[] Value, long Lease)
    {
        ArgumentNullException.ThrowIfNull(Value);
        this.Key = Key;
        this.CreateRevision = CreateRevision;
        this.ModRevision = ModRevision;
        this.Version = Version;
        this.Lease = Lease;
        _value = Value;
        _valueLength = Value.Length;
    }

    /// <summary>A version whose value is <paramref name="length"/> bytes at <paramref name="offset"/> of <paramref name="segment"/>.</summary>
    internal KeyValue(byte[] key, long createRevision, long modRevision, long version, ValueSegment segment, int offset, int length, long lease)
    {
        Key = key;
        CreateRevision = createRevision;
        ModRevision = modRevision;
        Version = version;
        Lease = lease;
        _value = segment;
        _valueOffset = offset;
        _valueLength = length;
    }

    /// <summary>The key (compared as unsigned bytes).</summary>
    public byte[] Key { get; init; }

    /// <summary>Revision of the put that created the key (its current generation); 0 in a DELETE event.</summary>
    public long CreateRevision { get; init; }

    /// <summary>Revision of the write that produced this version.</summary>
    public long ModRevision { get; init; }

    /// <summary>1 on create, +1 per put; 0 in a DELETE event.</summary>
    public long Version { get; init; }

    /// <summary>The lease id attached to the key, 0 for none.</summary>
    public long Lease { get; init; }

    /// <summary>
    /// The value; empty in a DELETE event or a keys-only read. A value held in a segment is copied into a new array on
    /// every call (use <see cref="ValueSpan"/> to read it in place).
    /// </summary>
    public byte[] Value
    {
        get
        {
            if (_value is byte[] array) return array;
            var segment = (ValueSegment)_value;
            var copy = segment.Read(_valueOffset, _valueLength).ToArray();
            // The segment's memory may be a file mapping that is unmapped once the segment is unreachable.
            GC.KeepAlive(segment);
            return copy;
        }
        init
        {
            ArgumentNullException.ThrowIfNull(value);
            _value = value;
            _valueOffset = 0;
            _valueLength = value.Length;
        }
    }

    /// <summary>
    /// The value, read where it is held (safe on any thread). A segment's memory may be a file mapping that is unmapped
    /// once nothing refers to the segment, so the span is valid while this version is reachable: a caller that holds it
    /// only through the span keeps it alive (<see cref="GC.KeepAlive"/>) until done.
    /// </summary>
    public ReadOnlySpan<byte> ValueSpan => _value is byte[] array ? array : ((ValueSegment)_value).Read(_valueOffset, _valueLength);

    /// <summary>The value's length in bytes.</summary>
    public int ValueLength => _valueLength;

    /// <summary>The segment holding the value, or null when it is an array of its own.</summary>
    internal ValueSegment? Segment => _value as ValueSegment;

    /// <summary>Content equality (records compare arrays by reference, which is not what tests and models need).</summary>
    public bool Equals(KeyValue? other) =>
        other is not null && CreateRevision == other.CreateRevision && ModRevision == other.ModRevision &&
        Version == other.Version && Lease == other.Lease &&
        Key.AsSpan().SequenceEqual(other.Key) && SameValue(this, other);

    private static bool SameValue(KeyValue a, KeyValue b)
    {
        var same = a.ValueSpan.SequenceEqual(b.ValueSpan);
        GC.KeepAlive(a);
        GC.KeepAlive(b);
        return same;
    }

    /// <summary>A hash consistent with <see cref="Equals(KeyValue?)"/>.</summary>
    public override int GetHashCode() => HashCode.Combine(ModRevision, Version, Key.Length, ValueLength);

    /// <summary>Readable form for test failures: key and value as escaped text.</summary>
    public override string ToString() =>
        $"{{key={KeyText.Show(Key)} create={CreateRevision} mod={ModRevision} ver={Version} value={KeyText.Show(ValueSpan)} lease={Lease}}}";
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
