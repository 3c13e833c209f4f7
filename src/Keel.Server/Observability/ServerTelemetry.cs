using System.Diagnostics;
using System.Diagnostics.Metrics;
using Keel.Node;
using Keel.Server.Hosting;
using Microsoft.Extensions.Logging;

namespace Keel.Server.Observability;

/// <summary>
/// One server's metrics: <see cref="System.Diagnostics.Metrics"/> instruments with etcd's names and meanings (so
/// existing etcd dashboards and alerts work) plus <c>keel_*</c> for what only Keel has, exported by OpenTelemetry's
/// Prometheus exporter at <c>/metrics</c>. It also samples the node once a second into a five-minute ring that the
/// dashboard charts.
/// </summary>
/// <remarks>
/// Each server gets a meter with a name of its own (<see cref="MeterName"/>) and its own OpenTelemetry meter provider
/// listens only to that name: OpenTelemetry subscribes to meters process-wide by name, so with one shared name several
/// servers in one process (the in-process tests) would add up each other's values.
/// </remarks>
public sealed class ServerTelemetry : IAsyncDisposable
{
    /// <summary>etcd's WAL fsync and backend commit buckets: 1 ms doubling 14 times (to about 8 s).</summary>
    private static readonly double[] DiskBuckets = Enumerable.Range(0, 14).Select(k => 0.001 * Math.Pow(2, k)).ToArray();

    /// <summary>etcd's peer round-trip buckets: 0.1 ms doubling 16 times (to about 3.3 s).</summary>
    private static readonly double[] RoundTripBuckets = Enumerable.Range(0, 16).Select(k => 0.0001 * Math.Pow(2, k)).ToArray();

    /// <summary>Samples kept for the dashboard: one a second for five minutes.</summary>
    public const int SampleCapacity = 300;

    private static int s_instances;

    private readonly NodeHost _host;
    private readonly GossipHost _gossip;
    private readonly ILogger _logger;
    private readonly Meter _meter;
    private readonly Histogram<double> _fsync;
    private readonly Histogram<double> _backendCommit;
    private readonly Histogram<double> _roundTrip;
    private readonly Counter<long> _grpcStarted;
    private readonly Counter<long> _grpcHandled;
    private readonly LatencyWindow _putLatency = new();
    private readonly LatencyWindow _fsyncLatency = new();
    private readonly Queue<TelemetrySample> _samples = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _sampler;
    private volatile NodeSample _latest = NodeSample.Empty;
    private long _dataDirBytes;
    private int _disposed;

