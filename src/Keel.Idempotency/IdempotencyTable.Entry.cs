namespace Keel.Idempotency;

public sealed partial class IdempotencyTable
{
    /// <summary>One key's record. Mutable, so the key is hashed once per operation; never changes its expiry while it is in an index.</summary>
    internal sealed class Entry(string key, RequestFingerprint fingerprint, long claimedAtMs, long expiresAtMs)
    {
        public string Key { get; } = key;
        public RequestFingerprint Fingerprint { get; } = fingerprint;
        public long ClaimedAtMs { get; } = claimedAtMs;
        public long ExpiresAtMs { get; set; } = expiresAtMs;
        public bool IsCompleted { get; set; }
        public long CompletedAtMs { get; set; }
        public int StatusCode { get; set; }
        public byte[]? Body { get; set; }

        public StoredResponse Response => new(StatusCode, Body);
    }

    /// <summary>Orders entries by expiry time, then key by ordinal comparison: the only order the table ever acts on.</summary>
    internal sealed class EntryExpiryComparer : IComparer<Entry>
    {
        public static readonly EntryExpiryComparer Instance = new();

        public int Compare(Entry? x, Entry? y)
        {
            if (ReferenceEquals(x, y)) return 0;
            if (x is null) return -1;
            if (y is null) return 1;
            var byTime = x.ExpiresAtMs.CompareTo(y.ExpiresAtMs);
            return byTime != 0 ? byTime : string.CompareOrdinal(x.Key, y.Key);
        }
    }
}
