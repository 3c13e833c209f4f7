namespace Keel.Mvcc;

/// <summary>etcd's conventions for key ranges (<c>clientv3.GetPrefixRangeEnd</c>), shared by the server and clients.</summary>
public static class KeyRanges
{
    /// <summary>
    /// The range end that selects every key starting with <paramref name="prefix"/>: the prefix with its last byte
    /// below 0xff incremented and what follows dropped; <c>"\0"</c> (every key) when all bytes are 0xff.
    /// </summary>
    public static byte[] PrefixEnd(ReadOnlySpan<byte> prefix)
    {
        for (var i = prefix.Length - 1; i >= 0; i--)
        {
            if (prefix[i] < 0xff)
            {
                var end = prefix[..(i + 1)].ToArray();
                end[i]++;
                return end;
            }
        }
        return [0];
    }
}