    /// <summary>Creates the instruments and starts sampling.</summary>
    public ServerTelemetry(NodeHost host, GossipHost gossip, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(gossip);
        _host = host;
        _gossip = gossip;
        _logger = logger;
        MeterName = $"Keel.Server.{Interlocked.Increment(ref s_instances)}";
        _meter = new Meter(MeterName);
        var m = _meter;

        // Raft and proposals (etcd server/etcdserver/metrics.go).
        m.CreateObservableGauge("etcd_server_has_leader", () => _host.Status.Leader != 0 ? 1 : 0, description: "Whether or not a leader exists. 1 is existence, 0 is not.");
        m.CreateObservableGauge("etcd_server_is_leader", () => _host.Status.Leader == _host.MemberId ? 1 : 0, description: "Whether or not this member is a leader. 1 if is, 0 otherwise.");
        m.CreateObservableCounter("etcd_server_leader_changes_seen_total", () => _host.Statistics.LeaderChanges, description: "The number of leader changes seen.");
        // etcd exposes these two as gauges holding the committed and applied index, not as counters.
        m.CreateObservableGauge("etcd_server_proposals_committed_total", () => (long)_host.Status.CommitIndex, description: "The total number of consensus proposals committed.");
        m.CreateObservableGauge("etcd_server_proposals_applied_total", () => (long)_host.Status.AppliedIndex, description: "The total number of consensus proposals applied.");
        m.CreateObservableGauge("etcd_server_proposals_pending", () => _latest.PendingWrites, description: "The current number of pending proposals to commit.");
        m.CreateObservableCounter("etcd_server_proposals_failed_total", () => _host.Statistics.WritesFailed, description: "The total number of failed proposals seen.");
        m.CreateObservableCounter("etcd_server_slow_apply_total", () => _host.Statistics.SlowBatches, description: "The total number of slow apply requests (a node loop batch of 100 ms or more).");
        m.CreateObservableCounter("keel_reads_served_from_view_total", () => _host.Statistics.ReadsServedFromView, description: "Serializable reads served on the RPC's thread from the latest store view instead of the node loop.");
        m.CreateObservableGauge("keel_raft_term", () => (long)_host.Status.Term, description: "The current Raft term.");
        m.CreateObservableGauge("keel_raft_log_memory_bytes", () => _latest.RaftLogBytesInMemory, description: "Bytes of Raft log entry payloads held in memory (applied entries beyond 8 MiB are read back from the WAL).");
        m.CreateObservableCounter("keel_raft_entries_read_back_total", () => _latest.EntriesReadBack, description: "Raft log entries read back from the WAL for lagging followers (their payloads had left memory).");
        m.CreateObservableGauge("keel_value_segments", () => _latest.ValueSegments, description: "Value segments the store uses (files of the data directory's values/ folder, mapped into memory).");
        m.CreateObservableGauge("keel_value_segment_bytes", () => _latest.ValueSegmentBytes, description: "Bytes of the value segments the store uses.");
        m.CreateObservableGauge("keel_value_live_bytes", () => _latest.ValueLiveBytes, description: "Bytes of values the store's index refers to in value segments.");
        m.CreateObservableCounter("keel_values_moved_total", () => _latest.ValuesMoved, description: "Values compaction moved out of value segments less than half used.");
        m.CreateObservableCounter("keel_values_outside_segments_total", () => _latest.ValuesOutsideSegments, description: "Values kept on the heap because no value segment could be made (a full disk).");

        // Disk.
        _fsync = m.CreateHistogram("etcd_disk_wal_fsync_duration_seconds", unit: "s",
            description: "The latency distributions of fsync called by WAL.", tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DiskBuckets });
        _backendCommit = m.CreateHistogram("etcd_disk_backend_commit_duration_seconds", unit: "s",
            description: "The latency distributions of commit called by backend (Keel: one node loop batch: apply, WAL write and sync, answers).", tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DiskBuckets });
        host.Statistics.FsyncObserved += seconds =>
        {
            _fsync.Record(seconds);
            _fsyncLatency.Record(seconds);
        };
        host.Statistics.BatchObserved += seconds => _backendCommit.Record(seconds);

        // Network.
        _roundTrip = m.CreateHistogram("etcd_network_peer_round_trip_time_seconds", unit: "s",
            description: "Round-Trip-Time histogram between peers (one ping sample per peer per second).", tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = RoundTripBuckets });

        // MVCC.
        m.CreateObservableGauge("etcd_mvcc_db_total_size_in_bytes", () => Interlocked.Read(ref _dataDirBytes), description: "Total size of the underlying database physically allocated in bytes (Keel: WAL and snapshots in the data directory).");
        m.CreateObservableGauge("etcd_mvcc_db_total_size_in_use_in_bytes", () => _host.Status.StoreSizeBytes, description: "Total size of the underlying database logically in use in bytes (Keel: the in-memory store's size).");
        m.CreateObservableGauge("etcd_debugging_mvcc_keys_total", () => (long)_host.Status.KeyCount, description: "Total number of keys.");
        m.CreateObservableGauge("etcd_debugging_mvcc_current_revision", () => _host.Status.Revision, description: "The revision of the store.");
        m.CreateObservableGauge("etcd_debugging_mvcc_compact_revision", () => _host.Status.CompactRevision, description: "The revision of the last compaction.");

        // gRPC (go-grpc-prometheus's names, as etcd exports them).
        _grpcStarted = m.CreateCounter<long>("grpc_server_started_total", description: "Total number of RPCs started on the server.");
        _grpcHandled = m.CreateCounter<long>("grpc_server_handled_total", description: "Total number of RPCs completed on the server, regardless of success or failure.");

        // Keel only: the loop.
        m.CreateObservableGauge("keel_loop_utilization_ratio", () => _latestLoopUtilization, description: "Share of the last second the node loop spent running batches (near 1: the loop is the bottleneck).");
        m.CreateObservableGauge("keel_loop_queue_depth", () => _host.QueuedItems, description: "Work items (requests, peer messages, ticks) waiting for the node loop.");
        m.CreateObservableCounter("keel_loop_batches_total", () => _host.Statistics.LoopBatches, description: "Batches the node loop ran (one WAL sync each at most).");
        m.CreateObservableCounter("keel_requests_refused_total", () => _host.RequestsRefusedQueueFull, description: "Client requests refused with 'etcdserver: too many requests' because the loop's queue was full.");
        m.CreateObservableCounter("keel_peer_messages_dropped_total", () => new[]
        {
            new Measurement<long>(_host.PeerMessagesDropped, new KeyValuePair<string, object?>("where", "loop_queue")),
            new Measurement<long>(_host.Transport.PeerStatistics().Sum(p => p.MessagesDropped), new KeyValuePair<string, object?>("where", "send_queue")),
        }, description: "Raft messages dropped (Raft resends): inbound past the loop's queue bound, or outbound to an unreachable or slow peer.");
        m.CreateObservableCounter("keel_peer_connections_refused_total", () => _host.Transport.ConnectionsRefusedByReason
            .Select(r => new Measurement<long>(r.Value, new KeyValuePair<string, object?>("reason", r.Key))).ToArray(),
            description: "Peer connections refused before any Raft message was read: tls-handshake, no-certificate, untrusted-certificate, cn-not-allowed, secret; and removed-member (a removed member told so).");
        m.CreateObservableCounter("keel_peer_answers_over_inbound_total", () => _host.Transport.AnswersOverInboundConnections,
            description: "Raft messages sent back over a connection the recipient opened, because this member had no address for it (a leader its member table does not list yet).");
        m.CreateObservableCounter("keel_invalid_entries_skipped_total", () => _latest.InvalidEntriesSkipped, description: "Committed log entries skipped because they were not valid commands.");

        // Keel only: idempotency, leases, the hybrid clock.
        m.CreateObservableCounter("keel_idempotency_replays_total", () => _host.Statistics.IdempotentReplays, description: "Writes answered with the stored first answer of their idempotency key (a retry that changed nothing).");
        m.CreateObservableCounter("keel_idempotency_conflicts_total", () => _host.Statistics.IdempotencyConflicts, description: "Writes refused because their idempotency key was in flight or used for a different request.");
        m.CreateObservableGauge("keel_idempotency_table_entries", () => _latest.IdempotencyEntries, description: "Entries in the replicated idempotency table.");
        m.CreateObservableGauge("etcd_debugging_mvcc_watcher_total", () => _latest.Watchers, description: "Total number of watchers.");
        m.CreateObservableGauge("etcd_debugging_mvcc_watch_stream_total", () => _latest.WatchStreams, description: "Total number of watch streams.");
        m.CreateObservableGauge("keel_leases", () => _latest.Leases, description: "Live leases.");
        m.CreateObservableCounter("keel_lease_expiries_total", () => _latest.LeaseExpiriesProposed, description: "Lease revocations this member proposed as leader because the lease expired.");
        m.CreateObservableCounter("keel_lease_fencing_tokens_issued_total", () => (long)_latest.FencingToken, description: "Fencing tokens issued (the replicated token counter).");
        m.CreateObservableGauge("keel_hlc_remote_ahead_max_milliseconds", () => _latest.ClockRemoteAheadMaxMs, description: "The largest amount a peer's accepted hybrid timestamp was ahead of this member's wall clock.");
        m.CreateObservableCounter("keel_hlc_rejected_remote_total", () => _latest.ClockRejected, description: "Remote hybrid timestamps rejected for being too far ahead of this member's clock.");
        m.CreateObservableCounter("keel_hlc_backward_jumps_total", () => _latest.ClockBackwardJumps, description: "Times the wall clock stepped backwards (the hybrid clock held its time).");

        // Keel only: gossip.
        m.CreateObservableGauge("keel_gossip_members", GossipMembers, description: "Gossip members this server sees, by SWIM state and phi-accrual health.");
        m.CreateObservableGauge("keel_gossip_phi", GossipPhi, description: "Phi-accrual suspicion of each gossip peer (higher: more likely down; above 8 counts as failed).");
        m.CreateObservableCounter("keel_gossip_packets_dropped_total", GossipDropped, description: "Gossip datagrams dropped, by reason: forged (does not decrypt under any installed key: wrong key, tampered), replayed, malformed, truncated, plaintext (not encrypted), overload (input queue full).");

        // The process (the Prometheus client's standard names, which etcd exports too) and the .NET runtime (Keel's
        // counterparts of etcd's go_memstats_* and go_gc_duration_seconds): process-wide, so servers sharing a process
        // (the in-process tests) report the same values.
        m.CreateObservableCounter("process_cpu_seconds_total", () => Environment.CpuUsage.TotalTime.TotalSeconds, description: "Total user and system CPU time spent in seconds.");
        m.CreateObservableGauge("process_resident_memory_bytes", () => Environment.WorkingSet, description: "Resident memory size in bytes.");
        m.CreateObservableGauge("process_start_time_seconds", () => ProcessStartUnixSeconds, description: "Start time of the process since unix epoch in seconds.");
        m.CreateObservableGauge("process_open_fds", OpenFileDescriptors, description: "Number of open file descriptors (Linux).");
        m.CreateObservableCounter("dotnet_gc_allocated_bytes_total", () => GC.GetTotalAllocatedBytes(precise: false), description: "Bytes allocated on the managed heap since the process started (Go's go_memstats_alloc_bytes_total).");
        m.CreateObservableGauge("dotnet_gc_heap_size_bytes", () => GC.GetGCMemoryInfo().HeapSizeBytes, description: "Managed heap size after the last collection, fragmentation included.");
        m.CreateObservableGauge("dotnet_gc_committed_bytes", () => GC.GetGCMemoryInfo().TotalCommittedBytes, description: "Memory the GC has committed from the operating system.");
        m.CreateObservableCounter("dotnet_gc_collections_total", () => new[]
        {
            new Measurement<long>(GC.CollectionCount(0), new KeyValuePair<string, object?>("generation", "gen0")),
            new Measurement<long>(GC.CollectionCount(1), new KeyValuePair<string, object?>("generation", "gen1")),
            new Measurement<long>(GC.CollectionCount(2), new KeyValuePair<string, object?>("generation", "gen2")),
        }, description: "Garbage collections since the process started that collected the generation (a gen2 collection counts in all three).");
        m.CreateObservableCounter("dotnet_gc_pause_seconds_total", () => GC.GetTotalPauseDuration().TotalSeconds, description: "Time the runtime was paused for garbage collection since the process started.");
        m.CreateObservableGauge("dotnet_threadpool_threads", () => ThreadPool.ThreadCount, description: "Thread-pool threads.");
        m.CreateObservableGauge("dotnet_threadpool_queue_length", () => ThreadPool.PendingWorkItemCount, description: "Work items queued to the thread pool, not yet started.");
        // The JIT's work since start: on 2 cores, tier-up and profile-guided recompilation ran for tens of seconds
        // under load and took a fifth of the machine (docs/performance.md, "2026-12-04: the JIT"), so it is watched.
        m.CreateObservableCounter("dotnet_jit_compilation_seconds_total", () => System.Runtime.JitInfo.GetCompilationTime().TotalSeconds, description: "Time the JIT spent compiling methods since the process started.");
        m.CreateObservableCounter("dotnet_jit_methods_compiled_total", () => System.Runtime.JitInfo.GetCompiledMethodCount(), description: "Methods the JIT compiled since the process started (each tier counts).");

        _sampler = Task.Run(RunSamplerAsync);
    }

    private static readonly double ProcessStartUnixSeconds = ReadProcessStartUnixSeconds();

    private static double ReadProcessStartUnixSeconds()
    {
        using var self = Process.GetCurrentProcess();
        return new DateTimeOffset(self.StartTime.ToUniversalTime()).ToUnixTimeMilliseconds() / 1000.0;
    }

    private static IEnumerable<Measurement<int>> OpenFileDescriptors()
    {
        const string fdDirectory = "/proc/self/fd";
        if (!Directory.Exists(fdDirectory)) yield break;
        int count;
        try
        {
            count = Directory.EnumerateFileSystemEntries(fdDirectory).Count();
        }
        catch (IOException)
        {
            yield break;
        }
        catch (UnauthorizedAccessException)
        {
            yield break;
        }
        yield return new Measurement<int>(count);
    }

    /// <summary>The name of this server's meter (unique in the process).</summary>
    public string MeterName { get; }

    /// <summary>Traces of requests (off unless <c>KEEL_TRACING</c> enables an exporter).</summary>
    public static readonly ActivitySource Tracing = new("Keel.Server");

    /// <summary>The latest node sample (at most a second old).</summary>
    public NodeSample Latest => _latest;

    /// <summary>The samples of the last five minutes, oldest first.</summary>
    public IReadOnlyList<TelemetrySample> Samples()
    {
        lock (_samples) return _samples.ToArray();
    }

    private volatile float _latestLoopUtilization;

    /// <summary>Counts a started RPC.</summary>
    internal void RpcStarted(string type, string service, string method) =>
        _grpcStarted.Add(1, new("grpc_type", type), new("grpc_service", service), new("grpc_method", method));

    /// <summary>Counts a finished RPC with its status code name (Go's spelling, as etcd exports it).</summary>
    internal void RpcHandled(string type, string service, string method, string code, double seconds)
    {
        var tags = new TagList { { "grpc_type", type }, { "grpc_service", service }, { "grpc_method", method }, { "grpc_code", code } };
        _grpcHandled.Add(1, tags);
        if (service == "etcdserverpb.KV" && method == "Put" && code == "OK") _putLatency.Record(seconds);
    }

    private IEnumerable<Measurement<int>> GossipMembers()
    {
        if (_gossip.Agent is not { } agent) yield break;
        foreach (var group in agent.Members.GroupBy(a => (a.Status, a.Health)))
            yield return new Measurement<int>(group.Count(), new KeyValuePair<string, object?>("state", group.Key.Status.ToString().ToLowerInvariant()),
                new KeyValuePair<string, object?>("health", group.Key.Health.ToString().ToLowerInvariant()));
    }

    private IEnumerable<Measurement<double>> GossipPhi()
    {
        if (_gossip.Agent is not { } agent) yield break;
        foreach (var member in agent.Members)
            if (double.IsFinite(member.Phi))
                yield return new Measurement<double>(member.Phi, new KeyValuePair<string, object?>("peer", member.Endpoint.ToString()));
    }

    private IEnumerable<Measurement<long>> GossipDropped()
    {
        if (_gossip.Agent is not { } agent) yield break;
        foreach (var (reason, count) in agent.Counters.DroppedByReason())
            yield return new Measurement<long>(count, new KeyValuePair<string, object?>("reason", reason));
    }

    private async Task RunSamplerAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        var lastBusy = _host.Statistics.LoopBusyTicks;
        var lastAt = Stopwatch.GetTimestamp();
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false))
            {
                try
                {
                    // The node is single-threaded: its private state is read on the loop, once a second.
                    _latest = await _host.InvokeAsync(node => NodeSample.Take(node) with { Watchers = _host.Watches.Count, WatchStreams = _host.Watches.StreamCount }).WaitAsync(TimeSpan.FromSeconds(2), _stopping.Token).ConfigureAwait(false);
                }
                catch (Exception exception) when (exception is TimeoutException or Grpc.Core.RpcException or ObjectDisposedException)
                {
                    // A stalled or stopping loop: keep the previous sample; health endpoints report the stall.
                }
                var now = Stopwatch.GetTimestamp();
                var busy = _host.Statistics.LoopBusyTicks;
                var utilization = (float)Math.Clamp((double)(busy - lastBusy) / Math.Max(1, now - lastAt), 0, 1);
                _latestLoopUtilization = utilization;
                var elapsedSeconds = Math.Max(1e-3, (double)(now - lastAt) / Stopwatch.Frequency);
                lastBusy = busy;
                lastAt = now;
                foreach (var peer in _host.Transport.PeerStatistics())
                    if (peer.RoundTripTime is { } rtt)
                        _roundTrip.Record(rtt.TotalSeconds, new KeyValuePair<string, object?>("To", peer.PeerId.ToString("x16")));
                Interlocked.Exchange(ref _dataDirBytes, DataDirBytes());
                var puts = _putLatency.Drain();
                var fsyncs = _fsyncLatency.Drain();
                var status = _host.Status;
                var sample = new TelemetrySample(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), puts.Count / elapsedSeconds,
                    puts.P99Seconds * 1000, fsyncs.Count / elapsedSeconds, fsyncs.P99Seconds * 1000, utilization,
                    (long)status.CommitIndex, (long)status.AppliedIndex, _host.QueuedItems);
                lock (_samples)
                {
                    _samples.Enqueue(sample);
                    while (_samples.Count > SampleCapacity) _samples.Dequeue();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception exception)
        {
            // Metrics must never take the member down: log once and stop sampling.
            _logger.LogWarning(exception, "metrics sampler stopped");
        }
    }

    private long DataDirBytes()
    {
        try
        {
            return new DirectoryInfo(_host.Options.DataDir).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException)
        {
            // A file was removed while enumerating (a compacted WAL segment): the next second counts again.
            return Interlocked.Read(ref _dataDirBytes);
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        // Stopping a server disposes it again: only the first call does anything.
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _sampler.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }
        _meter.Dispose();
        _stopping.Dispose();
    }
}

