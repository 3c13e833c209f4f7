namespace Keel.Leases;

/// <summary>The mutable state of one lease inside a <see cref="LeaseTable"/>.</summary>
/// <remarks>
/// Two deadlines are kept apart on purpose. The <em>replicated</em> deadline (<see cref="RecordedAtMs"/> +
/// <see cref="RemainingMs"/>) is derived only from applied commands (grant, keep-alive, checkpoint), so it is the same
/// on every replica and may decide the outcome of applied commands (a late keep-alive is refused). The <em>local</em>
/// deadline <see cref="ExpiresAtMs"/> is what the expiry index orders by; on a primary it is never below the replicated
/// one and never decreases, because a promotion or a detected stall may extend it.
/// </remarks>
internal sealed class LeaseEntry
{
    public LeaseEntry(long id) => Id = id;

    public long Id { get; }

    /// <summary>The granted TTL.</summary>
    public long TtlMs;

    /// <summary>The token issued with the grant.</summary>
    public ulong FencingToken;

    /// <summary>When the last replicated record (grant, keep-alive or checkpoint) was taken.</summary>
    public long RecordedAtMs;

    /// <summary>The remaining TTL at <see cref="RecordedAtMs"/>.</summary>
    public long RemainingMs;

    /// <summary>Number of keep-alives applied; makes a checkpoint measured before a keep-alive recognisably stale.</summary>
    public ulong RenewCount;

    /// <summary>This table's deadline: the expiry index key (with <see cref="Id"/> as the tie-break).</summary>
    public long ExpiresAtMs;

    /// <summary>Position in the expiry heap, -1 when not in it.</summary>
    public int HeapIndex = -1;

    /// <summary>Attached keys in byte order, created on first attach.</summary>
    public SortedSet<byte[]>? Keys;

    /// <summary>Named resources held, created on first acquisition.</summary>
    public SortedSet<string>? Resources;

    public long ReplicatedDeadlineMs => LeaseTable.SaturatingAdd(RecordedAtMs, RemainingMs);
}
