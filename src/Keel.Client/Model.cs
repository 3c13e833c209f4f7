using System.Text;
using Google.Protobuf;
using Proto = Keel.Protocol.Etcd.Mvccpb;

namespace Keel.Client;

/// <summary>A key's value at one revision, with etcd's bookkeeping (revisions are the cluster-wide change counter).</summary>
public sealed record KeyValue(ReadOnlyMemory<byte> KeyBytes, ReadOnlyMemory<byte> ValueBytes, long CreateRevision, long ModRevision, long Version, long Lease)
{
    /// <summary>The key as UTF-8 text.</summary>
    public string Key => Encoding.UTF8.GetString(KeyBytes.Span);

    /// <summary>The value as UTF-8 text.</summary>
    public string Value => Encoding.UTF8.GetString(ValueBytes.Span);

    internal static KeyValue From(Proto.KeyValue kv) =>
        new(kv.Key.Memory, kv.Value.Memory, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease);

    internal static KeyValue? FromOrNull(Proto.KeyValue? kv) => kv is null ? null : From(kv);
}

/// <summary>How to read: at which revision or wall-clock time, how many keys, from which member.</summary>
public sealed record ReadOptions
{
    /// <summary>Read the store as of this revision (0 = newest). Fails with OutOfRange once compacted.</summary>
    public long Revision { get; init; }

    /// <summary>Read the store as it was at this wall-clock instant (Keel's <c>keel.v1.ReadAt</c>; not on etcd). Excludes <see cref="Revision"/>.</summary>
    public DateTimeOffset? AsOf { get; init; }

    /// <summary>At most this many keys (0 = no limit); <see cref="RangeResult.More"/> says whether more exist.</summary>
    public long Limit { get; init; }

    /// <summary>Keys and metadata only, no values.</summary>
    public bool KeysOnly { get; init; }

    /// <summary>Answer from the member's local copy without a quorum round: faster, possibly stale (etcd's serializable read).</summary>
    public bool Serializable { get; init; }
}

/// <summary>The answer to a range read.</summary>
/// <param name="Kvs">The keys found, in key order.</param>
/// <param name="Revision">The store revision the read saw.</param>
/// <param name="More">More keys exist beyond <see cref="ReadOptions.Limit"/>.</param>
/// <param name="Count">How many keys the range holds.</param>
public sealed record RangeResult(IReadOnlyList<KeyValue> Kvs, long Revision, bool More, long Count);

/// <summary>The answer to a Put.</summary>
/// <param name="Revision">The revision the put created.</param>
/// <param name="PrevKv">The previous value, when asked for.</param>
public sealed record PutResult(long Revision, KeyValue? PrevKv);

/// <summary>The answer to a Delete.</summary>
/// <param name="Revision">The store revision after the delete.</param>
/// <param name="Deleted">How many keys were deleted.</param>
/// <param name="PrevKvs">The deleted values, when asked for.</param>
public sealed record DeleteResult(long Revision, long Deleted, IReadOnlyList<KeyValue> PrevKvs);

/// <summary>What a watch event reports.</summary>
public enum WatchEventType
{
    /// <summary>A key was created or its value changed.</summary>
    Put,

    /// <summary>A key was deleted (or its lease expired).</summary>
    Delete,
}

/// <summary>One change seen by a watch.</summary>
/// <param name="Type">Put or delete.</param>
/// <param name="Kv">The key after the change (for a delete: the key with <see cref="KeyValue.ModRevision"/> of the delete).</param>
/// <param name="PrevKv">The key before the change, when the watch asked for it.</param>
public sealed record WatchEvent(WatchEventType Type, KeyValue Kv, KeyValue? PrevKv)
{
    /// <summary>The revision of the change; a resumed watch continues after the last one it delivered.</summary>
    public long Revision => Kv.ModRevision;

    internal static WatchEvent From(Proto.Event e) =>
        new(e.Type == Proto.Event.Types.EventType.Delete ? WatchEventType.Delete : WatchEventType.Put, KeyValue.From(e.Kv), KeyValue.FromOrNull(e.PrevKv));
}

/// <summary>What to watch and from where.</summary>
public sealed record WatchOptions
{
    /// <summary>Watch every key that starts with the given key.</summary>
    public bool Prefix { get; init; }

    /// <summary>Deliver changes from this revision on (0 = changes after the watch starts).</summary>
    public long StartRevision { get; init; }

    /// <summary>Include each key's previous value in its events.</summary>
    public bool PrevKv { get; init; }
}

/// <summary>One change in Keel's change feed, with the wall-clock time of its revision.</summary>
/// <param name="Event">The change.</param>
/// <param name="At">The hybrid-clock wall time of the revision.</param>
public sealed record TimedChange(WatchEvent Event, DateTimeOffset At);

/// <summary>Key encoding helpers.</summary>
internal static class Keys
{
    public static ByteString Of(string key) => ByteString.CopyFromUtf8(key);

    /// <summary>etcd's range end for "every key with this prefix": the prefix with its last byte below 0xff incremented.</summary>
    public static ByteString PrefixEnd(string prefix)
    {
        var bytes = Encoding.UTF8.GetBytes(prefix);
        for (var i = bytes.Length - 1; i >= 0; i--)
        {
            if (bytes[i] < 0xff)
            {
                bytes[i]++;
                return ByteString.CopyFrom(bytes, 0, i + 1);
            }
        }
        // All 0xff (or empty): every key from here on.
        return ByteString.CopyFrom(0);
    }
}

/// <summary>
/// One member of a Keel cluster as a server sees it (<c>keel.v1.Members</c>): the Raft members (servers) and the
/// gossip-only agents, with the answering server's gossip view and phi-accrual verdict. Keel only.
/// </summary>
/// <param name="Id">The member id (a server's Raft id, or an agent's gossip id).</param>
/// <param name="Name">The member's name (empty for an agent).</param>
/// <param name="Role"><c>server</c> or <c>agent</c> (empty when gossip has not heard of it).</param>
/// <param name="IsRaftMember">Whether it is a voter or learner of the Raft group.</param>
/// <param name="IsLeader">Whether it is the Raft leader.</param>
/// <param name="GossipAddress">Its gossip (UDP) address, or empty.</param>
/// <param name="GossipState"><c>alive</c>, <c>suspect</c>, <c>dead</c> or <c>left</c> (SWIM), or empty.</param>
/// <param name="Health"><c>healthy</c>, <c>suspect</c> or <c>failed</c> (phi-accrual), or empty.</param>
/// <param name="Zone">Its zone tag.</param>
/// <param name="Phi">The current suspicion level.</param>
public sealed record ClusterMember(ulong Id, string Name, string Role, bool IsRaftMember, bool IsLeader, string GossipAddress, string GossipState,
    string Health, string Zone, double Phi)
{
    /// <summary>Gossip or the failure detector says it is gone: dead, left, or failed.</summary>
    public bool IsDown => GossipState is "dead" or "left" || Health == "failed";
}