/// <summary>One second of the dashboard's charts.</summary>
/// <param name="UnixMs">When it was taken.</param>
/// <param name="PutsPerSecond">Successful KV Put RPCs per second on this member.</param>
/// <param name="PutP99Ms">The 99th percentile of those Puts' latency, ms (0 without any).</param>
/// <param name="FsyncsPerSecond">Disk syncs per second.</param>
/// <param name="FsyncP99Ms">The 99th percentile of sync latency, ms.</param>
/// <param name="LoopUtilization">Share of the second the node loop was busy.</param>
/// <param name="CommitIndex">The committed index.</param>
/// <param name="AppliedIndex">The applied index.</param>
/// <param name="QueueDepth">Work items queued for the loop.</param>
public sealed record TelemetrySample(long UnixMs, double PutsPerSecond, double PutP99Ms, double FsyncsPerSecond, double FsyncP99Ms,
    double LoopUtilization, long CommitIndex, long AppliedIndex, long QueueDepth);

/// <summary>What the node's loop-owned state looked like at one moment (read on the loop by <see cref="Take"/>).</summary>
public sealed record NodeSample
{
    /// <summary>Before the first sample.</summary>
    public static NodeSample Empty { get; } = new();

    /// <summary>Writes waiting to commit and apply.</summary>
    public long PendingWrites { get; init; }

