using System.Diagnostics;
using System.Text.Json;

namespace Keel.TestCluster;

/// <summary>
/// Starts 1 or 3 real server processes (Keel or etcd 3.4, chosen by <see cref="ServerSelection"/>) on free loopback
/// ports, each with its own data directory, with etcd's flags and meanings; waits until every member answers
/// <c>etcdctl endpoint health</c>; kills a member with SIGKILL and restarts it on the same data directory with
/// <c>--initial-cluster-state existing</c>; finds the leader from <c>etcdctl endpoint status</c>. Disposing kills every
/// process and deletes the data directories.
/// </summary>
public sealed class TestCluster : IAsyncDisposable
{
    /// <summary>Overrides the etcd binary (default <c>/usr/bin/etcd</c>).</summary>
    public const string EtcdExecutableEnvironmentVariable = "KEEL_TEST_ETCD";

    /// <summary>Overrides the path of keel.dll (default: <c>keel-server/keel.dll</c> next to the test assembly).</summary>
    public const string KeelDllEnvironmentVariable = "KEEL_TEST_KEEL_DLL";

    /// <summary>The default bound on waiting for members to become healthy.</summary>
    public static readonly TimeSpan DefaultStartTimeout = TimeSpan.FromSeconds(60);

    private const int PortBindAttempts = 3;
    private readonly string _root;
    private readonly TimeSpan _startTimeout;
    private bool _disposed;

    private TestCluster(ServerKind kind, string root, IReadOnlyList<TestClusterMember> members, TimeSpan startTimeout, TestClusterOptions options)
    {
        Options = options;
        Kind = kind;
        _root = root;
        Members = members;
        _startTimeout = startTimeout;
    }

    /// <summary>Extra flags, environment and data directories of the members.</summary>
    public TestClusterOptions Options { get; }

    /// <summary>Which server this cluster runs.</summary>
    public ServerKind Kind { get; }

    /// <summary>The members, in order n1, n2, ...</summary>
    public IReadOnlyList<TestClusterMember> Members { get; }

    /// <summary>Every member's client URL.</summary>
    public IReadOnlyList<string> ClientUrls => Members.Select(m => m.ClientUrl).ToArray();

    /// <summary>The <c>--initial-cluster</c> value: <c>n1=http://127.0.0.1:Q1,...</c>.</summary>
    public string InitialCluster => string.Join(',', Members.Select(m => $"{m.Name}={m.PeerUrl}"));

