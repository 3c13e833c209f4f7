using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Server.Tests;

/// <summary>
/// Scrapes <c>/metrics</c> of three in-process members over HTTP/1.1 (the metrics listener) and HTTP/2 (the client
/// URL) and checks etcd's names with sane values, and that servers sharing one process keep separate counts.
/// </summary>
public class MetricsTests
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    [Fact]
    public async Task Metrics_use_etcd_names_with_sane_values_and_do_not_mix_between_servers_in_one_process()
    {
        var metricsPorts = FreePorts(3);
        var index = 0;
        await using var cluster = await LoopbackCluster.StartAsync(3, configure: o => o with
        {
            ListenMetricsUrls = [new Uri($"http://127.0.0.1:{metricsPorts[index++]}")],
        });
        using var http = new HttpClient
        {
            DefaultRequestVersion = HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Timeout = TimeSpan.FromSeconds(10),
        };
        async Task<Scrape> ScrapeAsync(int member)
        {
            using var response = await http.GetAsync($"http://127.0.0.1:{metricsPorts[member]}/metrics");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(HttpVersion.Version11, response.Version);
            return new Scrape(await response.Content.ReadAsStringAsync());
        }

        var before = await ScrapeAsync(0);
        var kv = new KV.KVClient(cluster.Channel(0));
        const int puts = 20;
        for (var i = 0; i < puts; i++) await kv.PutAsync(new PutRequest { Key = B($"metrics/{i % 5}"), Value = B($"v{i}") });
        // Node values are sampled on the loop once a second: poll until every member's sample shows the puts.
        var scrapes = new List<Scrape>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        do
        {
            if (scrapes.Count > 0) await Task.Delay(200);
            scrapes.Clear();
            for (var member = 0; member < 3; member++) scrapes.Add(await ScrapeAsync(member));
        }
        while (clock.Elapsed < TimeSpan.FromSeconds(15) &&
               !scrapes.All(s => s.Value("etcd_server_has_leader") == 1 && s.Value("etcd_debugging_mvcc_keys_total") == 5
                   // Gossip starts once the member has applied the replicated gossip keyring (generated at bootstrap).
                   && s.Has("keel_gossip_members")));
        var after = scrapes[0];
        foreach (var scrape in scrapes)
        {
            Assert.Equal(1, scrape.Value("etcd_server_has_leader"));
            Assert.Equal(5, scrape.Value("etcd_debugging_mvcc_keys_total"));
            Assert.True(scrape.Value("etcd_disk_wal_fsync_duration_seconds_count") > 0, "every member syncs its WAL");
            Assert.True(scrape.Value("etcd_disk_wal_fsync_duration_seconds_bucket", "le=\"+Inf\"") > 0);
            Assert.True(scrape.Value("etcd_disk_backend_commit_duration_seconds_count") > 0);
            Assert.True(scrape.Value("etcd_mvcc_db_total_size_in_bytes") > 0);
            Assert.True(scrape.Value("etcd_mvcc_db_total_size_in_use_in_bytes") > 0);
            Assert.True(scrape.Value("etcd_network_peer_round_trip_time_seconds_count", "To=") > 0, "peer round trips are measured");
            Assert.True(scrape.Value("etcd_server_leader_changes_seen_total") >= 1);
            Assert.True(scrape.Has("keel_loop_utilization_ratio"));
            Assert.True(scrape.Has("keel_gossip_members"));
            Assert.True(scrape.Has("keel_raft_log_memory_bytes"));
            Assert.True(scrape.Has("keel_raft_entries_read_back_total"));
        }
        Assert.Equal(1, scrapes.Sum(s => s.Value("etcd_server_is_leader")));
        // Process and runtime metrics: real values of this process (the servers share it, so they agree on the slow-moving ones).
        using (var self = System.Diagnostics.Process.GetCurrentProcess())
        {
            var rss = after.Value("process_resident_memory_bytes");
            Assert.InRange(rss, self.WorkingSet64 / 4.0, self.WorkingSet64 * 4.0);
            Assert.InRange(after.Value("process_start_time_seconds"), new DateTimeOffset(self.StartTime.ToUniversalTime()).ToUnixTimeSeconds() - 2.0,
                new DateTimeOffset(self.StartTime.ToUniversalTime()).ToUnixTimeSeconds() + 2.0);
        }
        Assert.True(after.Value("process_cpu_seconds_total") > 0);
        Assert.True(after.Value("process_open_fds") > 3, "the listeners and the WAL files are open");
        Assert.True(after.Value("dotnet_gc_allocated_bytes_total") > before.Value("dotnet_gc_allocated_bytes_total"), "the puts allocated");
        Assert.True(after.Value("dotnet_gc_heap_size_bytes") > 0);
        Assert.True(after.Value("dotnet_gc_committed_bytes") > 0);
        Assert.True(after.Value("dotnet_gc_collections_total", "generation=\"gen0\"") >= after.Value("dotnet_gc_collections_total", "generation=\"gen2\""));
        Assert.True(after.Has("dotnet_gc_pause_seconds_total"));
        Assert.True(after.Value("dotnet_threadpool_threads") >= 1);
        Assert.True(after.Value("dotnet_jit_methods_compiled_total") > 0);
        Assert.True(after.Value("dotnet_jit_compilation_seconds_total") > 0);
        Assert.True(after.Value("etcd_server_proposals_committed_total") >= before.Value("etcd_server_proposals_committed_total") + puts,
            "the committed index grows with every put");
        Assert.True(after.Value("etcd_server_proposals_applied_total") >= before.Value("etcd_server_proposals_applied_total") + puts);
        // Every Put went to member 0: its counters have them all, the other members (same process) none.
        const string put = "grpc_method=\"Put\"";
        Assert.Equal(puts, after.Value("grpc_server_handled_total", put, "grpc_code=\"OK\""));
        Assert.Equal(puts, after.Value("grpc_server_started_total", put));
        Assert.Equal(0, scrapes[1].Value("grpc_server_handled_total", put));
        Assert.Equal(0, scrapes[2].Value("grpc_server_handled_total", put));

        // The client URL serves the same over HTTP/2 (h2c).
        using var h2 = new HttpClient { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var viaClientUrl = await h2.GetAsync(new Uri(cluster.Options[0].ListenClientUrls[0], "/metrics"));
        Assert.Equal(HttpStatusCode.OK, viaClientUrl.StatusCode);
        Assert.Equal(1, new Scrape(await viaClientUrl.Content.ReadAsStringAsync()).Value("etcd_server_has_leader"));
    }

    /// <summary>A parsed Prometheus text exposition.</summary>
    private sealed class Scrape(string text)
    {
        private readonly (string Name, string Labels, double Value)[] _samples = text.Split('\n')
            .Where(line => line.Length > 0 && line[0] != '#')
            .Select(line =>
            {
                var space = line.LastIndexOf(' ');
                var series = line[..space];
                var brace = series.IndexOf('{');
                var name = brace < 0 ? series : series[..brace];
                var labels = brace < 0 ? "" : series[brace..];
                return (name, labels, double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture));
            }).ToArray();

        public bool Has(string name) => _samples.Any(s => s.Name == name);

        /// <summary>The sum over the series of <paramref name="name"/> whose labels contain every fragment (0 if none).</summary>
        public double Value(string name, params string[] labelFragments) =>
            _samples.Where(s => s.Name == name && labelFragments.All(f => s.Labels.Contains(f, StringComparison.Ordinal))).Sum(s => s.Value);

        public override string ToString() => text;
    }

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToArray();
        foreach (var listener in listeners) listener.Start();
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        foreach (var listener in listeners) listener.Stop();
        return ports;
    }
}