    /// <summary><see cref="KeelNode.InvalidEntriesSkipped"/>.</summary>
    public long InvalidEntriesSkipped { get; init; }

    /// <summary>Live leases.</summary>
    public long Leases { get; init; }

    /// <summary>Watchers served by this member (<c>WatchHub</c>).</summary>
    public long Watchers { get; init; }

    /// <summary>Watch streams (gRPC Watch calls) with at least one watcher.</summary>
    public long WatchStreams { get; init; }

    /// <summary>The replicated fencing token counter.</summary>
    public ulong FencingToken { get; init; }

    /// <summary><see cref="KeelNode.LeaseExpiriesProposed"/>.</summary>
    public long LeaseExpiriesProposed { get; init; }

    /// <summary>Entries in the idempotency table.</summary>
    public long IdempotencyEntries { get; init; }

    /// <summary>The largest lead of an accepted remote hybrid timestamp over the local wall clock, ms.</summary>
    public long ClockRemoteAheadMaxMs { get; init; }

    /// <summary>Remote timestamps the hybrid clock rejected.</summary>
    public long ClockRejected { get; init; }

    /// <summary>Backward steps of the wall clock.</summary>
    public long ClockBackwardJumps { get; init; }

    /// <summary>The last log index.</summary>
    public ulong LastIndex { get; init; }

