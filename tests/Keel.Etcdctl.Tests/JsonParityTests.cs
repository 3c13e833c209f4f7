using System.Text.Json;
using System.Text.Json.Nodes;
using Keel.TestCluster;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// <c>etcdctl -w json</c> prints the same fields for Keel as for etcd 3.4: the same commands run against a fresh
/// single-member Keel and a fresh single-member etcd, and their outputs agree field by field — every field present on
/// one is present on the other, and every value a script would compare (revisions, counts, <c>more</c>, base64 keys and
/// values, <c>deleted</c>, <c>succeeded</c>, nested headers, <c>compact_revision</c>) is equal. Only values that name
/// the particular server (ids, terms, sizes, hashes, times) are left out of the value comparison.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class JsonParityTests
{
    // Values that differ between any two servers, not between Keel and etcd: compared for presence only.
    private static readonly HashSet<string> ServerSpecific =
    [
        "cluster_id", "member_id", "raft_term", "ID", "id", "leader", "hash", "dbSize", "dbSizeInUse", "raftIndex", "raftTerm",
        "raftAppliedIndex", "Endpoint", "took", "peerURLs", "clientURLs", "name", "TTL", "ttl", "granted-ttl", "version_server",
    ];

    private static async Task<List<JsonNode>> RunScriptAsync(ServerKind kind)
    {
        await using var cluster = await TestCluster.TestCluster.StartAsync(1, kind);
        var ctl = new TestCluster.Etcdctl([new Uri(cluster.Members[0].ClientUrl).Authority]);
        var outputs = new List<JsonNode>();
        async Task<JsonNode> Json(params string[] args)
        {
            var result = await ctl.RunAsync([.. args, "-w", "json"]);
            Assert.True(result.ExitCode == 0, $"{kind}: {result}");
            var node = JsonNode.Parse(result.StandardOutput)!;
            outputs.Add(node);
            return node;
        }
        async Task<JsonNode> Txn(string script)
        {
            var result = await ctl.RunAsync(["txn", "-w", "json"], script);
            Assert.True(result.ExitCode == 0, $"{kind}: {result}");
            var node = JsonNode.Parse(result.StandardOutput)!;
            outputs.Add(node);
            return node;
        }

        await Json("put", "a", "1");
        await Json("put", "a", "2", "--prev-kv");
        await Json("get", "a");
        await Json("get", "missing");
        foreach (var key in new[] { "p1", "p2", "p3" }) await Json("put", key, "v");
        await Json("get", "p", "--prefix", "--limit", "2");
        await Json("get", "p", "--prefix", "--keys-only");
        await Json("del", "p1", "--prev-kv");
        await Txn("value(\"p2\") = \"v\"\n\nget p2\ndel p3\nput p4 x\n\nput p5 y\n\n");
        await Txn("value(\"p2\") = \"nope\"\n\nput p6 z\n\nget p2\nput p7 w\n\n");
        var grant = await Json("lease", "grant", "60");
        var lease = grant["ID"]!.GetValue<long>().ToString("x", System.Globalization.CultureInfo.InvariantCulture);
        await Json("put", "leased", "v", "--lease", lease);
        await Json("lease", "timetolive", lease, "--keys");
        await Json("lease", "list");
        await Json("lease", "revoke", lease);
        await Json("member", "list");
        await Json("endpoint", "status");
        await Json("endpoint", "hashkv");
        // compaction prints text even with -w json.
        Assert.Equal(0, (await ctl.RunAsync("compaction", "5")).ExitCode);
        await Json("endpoint", "hashkv");
        return outputs;
    }

    private static void Walk(JsonNode? node, string path, SortedSet<string> shape, JsonObject values)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (name, child) in obj) Walk(child, $"{path}.{name}", shape, values);
                break;
            case JsonArray array:
                for (var i = 0; i < array.Count; i++) Walk(array[i], $"{path}[{i}]", shape, values);
                if (array.Count == 0) shape.Add($"{path}[]");
                break;
            default:
                shape.Add(path);
                var field = path[(path.LastIndexOf('.') + 1)..].Split('[')[0];
                if (!ServerSpecific.Contains(field)) values[path] = node?.DeepClone();
                break;
        }
    }

    [Fact(Timeout = 240_000)]
    public async Task Json_output_has_etcds_fields_and_values()
    {
        var etcd = await RunScriptAsync(ServerKind.Etcd);
        var keel = await RunScriptAsync(ServerKind.Keel);
        Assert.Equal(etcd.Count, keel.Count);
        for (var i = 0; i < etcd.Count; i++)
        {
            var (etcdShape, keelShape) = (new SortedSet<string>(StringComparer.Ordinal), new SortedSet<string>(StringComparer.Ordinal));
            var (etcdValues, keelValues) = (new JsonObject(), new JsonObject());
            Walk(etcd[i], "", etcdShape, etcdValues);
            Walk(keel[i], "", keelShape, keelValues);
            var context = $"output {i}:\netcd: {etcd[i].ToJsonString()}\nkeel: {keel[i].ToJsonString()}";
            Assert.True(etcdShape.SetEquals(keelShape),
                $"fields only etcd has: {string.Join(", ", etcdShape.Except(keelShape))}; only Keel has: {string.Join(", ", keelShape.Except(etcdShape))}\n{context}");
            Assert.True(JsonNode.DeepEquals(etcdValues, keelValues), $"values differ\n{context}");
        }
    }
}
