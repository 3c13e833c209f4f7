using Keel.Core;

namespace Keel.Gossip;

/// <summary>
/// Updates waiting to be piggybacked (memberlist's <c>TransmitLimitedQueue</c>): each is sent at most
/// lambda x ceil(log10(N + 1)) times, the least-sent first (newest first among equals), and a newer update about a member
/// replaces the queued one, so churn cannot grow the queue beyond one entry per member.
/// </summary>
public sealed class BroadcastQueue
{
    private readonly List<Entry> _entries = [];
    private readonly Dictionary<ulong, Entry> _byMember = [];
    private long _nextOrder;

    private sealed class Entry
    {
        public MemberUpdate Update;
        public int Transmits;
        public long Order;
        public int Size;
        public bool Replaced;
    }

    /// <summary>Updates queued.</summary>
    public int Count => _byMember.Count;

    /// <summary>Total transmissions handed out.</summary>
    public long TransmissionsSent { get; private set; }

    /// <summary>The retransmission limit for a cluster of <paramref name="memberCount"/>.</summary>
    public static int RetransmitLimit(int multiplier, int memberCount) =>
        multiplier * (int)Math.Ceiling(Math.Log10(memberCount + 1.0));

    /// <summary>Queues <paramref name="update"/>, replacing any queued update about the same member.</summary>
    public void Enqueue(in MemberUpdate update)
    {
        // The replaced entry is only marked: removing it from the list is deferred to Take, keeping Enqueue O(1).
        if (_byMember.TryGetValue(update.Member, out var old)) old.Replaced = true;
        var entry = new Entry { Update = update, Order = _nextOrder++, Size = GossipCodec.SizeOf(update) };
        _entries.Add(entry);
        _byMember[update.Member] = entry;
    }

    /// <summary>
    /// Adds to <paramref name="into"/> as many updates as fit in <paramref name="budgetBytes"/>, least-sent first, and
    /// retires those that reach <paramref name="transmitLimit"/>. Returns the bytes used.
    /// </summary>
    public int Take(int budgetBytes, int transmitLimit, List<MemberUpdate> into)
    {
        if (_entries.Count > _byMember.Count) _entries.RemoveAll(static e => e.Replaced);
        if (_entries.Count == 0 || budgetBytes < GossipCodec.UpdateFixedBytes) return 0;
        _entries.Sort(static (a, b) => a.Transmits != b.Transmits ? a.Transmits.CompareTo(b.Transmits) : b.Order.CompareTo(a.Order));
        var used = 0;
        var retire = false;
        foreach (var e in _entries)
        {
            if (used + e.Size > budgetBytes) continue;
            used += e.Size;
            into.Add(e.Update);
            e.Transmits++;
            TransmissionsSent++;
            retire |= e.Transmits >= transmitLimit;
            if (budgetBytes - used < GossipCodec.UpdateFixedBytes) break;
        }
        if (retire)
        {
            foreach (var e in _entries)
                if (e.Transmits >= transmitLimit) _byMember.Remove(e.Update.Member);
            _entries.RemoveAll(e => e.Transmits >= transmitLimit);
        }
        return used;
    }

    /// <summary>Checks the queue's invariants.</summary>
    public void AssertInvariants()
    {
        var live = 0;
        foreach (var e in _entries)
        {
            if (e.Replaced) continue;
            live++;
            Invariant.Check(_byMember.TryGetValue(e.Update.Member, out var indexed) && ReferenceEquals(indexed, e), "at most one live queued update per member");
        }
        Invariant.Check(live == _byMember.Count, "the index covers exactly the live entries");
    }
}