    /// <summary>
    /// Starts a cluster of <paramref name="memberCount"/> members of <paramref name="kind"/> (default: from
    /// <see cref="ServerSelection.FromEnvironment"/>) and waits until every member is healthy.
    /// </summary>
    /// <exception cref="TimeoutException">A member did not become healthy; the message holds every member's output.</exception>
    public static async Task<TestCluster> StartAsync(int memberCount, ServerKind? kind = null, TimeSpan? startTimeout = null, TestClusterOptions? options = null)
    {
        options ??= new TestClusterOptions();
        if (memberCount < 1) throw new ArgumentOutOfRangeException(nameof(memberCount));
        var serverKind = kind ?? ServerSelection.FromEnvironment();
        var timeout = startTimeout ?? DefaultStartTimeout;
        for (var attempt = 1; ; attempt++)
        {
            var root = Directory.CreateTempSubdirectory("keel-cluster-").FullName;
            var ports = FreePorts.Reserve(2 * memberCount);
            var members = Enumerable.Range(0, memberCount)
                .Select(i => new TestClusterMember(i, $"n{i + 1}", ports[2 * i], ports[2 * i + 1],
                    options.DataDirectoryOf?.Invoke(i, root) ?? Path.Combine(root, $"n{i + 1}"), options.ClientScheme, options.PeerScheme))
                .ToArray();
            var cluster = new TestCluster(serverKind, root, members, timeout, options);
            try
            {
                if (options.PrepareMember is { } prepare)
                    foreach (var member in members) await prepare(member, cluster.InitialCluster).ConfigureAwait(false);
                foreach (var member in members) cluster.Launch(member, existing: false);
                await cluster.WaitUntilHealthyAsync(members, timeout).ConfigureAwait(false);
                return cluster;
            }
            catch (Exception e) when (attempt < PortBindAttempts && cluster.LostPortRace())
            {
                // Another process took a port between FreePorts.Reserve and the server's bind: fresh ports.
                await cluster.DisposeAsync().ConfigureAwait(false);
                _ = e;
            }
            catch
            {
                await cluster.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
    }

    /// <summary>Waits until member <paramref name="memberIndex"/>'s process exits by itself and returns its exit code.</summary>
    /// <exception cref="TimeoutException">It is still running after <paramref name="timeout"/>.</exception>
    public async Task<int> WaitForExitAsync(int memberIndex, TimeSpan timeout)
    {
        var member = Members[memberIndex];
        var process = member.Process ?? throw new InvalidOperationException($"{member} was never started");
        using var bound = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(bound.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"{member} still runs after {timeout.TotalSeconds:F0} s\n{DescribeOutput()}");
        }
        return process.ExitCode;
    }

    /// <summary>
    /// Stops member <paramref name="memberIndex"/> gracefully with SIGTERM (a leader hands off first) and waits until it
    /// exits; returns its exit code.
    /// </summary>
    /// <exception cref="TimeoutException">It did not exit within <paramref name="timeout"/> (it is then killed).</exception>
    public async Task<int> StopGracefullyAsync(int memberIndex, TimeSpan timeout)
    {
        var member = Members[memberIndex];
        var process = member.Process ?? throw new InvalidOperationException($"{member} was never started");
        ChildProcesses.Terminate(process);
        member.Output.Append("harness", "SIGTERM");
        try
        {
            return await WaitForExitAsync(memberIndex, timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            ChildProcesses.KillTree(process);
            throw;
        }
    }

    /// <summary>An etcdctl runner against every member (or the given members).</summary>
    public Etcdctl Etcdctl(params int[] memberIndexes) =>
        new(memberIndexes.Length == 0 ? ClientUrls : memberIndexes.Select(i => Members[i].ClientUrl), tls: Options.EtcdctlTls);

    /// <summary>
    /// Freezes member <paramref name="memberIndex"/> with SIGSTOP, or thaws it with SIGCONT: its peers see it go silent
    /// and come back, as across a partition. A frozen member is still killed by <see cref="DisposeAsync"/>.
    /// </summary>
    public void Freeze(int memberIndex, bool frozen)
    {
        var member = Members[memberIndex];
        var process = member.Process ?? throw new InvalidOperationException($"{member} was never started");
        ChildProcesses.Freeze(process, frozen);
        member.Output.Append("harness", frozen ? "SIGSTOP" : "SIGCONT");
    }

    /// <summary>Kills member <paramref name="memberIndex"/> with SIGKILL (whole process tree) and waits until it is gone.</summary>
    public Task KillAsync(int memberIndex)
    {
        var member = Members[memberIndex];
        if (member.Process is { } process)
        {
            ChildProcesses.KillTree(process);
            member.Output.Append("harness", "SIGKILL");
        }
        return Task.CompletedTask;
    }

    /// <summary>
    /// Restarts a killed member on its data directory with <c>--initial-cluster-state existing</c> and waits until it is
    /// healthy.
    /// </summary>
    /// <exception cref="InvalidOperationException">The member is still running.</exception>
    /// <exception cref="TimeoutException">It did not become healthy in time; the message holds its output.</exception>
    public async Task RestartAsync(int memberIndex, TimeSpan? timeout = null)
    {
        var member = Members[memberIndex];
        if (member.IsRunning) throw new InvalidOperationException($"{member} is still running; kill it first");
        member.Process?.Dispose();
        Launch(member, existing: true);
        await WaitUntilHealthyAsync([member], timeout ?? _startTimeout).ConfigureAwait(false);
    }

    /// <summary>
    /// Starts a killed member again on its data directory (<c>--initial-cluster-state existing</c>) without waiting for
    /// it to serve: for members expected not to (refused by their peers, a bad flag).
    /// </summary>
    /// <exception cref="InvalidOperationException">The member is still running.</exception>
    public void Relaunch(int memberIndex)
    {
        var member = Members[memberIndex];
        if (member.IsRunning) throw new InvalidOperationException($"{member} is still running; kill it first");
        member.Process?.Dispose();
        Launch(member, existing: true);
    }

    /// <summary>Waits until each of <paramref name="members"/> answers <c>etcdctl endpoint health</c>.</summary>
    /// <exception cref="TimeoutException">One did not in time, or its process exited; the message holds the output.</exception>
    public async Task WaitUntilHealthyAsync(IEnumerable<TestClusterMember> members, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        var pending = members.ToList();
        var lastAnswers = new Dictionary<string, string>();
        while (pending.Count > 0)
        {
            foreach (var dead in pending.Where(m => !m.IsRunning))
                throw new TimeoutException($"{dead} exited during startup (exit code {dead.Process?.ExitCode}).\n{DescribeOutput()}");
            var checks = pending.Select(async m =>
            {
                var remaining = timeout - deadline.Elapsed;
                if (remaining <= TimeSpan.Zero) return (m, false, "out of time");
                var bound = remaining < TimeSpan.FromSeconds(5) ? remaining : TimeSpan.FromSeconds(5);
                try
                {
                    var result = await new Etcdctl([m.ClientUrl], tls: Options.EtcdctlTls).RunAsync(["endpoint", "health", "--command-timeout=2s"], null, bound).ConfigureAwait(false);
                    return (m, result.ExitCode == 0, result.ToString());
                }
                catch (TimeoutException e)
                {
                    return (m, false, e.Message);
                }
            }).ToArray();
            foreach (var (member, healthy, answer) in await Task.WhenAll(checks).ConfigureAwait(false))
            {
                lastAnswers[member.Name] = answer;
                if (healthy) pending.Remove(member);
            }
            if (pending.Count == 0) return;
            if (deadline.Elapsed > timeout)
            {
                var answers = string.Join('\n', pending.Select(m => $"{m.Name}: {lastAnswers.GetValueOrDefault(m.Name)}"));
                throw new TimeoutException(
                    $"{Kind} members {string.Join(", ", pending)} not healthy within {timeout.TotalSeconds} s.\n{answers}\n{DescribeOutput()}");
            }
            // The next round of etcdctl calls is itself the pacing: each takes tens of milliseconds or waits for its timeout.
            await Task.Delay(100).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The index of the member every running member agrees is the leader, from <c>etcdctl endpoint status -w json</c>
    /// against each running member; retried (bounded) through elections.
    /// </summary>
    /// <exception cref="TimeoutException">The running members did not agree on a running leader in time.</exception>
    public async Task<int> FindLeaderAsync(TimeSpan? timeout = null)
    {
        var bound = timeout ?? TimeSpan.FromSeconds(30);
        var clock = Stopwatch.StartNew();
        var last = "";
        while (clock.Elapsed < bound)
        {
            var running = Members.Where(m => m.IsRunning).ToArray();
            var statuses = await Task.WhenAll(running.Select(m => StatusAsync(m, Options.EtcdctlTls))).ConfigureAwait(false);
            last = string.Join("; ", statuses.Select((s, i) => $"{running[i].Name}: {s.Error ?? $"member {s.MemberId:x} leader {s.LeaderId:x}"}"));
            if (statuses.All(s => s.Error is null))
            {
                var leaders = statuses.Select(s => s.LeaderId).Distinct().ToArray();
                if (leaders is [var leaderId] && leaderId != 0)
                {
                    var index = Array.FindIndex(statuses, s => s.MemberId == leaderId);
                    if (index >= 0) return running[index].Index;
                }
            }
            await Task.Delay(100).ConfigureAwait(false);
        }
        throw new TimeoutException($"no agreed leader among running members within {bound.TotalSeconds} s: {last}\n{DescribeOutput()}");
    }

    /// <summary>The store revision a member reports in <c>endpoint status</c> (its applied revision).</summary>
    /// <exception cref="InvalidOperationException">The member did not answer.</exception>
    public async Task<long> RevisionAsync(int memberIndex)
    {
        var status = await StatusAsync(Members[memberIndex], Options.EtcdctlTls).ConfigureAwait(false);
        return status.Error is null ? status.Revision : throw new InvalidOperationException(status.Error);
    }

    /// <summary>The recent output of every member, for failure messages.</summary>
    public string DescribeOutput(int lastLinesPerMember = 60) =>
        string.Join('\n', Members.Select(m =>
            $"--- {m.Name} {m.ClientUrl} ({(m.IsRunning ? "running" : "stopped")}, incarnation {m.Incarnation}), last {lastLinesPerMember} lines:\n{m.Output.Text(lastLinesPerMember)}"));

    /// <summary>Kills every member (SIGKILL) and deletes the data directories.</summary>
    public ValueTask DisposeAsync()
    {
        if (_disposed) return ValueTask.CompletedTask;
        _disposed = true;
        foreach (var member in Members)
        {
            if (member.Process is { } process)
            {
                ChildProcesses.KillTree(process);
                process.Dispose();
            }
        }
        try { Directory.Delete(_root, recursive: true); }
        catch (IOException) { /* best effort: a temp directory */ }
        catch (UnauthorizedAccessException) { /* best effort */ }
        return ValueTask.CompletedTask;
    }

    private bool LostPortRace() =>
        Members.Any(m => m.Output.Text().Contains("address already in use", StringComparison.OrdinalIgnoreCase));

    private void Launch(TestClusterMember member, bool existing)
    {
        Directory.CreateDirectory(member.DataDirectory);
        var start = CreateStartInfo(member, existing);
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => member.Output.Append("out", e.Data);
        process.ErrorDataReceived += (_, e) => member.Output.Append("err", e.Data);
        member.Incarnation++;
        member.Output.Append("harness", $"start #{member.Incarnation}: {start.FileName} {string.Join(' ', start.ArgumentList)}");
        process.Start();
        ChildProcesses.Register(process);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        member.Process = process;
    }

    private ProcessStartInfo CreateStartInfo(TestClusterMember member, bool existing)
    {
        string[] flags =
        [
            "--name", member.Name,
            "--data-dir", member.DataDirectory,
            "--listen-client-urls", member.ClientUrl,
            "--advertise-client-urls", member.ClientUrl,
            "--listen-peer-urls", member.PeerUrl,
            "--initial-advertise-peer-urls", member.PeerUrl,
            "--initial-cluster", InitialCluster,
            "--initial-cluster-state", existing ? "existing" : "new",
        ];
        ProcessStartInfo start;
        if (Kind == ServerKind.Etcd)
        {
            start = new ProcessStartInfo(EtcdExecutable);
        }
        else
        {
            start = new ProcessStartInfo("dotnet");
            start.ArgumentList.Add(KeelDll);
            start.ArgumentList.Add("serve");
        }
        foreach (var flag in flags) start.ArgumentList.Add(flag);
        foreach (var flag in Options.ExtraFlags) start.ArgumentList.Add(flag);
        if (Options.FlagsOf?.Invoke(member.Index) is { } own)
            foreach (var flag in own) start.ArgumentList.Add(flag);
        if (Options.EnvironmentOf?.Invoke(member.Index, member.Incarnation + 1) is { } environment)
            foreach (var (name, value) in environment) start.Environment[name] = value;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        start.WorkingDirectory = member.DataDirectory;
        return start;
    }

    private static string EtcdExecutable =>
        Environment.GetEnvironmentVariable(EtcdExecutableEnvironmentVariable) is { Length: > 0 } path ? path : "/usr/bin/etcd";

    /// <summary>Where keel.dll is: <see cref="KeelDllEnvironmentVariable"/>, else keel-server/keel.dll or keel.dll next to the tests.</summary>
    /// <exception cref="FileNotFoundException">keel.dll is in none of those places.</exception>
    public static string KeelDll
    {
        get
        {
            if (Environment.GetEnvironmentVariable(KeelDllEnvironmentVariable) is { Length: > 0 } path) return path;
            string[] candidates =
            [
                Path.Combine(AppContext.BaseDirectory, "keel-server", "keel.dll"),
                Path.Combine(AppContext.BaseDirectory, "keel.dll"),
            ];
            return candidates.FirstOrDefault(File.Exists)
                   ?? throw new FileNotFoundException(
                       $"keel.dll not found in {string.Join(" or ", candidates)}; build the test project with the Keel.Cli " +
                       $"reference, set {KeelDllEnvironmentVariable}, or run against etcd with {ServerSelection.EnvironmentVariable}=etcd.");
        }
    }

    private static async Task<MemberStatus> StatusAsync(TestClusterMember member, EtcdctlTls? tls)
    {
        try
        {
            // host:port without the scheme: etcdctl 3.4 sends a per-endpoint call's :authority as the endpoint string
            // verbatim, "http://127.0.0.1:P" with a scheme, which some HTTP/2 servers reject. The harness must find the
            // leader either way; ClusterTests exercise the http:// form on purpose.
            var hostPort = new Uri(member.ClientUrl).Authority;
            var result = await new Etcdctl([hostPort], tls: tls).RunAsync(["endpoint", "status", "-w", "json", "--command-timeout=2s"], null, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            if (result.ExitCode != 0) return new MemberStatus(0, 0, 0, $"exit {result.ExitCode}: {result.StandardError.Trim()}");
            using var json = JsonDocument.Parse(result.StandardOutput);
            var status = json.RootElement[0].GetProperty("Status");
            var header = status.GetProperty("header");
            return new MemberStatus(
                header.GetProperty("member_id").GetUInt64(),
                status.GetProperty("leader").GetUInt64(),
                header.TryGetProperty("revision", out var revision) ? revision.GetInt64() : 0,
                null);
        }
        catch (Exception e) when (e is TimeoutException or JsonException or KeyNotFoundException or InvalidOperationException or IndexOutOfRangeException)
        {
            return new MemberStatus(0, 0, 0, e.Message);
        }
    }

    private sealed record MemberStatus(ulong MemberId, ulong LeaderId, long Revision, string? Error);
}

/// <summary>How a <see cref="TestCluster"/> starts its members beyond the common flags.</summary>
public sealed record TestClusterOptions
{
    /// <summary>Flags added to every member's command line (for example <c>--quota-backend-bytes</c>).</summary>
    public IReadOnlyList<string> ExtraFlags { get; init; } = [];

    /// <summary>Flags added to one member's command line (by index), after <see cref="ExtraFlags"/>, or null for none.</summary>
    public Func<int, IReadOnlyList<string>>? FlagsOf { get; init; }

    /// <summary>The scheme of the client URLs: <c>http</c>, or <c>https</c> (then give the TLS flags in <see cref="ExtraFlags"/>).</summary>
    public string ClientScheme { get; init; } = "http";

    /// <summary>The scheme of the peer URLs: <c>http</c>, or <c>https</c> (then give the peer TLS flags).</summary>
    public string PeerScheme { get; init; } = "http";

    /// <summary>TLS files every etcdctl the cluster runs gets (health checks, status, <see cref="TestCluster.Etcdctl"/>).</summary>
    public EtcdctlTls? EtcdctlTls { get; init; }

    /// <summary>Environment variables for member (index, incarnation: 1 on the first start), or null for none.</summary>
    public Func<int, int, IReadOnlyDictionary<string, string>?>? EnvironmentOf { get; init; }

    /// <summary>Runs before each member's first start with its <c>--initial-cluster</c> value (for example to restore a backup into its data directory).</summary>
    public Func<TestClusterMember, string, Task>? PrepareMember { get; init; }

    /// <summary>The data directory of member (index, cluster root), or null for the default under the cluster's root.</summary>
    public Func<int, string, string?>? DataDirectoryOf { get; init; }
}