    /// <summary><see cref="KeelNode.RaftLogBytesInMemory"/>.</summary>
    public long RaftLogBytesInMemory { get; init; }

    /// <summary><see cref="KeelNode.EntriesReadBack"/>.</summary>
    public long EntriesReadBack { get; init; }

    /// <summary><see cref="Keel.Mvcc.MvccStore.ValueSegmentCount"/>.</summary>
    public long ValueSegments { get; init; }

    /// <summary><see cref="Keel.Mvcc.MvccStore.ValueSegmentBytes"/>.</summary>
    public long ValueSegmentBytes { get; init; }

    /// <summary><see cref="Keel.Mvcc.MvccStore.ValueLiveBytes"/>.</summary>
    public long ValueLiveBytes { get; init; }

    /// <summary><see cref="Keel.Mvcc.MvccStore.ValuesMoved"/>.</summary>
    public long ValuesMoved { get; init; }

    /// <summary><see cref="Keel.Mvcc.MvccStore.ValuesOutsideSegments"/>.</summary>
    public long ValuesOutsideSegments { get; init; }

    /// <summary>True when this member led at the time.</summary>
    public bool IsLeader { get; init; }

    /// <summary>The replicated member table.</summary>
    public IReadOnlyList<MemberInfo> Members { get; init; } = [];

