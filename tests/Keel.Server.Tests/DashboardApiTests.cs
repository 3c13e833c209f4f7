using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Google.Protobuf;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Server.Dashboard;

namespace Keel.Server.Tests;

/// <summary>The dashboard's JSON API on one in-process member: history, reads as of a time, leases, escaping.</summary>
public class DashboardApiTests
{
    [Fact]
    public async Task Api_serves_history_as_of_reads_leases_and_shows_bytes_as_text()
    {
        var port = FreePort();
        await using var cluster = await LoopbackCluster.StartAsync(1, configure: o => o with { ListenMetricsUrls = [new Uri($"http://127.0.0.1:{port}")] });
        var kv = new KV.KVClient(cluster.Channel(0));
        var first = await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("k"), Value = ByteString.CopyFromUtf8("one") });
        await Task.Delay(20);
        var betweenMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await Task.Delay(20);
        await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("k"), Value = ByteString.CopyFromUtf8("two") });
        await kv.PutAsync(new PutRequest { Key = ByteString.CopyFrom(0x00, 0xff, (byte)'<'), Value = ByteString.CopyFrom(0x01, (byte)'\\') });
        var lease = await new Lease.LeaseClient(cluster.Channel(0)).LeaseGrantAsync(new LeaseGrantRequest { TTL = 60 });
        await kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8("owned"), Value = ByteString.CopyFromUtf8("x"), Lease = lease.ID });

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        async Task<JsonElement> GetAsync(string path) => JsonDocument.Parse(await http.GetStringAsync(path)).RootElement;

        var history = await GetAsync("/ui/api/history?key=" + Uri.EscapeDataString(Convert.ToBase64String("k"u8.ToArray())));
        var changes = history.GetProperty("changes").EnumerateArray().ToArray();
        Assert.Equal(["two", "one"], changes.Select(c => c.GetProperty("value").GetString()));
        Assert.Equal(first.Header.Revision, changes[1].GetProperty("revision").GetInt64());
        Assert.True(changes[1].GetProperty("time").GetProperty("unixMs").GetInt64() <= betweenMs);

        var asOf = await GetAsync($"/ui/api/keys?at={betweenMs}");
        Assert.Equal(first.Header.Revision, asOf.GetProperty("revision").GetInt64());
        var kvs = asOf.GetProperty("kvs").EnumerateArray().ToArray();
        Assert.Equal("one", Assert.Single(kvs).GetProperty("value").GetString());

        var now = await GetAsync("/ui/api/keys");
        var binary = now.GetProperty("kvs").EnumerateArray().Single(k => k.GetProperty("key").GetProperty("base64").GetString() == Convert.ToBase64String(new byte[] { 0x00, 0xff, (byte)'<' }));
        Assert.Equal("\\x00\\xff<", binary.GetProperty("key").GetProperty("text").GetString());
        Assert.Equal("\\x01\\x5c", binary.GetProperty("value").GetString());

        var leases = (await GetAsync("/ui/api/leases")).EnumerateArray().ToArray();
        Assert.Equal("owned", Assert.Single(Assert.Single(leases).GetProperty("keys").EnumerateArray()).GetProperty("text").GetString());

        var overview = await GetAsync("/ui/api/overview");
        Assert.True(overview.GetProperty("isLeader").GetBoolean());
        Assert.Equal(0, Assert.Single(overview.GetProperty("members").EnumerateArray()).GetProperty("lag").GetInt64());

        using var page = await http.GetAsync("/ui");
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/ui/missing.js")).StatusCode);
    }

    [Theory]
    [InlineData(new byte[] { (byte)'a', (byte)'/', (byte)'b' }, "a/b")]
    [InlineData(new byte[] { 0xc3, 0xa9 }, "é")]
    [InlineData(new byte[] { 0x0a, (byte)'\\' }, "\\x0a\\x5c")]
    [InlineData(new byte[] { 0xc3 }, "\\xc3")]
    public void Display_keeps_text_and_escapes_control_and_invalid_bytes(byte[] bytes, string expected) =>
        Assert.Equal(expected, DashboardEndpoints.Display(bytes));

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
