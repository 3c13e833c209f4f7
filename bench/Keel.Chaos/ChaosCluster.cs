using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Grpc.Core;
using Grpc.Net.Client;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.TestCluster;

namespace Keel.Chaos;

/// <summary>One member process of a <see cref="ChaosCluster"/>.</summary>
public sealed class ChaosMember
{
    private readonly Queue<string> _output = new();

    internal ChaosMember(int index, string dataDirectory)
    {
        Index = index;
        DataDirectory = dataDirectory;
    }

    /// <summary>0-based index.</summary>
    public int Index { get; }

    /// <summary>n1, n2, ...</summary>
    public string Name => "n" + (Index + 1).ToString(CultureInfo.InvariantCulture);

    /// <summary>The client port inside the namespace.</summary>
    public int ClientPort => 12379 + 10 * Index;

    /// <summary>The peer port (Raft TCP, and UDP gossip for Keel) inside the namespace.</summary>
    public int PeerPort => 12380 + 10 * Index;

    /// <summary>http://127.0.0.1:client-port</summary>
    public string ClientUrl => $"http://127.0.0.1:{ClientPort}";

    /// <summary>http://127.0.0.1:peer-port</summary>
    public string PeerUrl => $"http://127.0.0.1:{PeerPort}";

    /// <summary>The data directory.</summary>
    public string DataDirectory { get; }

    /// <summary>The running process, if any.</summary>
    public Process? Process { get; internal set; }

    /// <summary>The libfaketime offset file of this member (when the cluster runs under libfaketime).</summary>
    public string? FaketimeFile { get; internal set; }

    /// <summary>KV stub over the namespace channel.</summary>
    public KV.KVClient Kv { get; internal set; } = null!;

    /// <summary>Maintenance stub.</summary>
    public Maintenance.MaintenanceClient Maintenance { get; internal set; } = null!;

    /// <summary>Lease stub.</summary>
    public Lease.LeaseClient Lease { get; internal set; } = null!;

    /// <summary>Cluster stub.</summary>
    public Cluster.ClusterClient Cluster { get; internal set; } = null!;

    /// <summary>The member's gRPC channel (sockets inside the namespace).</summary>
    public GrpcChannel? Channel { get; internal set; }

    internal void Append(string line)
    {
        lock (_output)
        {
            _output.Enqueue(line);
            while (_output.Count > 80) _output.Dequeue();
            // The whole output, stamped with the harness's clock, for finding where time goes (KEEL_CHAOS_LOG_DIR).
            if (LogFile is { } file) File.AppendAllText(file, $"{DateTime.UtcNow:HH:mm:ss.fff} {line}\n");
        }
    }

    /// <summary>
    /// Where every output line goes, stamped with the harness's wall clock: <c>$KEEL_CHAOS_LOG_DIR/&lt;namespace&gt;-nX.log</c>
    /// when that variable is set, else nowhere (only the last lines are kept for failure messages).
    /// </summary>
    public string? LogFile { get; internal set; }

    /// <summary>The last lines of output.</summary>
    public string Tail()
    {
        lock (_output) return string.Join('\n', _output);
    }
}

/// <summary>Which server, and how to start its members.</summary>
public sealed record ClusterSpec(ServerKind Kind)
{
    /// <summary>
    /// Start member n1 under libfaketime with an offset file (Keel only: Go reads the clock without libc). Only one
    /// member: libfaketime slows every clock read of the process it is loaded into.
    /// </summary>
    public bool Faketime { get; init; }

    /// <summary>Data directory of member i, or null for the default.</summary>
    public Func<int, string?>? DataDirectoryOf { get; init; }
}

/// <summary>
/// Three real members (Keel via <c>dotnet keel.dll serve</c>, or etcd 3.4) started with etcd's flags on fixed ports
/// inside a <see cref="NetworkNamespace"/>; gRPC stubs per member whose sockets are made inside the namespace.
/// </summary>
public sealed class ChaosCluster : IAsyncDisposable
{
    /// <summary>libfaketime's preload library (Debian package libfaketime).</summary>
    public const string FaketimeLibrary = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

