using System.Text;

namespace Keel.Mvcc.Tests;

internal static class B
{
    public static byte[] Y(string text) => Encoding.UTF8.GetBytes(text);

    public static string S(byte[] bytes) => Encoding.UTF8.GetString(bytes);

    public static readonly byte[] FromKey = [0];

    public static PutResponse Put(this MvccStore store, string key, string value, long timestamp = 0, long lease = 0) =>
        store.Put(new PutRequest { Key = Y(key), Value = Y(value), Lease = lease }, timestamp == 0 ? store.CurrentRevision * 10 : timestamp);

    public static DeleteRangeResponse Delete(this MvccStore store, string key, string rangeEnd = "") =>
        store.DeleteRange(new DeleteRangeRequest { Key = Y(key), RangeEnd = Y(rangeEnd), PrevKv = true }, store.CurrentRevision * 10);

    public static KeyValue? Get(this MvccStore store, string key, long revision = 0) =>
        store.Range(new RangeRequest { Key = Y(key), Revision = revision }).Kvs.SingleOrDefault();

    public static string[] Keys(this RangeResponse response) => [.. response.Kvs.Select(kv => S(kv.Key))];

    public static void ThrowsMvcc(MvccError error, Action action)
    {
        var exception = Assert.Throws<MvccException>(action);
        Assert.Equal(error, exception.Error);
        Assert.Equal(MvccException.MessageOf(error), exception.Message);
    }
}