    /// <summary>The leader's view of each member's replication (empty on a follower).</summary>
    public IReadOnlyList<FollowerProgress> Followers { get; init; } = [];

    /// <summary>Reads the node (call only on the loop).</summary>
    public static NodeSample Take(KeelNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        var followers = new List<FollowerProgress>();
        if (node.IsLeader)
        {
            foreach (var (id, progress) in node.Raft.Tracker.Progress)
                followers.Add(new FollowerProgress(id, progress.Match, progress.Next, progress.State.ToString().ToLowerInvariant(), progress.RecentActive, progress.IsLearner));
        }
        return new NodeSample
        {
            PendingWrites = node.PendingWriteCount,
            InvalidEntriesSkipped = node.InvalidEntriesSkipped,
            Leases = node.LeaseTable.Count,
            FencingToken = node.LeaseTable.CurrentFencingToken,
            LeaseExpiriesProposed = node.LeaseExpiriesProposed,
            IdempotencyEntries = node.Idempotency.Count,
            ClockRemoteAheadMaxMs = node.Clock.LargestAcceptedRemoteAheadMs,
            ClockRejected = node.Clock.RejectedRemoteCount,
            ClockBackwardJumps = node.Clock.BackwardJumpCount,
            LastIndex = node.Raft.Log.LastIndex,
            RaftLogBytesInMemory = node.RaftLogBytesInMemory,
            EntriesReadBack = node.EntriesReadBack,
            ValueSegments = node.Store.ValueSegmentCount,
            ValueSegmentBytes = node.Store.ValueSegmentBytes,
            ValueLiveBytes = node.Store.ValueLiveBytes,
            ValuesMoved = node.Store.ValuesMoved,
            ValuesOutsideSegments = node.Store.ValuesOutsideSegments,
            IsLeader = node.IsLeader,
            Members = node.Members,
            Followers = followers,
        };
    }
}

/// <summary>The leader's replication progress of one member.</summary>
/// <param name="Id">The member.</param>
/// <param name="Match">The highest index known to be in its log.</param>
/// <param name="Next">The next index the leader sends it.</param>
/// <param name="State">probe, replicate or snapshot.</param>
/// <param name="RecentActive">True if it answered within the last election timeout.</param>
/// <param name="IsLearner">True for a learner.</param>
public sealed record FollowerProgress(ulong Id, ulong Match, ulong Next, string State, bool RecentActive, bool IsLearner);

/// <summary>Latencies recorded since the last drain (thread-safe), for per-second percentiles.</summary>
internal sealed class LatencyWindow
{
    private const int MaxKept = 100_000;
    private readonly List<double> _values = [];

    public void Record(double seconds)
    {
        lock (_values)
            if (_values.Count < MaxKept) _values.Add(seconds);
    }

    public (int Count, double P99Seconds) Drain()
    {
        double[] values;
        lock (_values)
        {
            values = [.. _values];
            _values.Clear();
        }
        if (values.Length == 0) return (0, 0);
        Array.Sort(values);
        return (values.Length, values[Math.Min(values.Length - 1, (int)Math.Ceiling(values.Length * 0.99) - 1)]);
    }
}