    private readonly NetworkNamespace _ns;
    private readonly NamespaceSockets _sockets;
    private readonly string _root;

    private ChaosCluster(ClusterSpec spec, NetworkNamespace ns, NamespaceSockets sockets, string root, IReadOnlyList<ChaosMember> members)
    {
        Spec = spec;
        _ns = ns;
        _sockets = sockets;
        _root = root;
        Members = members;
    }

    /// <summary>How the members were started.</summary>
    public ClusterSpec Spec { get; }

    /// <summary>The members.</summary>
    public IReadOnlyList<ChaosMember> Members { get; }

    /// <summary>The namespace the members live in.</summary>
    public NetworkNamespace Namespace => _ns;

    private string InitialCluster => string.Join(',', Members.Select(m => $"{m.Name}={m.PeerUrl}"));

    /// <summary>Starts three members and waits (bounded) until each serves a linearizable read and a put.</summary>
    public static async Task<ChaosCluster> StartAsync(ClusterSpec spec, NetworkNamespace ns, NamespaceSockets sockets, TimeSpan timeout)
    {
        var root = Directory.CreateTempSubdirectory("keel-chaos-").FullName;
        var members = Enumerable.Range(0, 3)
            .Select(i => new ChaosMember(i, spec.DataDirectoryOf?.Invoke(i) ?? Path.Combine(root, "n" + (i + 1).ToString(CultureInfo.InvariantCulture))))
            .ToArray();
        if (Environment.GetEnvironmentVariable("KEEL_CHAOS_LOG_DIR") is { Length: > 0 } logDirectory)
        {
            Directory.CreateDirectory(logDirectory);
            foreach (var member in members) member.LogFile = Path.Combine(logDirectory, $"{ns.Name}-{spec.Kind.ToString().ToLowerInvariant()}-{member.Name}.log");
        }
        var cluster = new ChaosCluster(spec, ns, sockets, root, members);
        try
        {
            // Each new TCP connection carries the mark of the member that opened it (see Partition).
            foreach (var member in members)
                await ns.IptablesAsync("-t", "mangle", "-A", "OUTPUT", "-p", "tcp", "-m", "conntrack", "--ctstate", "NEW", "-m", "owner", "--gid-owner", GroupOf(member), "-j", "CONNMARK", "--set-mark", MarkOf(member)).ConfigureAwait(false);
            foreach (var member in members)
            {
                if (spec.Faketime && member.Index == 0)
                {
                    member.FaketimeFile = Path.Combine(root, member.Name + ".faketime");
                    await File.WriteAllTextAsync(member.FaketimeFile, "+0\n").ConfigureAwait(false);
                }
                cluster.OpenChannel(member);
                cluster.Launch(member, existing: false);
            }
            var clock = Stopwatch.StartNew();
            foreach (var member in members)
                if (!await cluster.WaitServesAsync(member, timeout - clock.Elapsed).ConfigureAwait(false))
                    throw new TimeoutException($"{spec.Kind} member {member.Name} did not serve within {timeout.TotalSeconds:F0} s\n{cluster.Describe()}");
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private void OpenChannel(ChaosMember member)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(1),
            KeepAlivePingDelay = TimeSpan.FromSeconds(1),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(1),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
            UseProxy = false,
            ConnectCallback = async (context, token) =>
            {
                var endpoint = new IPEndPoint(IPAddress.Parse(context.DnsEndPoint.Host), context.DnsEndPoint.Port);
                var socket = await _sockets.ConnectAsync(endpoint, token).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        var channel = GrpcChannel.ForAddress(member.ClientUrl, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = true });
        member.Channel = channel;
        member.Kv = new KV.KVClient(channel);
        member.Maintenance = new Maintenance.MaintenanceClient(channel);
        member.Cluster = new Cluster.ClusterClient(channel);
        member.Lease = new Lease.LeaseClient(channel);
    }

    private void Launch(ChaosMember member, bool existing)
    {
        Directory.CreateDirectory(member.DataDirectory);
        var start = new ProcessStartInfo("ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = member.DataDirectory };
        // Its own group id (uid stays root): iptables' owner match tells the members' sockets apart on the shared lo.
        foreach (var arg in new[] { "netns", "exec", _ns.Name, "setpriv", "--regid", GroupOf(member), "--clear-groups", "--" }) start.ArgumentList.Add(arg);
        if (Spec.Kind == ServerKind.Etcd)
        {
            start.ArgumentList.Add(Environment.GetEnvironmentVariable(Keel.TestCluster.TestCluster.EtcdExecutableEnvironmentVariable) is { Length: > 0 } etcd ? etcd : "/usr/bin/etcd");
        }
        else
        {
            start.ArgumentList.Add("dotnet");
            start.ArgumentList.Add(Keel.TestCluster.TestCluster.KeelDll);
            start.ArgumentList.Add("serve");
        }
        string[] flags =
        [
            "--name", member.Name, "--data-dir", member.DataDirectory,
            "--listen-client-urls", member.ClientUrl, "--advertise-client-urls", member.ClientUrl,
            "--listen-peer-urls", member.PeerUrl, "--initial-advertise-peer-urls", member.PeerUrl,
            "--initial-cluster", InitialCluster, "--initial-cluster-state", existing ? "existing" : "new",
            "--initial-cluster-token", "keel-chaos",
        ];
        foreach (var flag in flags) start.ArgumentList.Add(flag);
        if (member.FaketimeFile is { } file)
        {
            start.Environment["LD_PRELOAD"] = FaketimeLibrary;
            start.Environment["FAKETIME_TIMESTAMP_FILE"] = file;
            start.Environment["FAKETIME_DONT_FAKE_MONOTONIC"] = "1";
            start.Environment["FAKETIME_CACHE_DURATION"] = "1";
        }
        start.Environment["DOTNET_gcServer"] = "0";
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data is { } line) member.Append(line); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is { } line) member.Append(line); };
        member.Append($"[harness] start {(existing ? "existing" : "new")}");
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        member.Process = process;
    }

    /// <summary>The group id member <paramref name="member"/> runs with (61000 + index).</summary>
    public static string GroupOf(ChaosMember member) => (61000 + member.Index).ToString(CultureInfo.InvariantCulture);

    /// <summary>The connection mark of TCP connections the member opened (index + 1).</summary>
    public static string MarkOf(ChaosMember member) => (member.Index + 1).ToString(CultureInfo.InvariantCulture);

    /// <summary>Whether the member's process runs.</summary>
    public static bool IsRunning(ChaosMember member) => member.Process is { HasExited: false };

    /// <summary>SIGKILL, and waits for the exit.</summary>
    public async Task KillAsync(int index)
    {
        var member = Members[index];
        if (member.Process is not { } process) return;
        try { process.Kill(); } catch (InvalidOperationException) { }
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await process.WaitForExitAsync(bound.Token).ConfigureAwait(false);
        member.Append("[harness] SIGKILL");
    }

    /// <summary>Restarts a killed member on its data directory with --initial-cluster-state existing (does not wait).</summary>
    public void Restart(int index)
    {
        var member = Members[index];
        member.Process?.Dispose();
        Launch(member, existing: true);
    }

    /// <summary>Sends a signal (STOP, CONT) to the member's process.</summary>
    public async Task SignalAsync(int index, string signal)
    {
        var pid = Members[index].Process?.Id ?? throw new InvalidOperationException("not running");
        await Shell.MustAsync("kill", "-" + signal, pid.ToString(CultureInfo.InvariantCulture)).ConfigureAwait(false);
        Members[index].Append("[harness] SIG" + signal);
    }

    /// <summary>
    /// One probe of "serves": a linearizable get and a put through the member, each with a deadline.
    /// </summary>
    public static async Task<bool> ServesAsync(ChaosMember member, TimeSpan deadline, CancellationToken token = default)
    {
        try
        {
            var key = Google.Protobuf.ByteString.CopyFromUtf8("chaos/probe/" + member.Name);
            await member.Kv.RangeAsync(new RangeRequest { Key = key }, deadline: DateTime.UtcNow + deadline, cancellationToken: token).ConfigureAwait(false);
            await member.Kv.PutAsync(new PutRequest { Key = key, Value = Google.Protobuf.ByteString.CopyFromUtf8("x") }, deadline: DateTime.UtcNow + deadline, cancellationToken: token).ConfigureAwait(false);
            return true;
        }
        catch (RpcException)
        {
            return false;
        }
    }

    /// <summary>Polls <see cref="ServesAsync"/> every 50 ms until it succeeds or <paramref name="timeout"/> passes.</summary>
    public async Task<bool> WaitServesAsync(ChaosMember member, TimeSpan timeout, CancellationToken token = default)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout && !token.IsCancellationRequested)
        {
            if (await ServesAsync(member, TimeSpan.FromSeconds(1), token).ConfigureAwait(false)) return true;
            if (member.Process is { HasExited: true } && !IsRunning(member)) { /* a killed member: keep polling until restarted */ }
            try { await Task.Delay(50, token).ConfigureAwait(false); } catch (OperationCanceledException) { break; }
        }
        return false;
    }

    /// <summary>The index of the member the running members agree leads (bounded retries).</summary>
    /// <exception cref="TimeoutException">No agreement in time.</exception>
    public async Task<int> FindLeaderAsync(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var ids = new List<(int Index, ulong Self, ulong Leader)>();
            foreach (var member in Members.Where(IsRunning))
            {
                try
                {
                    var status = await member.Maintenance.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(1)).ConfigureAwait(false);
                    ids.Add((member.Index, status.Header.MemberId, status.Leader));
                }
                catch (RpcException) { }
            }
            var leaders = ids.Select(i => i.Leader).Distinct().ToArray();
            if (ids.Count == Members.Count(IsRunning) && leaders is [var leader] && leader != 0 && ids.FirstOrDefault(i => i.Self == leader) is { Self: not 0 } found)
                return found.Index;
            await Task.Delay(100).ConfigureAwait(false);
        }
        throw new TimeoutException($"no agreed leader within {timeout.TotalSeconds:F0} s\n{Describe()}");
    }

    /// <summary>Moves leadership to member <paramref name="index"/> (etcd's MoveLeader through the current leader) and
    /// waits until every member agrees.</summary>
    /// <exception cref="TimeoutException">Leadership did not move in time.</exception>
    public async Task MoveLeaderAsync(int index, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var leader = await FindLeaderAsync(timeout - clock.Elapsed).ConfigureAwait(false);
            if (leader == index) return;
            try
            {
                var status = await Members[index].Maintenance.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2)).ConfigureAwait(false);
                await Members[leader].Maintenance.MoveLeaderAsync(new MoveLeaderRequest { TargetID = status.Header.MemberId }, deadline: DateTime.UtcNow.AddSeconds(5)).ConfigureAwait(false);
            }
            catch (RpcException e)
            {
                Members[index].Append("[harness] move leader: " + e.Status.Detail);
                await Task.Delay(200).ConfigureAwait(false);
            }
        }
        throw new TimeoutException($"leadership did not move to n{index + 1} within {timeout.TotalSeconds:F0} s\n{Describe()}");
    }

    /// <summary>The last output lines of every member.</summary>
    public string Describe() => string.Join('\n', Members.Select(m => $"--- {m.Name} ({(IsRunning(m) ? "running" : "stopped")}):\n{m.Tail()}"));

    /// <summary>Kills every member and deletes the data directories.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var member in Members)
        {
            if (member.Process is { } process)
            {
                try
                {
                    if (!process.HasExited)
                    {
                        await Shell.RunAsync("kill", ["-CONT", process.Id.ToString(CultureInfo.InvariantCulture)]).ConfigureAwait(false);
                        process.Kill(entireProcessTree: true);
                        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                        await process.WaitForExitAsync(bound.Token).ConfigureAwait(false);
                    }
                }
                catch (Exception e) when (e is InvalidOperationException or OperationCanceledException) { }
                process.Dispose();
            }
            member.Channel?.Dispose();
        }
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
