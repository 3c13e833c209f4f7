using System.Text.Json.Nodes;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Protocol.Etcd.Mvccpb;

namespace Keel.Cli;

/// <summary>
/// etcdctl 3.4's <c>-w json</c> and <c>-w table</c> shapes for the keel client commands: Go's encoding of the
/// etcdserverpb messages (snake_case field names, numbers as numbers, bytes as base64, zero fields left out), so a
/// script written for etcdctl's output reads keel's.
/// </summary>
internal static class EtcdctlJson
{
    public static string Put(PutResponse response)
    {
        var json = new JsonObject { ["header"] = Header(response.Header) };
        if (response.PrevKv is { } prev) json["prev_kv"] = Kv(prev);
        return json.ToJsonString();
    }

    public static string Range(ResponseHeader header, IEnumerable<KeyValue> kvs, long count, bool more)
    {
        var json = new JsonObject { ["header"] = Header(header) };
        var array = new JsonArray();
        foreach (var kv in kvs) array.Add(Kv(kv));
        if (array.Count > 0) json["kvs"] = array;
        if (more) json["more"] = true;
        if (count != 0) json["count"] = count;
        return json.ToJsonString();
    }

    /// <summary>etcdctl's table: a +---+ ruled grid with centred upper-case headers.</summary>
    public static void WriteTable(IReadOnlyList<string> headers, IReadOnlyList<string[]> rows)
    {
        var widths = headers.Select((h, i) => Math.Max(h.Length, rows.Select(r => r[i].Length).DefaultIfEmpty(0).Max()) + 2).ToArray();
        var rule = "+" + string.Join("+", widths.Select(w => new string('-', w))) + "+";
        string Line(IReadOnlyList<string> cells, bool centre) => "|" + string.Join("|", cells.Select((c, i) =>
        {
            var pad = widths[i] - c.Length;
            var left = centre ? pad / 2 : 1;
            return new string(' ', left) + c + new string(' ', pad - left);
        })) + "|";
        Console.WriteLine(rule);
        Console.WriteLine(Line(headers, centre: true));
        Console.WriteLine(rule);
        foreach (var row in rows) Console.WriteLine(Line(row, centre: false));
        Console.WriteLine(rule);
    }

    private static JsonObject Header(ResponseHeader header)
    {
        var json = new JsonObject();
        if (header.ClusterId != 0) json["cluster_id"] = header.ClusterId;
        if (header.MemberId != 0) json["member_id"] = header.MemberId;
        if (header.Revision != 0) json["revision"] = header.Revision;
        if (header.RaftTerm != 0) json["raft_term"] = header.RaftTerm;
        return json;
    }

    private static JsonObject Kv(KeyValue kv)
    {
        var json = new JsonObject();
        if (!kv.Key.IsEmpty) json["key"] = Convert.ToBase64String(kv.Key.Span);
        if (kv.CreateRevision != 0) json["create_revision"] = kv.CreateRevision;
        if (kv.ModRevision != 0) json["mod_revision"] = kv.ModRevision;
        if (kv.Version != 0) json["version"] = kv.Version;
        if (!kv.Value.IsEmpty) json["value"] = Convert.ToBase64String(kv.Value.Span);
        if (kv.Lease != 0) json["lease"] = kv.Lease;
        return json;
    }
}
