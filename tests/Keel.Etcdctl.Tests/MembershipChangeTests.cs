using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Keel.TestCluster;
using Xunit.Abstractions;
using Ctl = Keel.TestCluster.Etcdctl;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// Membership changes on a running 3-member cluster, driven by etcdctl 3.4 (etcd's Cluster API,
/// <c>etcdserver/api/v3rpc/member.go</c>): <c>member add</c> of a voter and of a learner that a fresh process joins with
/// <c>--initial-cluster-state existing</c> and an empty data directory, <c>member promote</c>, <c>member remove</c>
/// (of the added member and of the leader itself), and a SIGKILLed follower restarted on its data directory that
/// catches up to the same <c>endpoint hashkv</c> as the others. Each test starts its own cluster and stops every
/// process it started, also on failure.
/// </summary>
public sealed class MembershipChangeTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(30);
    private TestCluster.TestCluster? _cluster;
    private readonly List<ExtraMember> _extras = [];

    private TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => _cluster = await TestCluster.TestCluster.StartAsync(3);

    public async Task DisposeAsync()
    {
        foreach (var extra in _extras) extra.Dispose();
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    [Fact(Timeout = 90_000)]
    public async Task A_voter_added_with_member_add_joins_catches_up_and_is_removed_again()
    {
        var ctl = Cluster.Etcdctl();
        for (var i = 0; i < 5; i++) await ctl.PutAsync($"add/before/{i}", $"b{i}");

        var (newId, extra) = await AddAndStartAsync("n4", learner: false);
        for (var i = 0; i < 5; i++) await ctl.PutAsync($"add/after/{i}", $"a{i}");
        var newCtl = new Ctl([extra.ClientUrl]);
        await WaitForSerializableValueAsync(newCtl, "add/before/0", "b0", extra);
        await WaitForSerializableValueAsync(newCtl, "add/after/4", "a4", extra);

        var line = await WaitForMemberLineAsync(ctl, newId, l => l == $"{newId:x}, started, n4, {extra.PeerUrl}, {extra.ClientUrl}, false", extra);
        output.WriteLine($"member list line of the new member: {line}");
        // A joining member knows itself by the id the cluster gave it: it must never dial its own peer port.
        Assert.DoesNotContain("refused: hello", extra.Output.Text());
        Assert.Equal(4, (await ctl.LinesAsync("member", "list")).Count);
        // A write through the new member itself is committed by the 4-voter cluster.
        await newCtl.PutAsync("add/via-n4", "x");

        var removed = await MembershipCommandAsync(ctl, "member", "remove", newId.ToString("x"));
        Assert.True(removed.ExitCode == 0, $"{removed}\n{Describe(extra)}");
        extra.Dispose();
        await ctl.PutAsync("add/after-remove", "y");
        var lines = await ctl.LinesAsync("member", "list");
        Assert.True(lines.Count == 3, string.Join('\n', lines));
        Assert.DoesNotContain(lines, l => l.StartsWith($"{newId:x},", StringComparison.Ordinal));
        Assert.Equal(["add/after-remove", "y"], await ctl.LinesAsync("get", "add/after-remove"));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_learner_catches_up_and_is_promoted_to_voter()
    {
        var ctl = Cluster.Etcdctl();
        for (var i = 0; i < 5; i++) await ctl.PutAsync($"learn/before/{i}", $"b{i}");

        var (newId, extra) = await AddAndStartAsync("n4", learner: true);
        var learnerLine = await WaitForMemberLineAsync(ctl, newId, l => l.StartsWith($"{newId:x}, ", StringComparison.Ordinal), extra);
        Assert.EndsWith(", true", learnerLine);
        await ctl.PutAsync("learn/after", "a");
        var newCtl = new Ctl([extra.ClientUrl]);
        await WaitForSerializableValueAsync(newCtl, "learn/after", "a", extra);

        // etcd refuses to promote a learner that is not yet in sync with the leader: retry, bounded.
        var clock = Stopwatch.StartNew();
        EtcdctlResult promote;
        while (true)
        {
            promote = await ctl.RunAsync("member", "promote", newId.ToString("x"));
            if (promote.ExitCode == 0 || clock.Elapsed > StepTimeout) break;
            await Task.Delay(200);
        }
        Assert.True(promote.ExitCode == 0, $"{promote}\n{Describe(extra)}");

        using var list = await ctl.JsonAsync("member", "list");
        var promoted = list.RootElement.GetProperty("members").EnumerateArray().Single(m => m.GetProperty("ID").GetUInt64() == newId);
        Assert.False(promoted.TryGetProperty("isLearner", out var isLearner) && isLearner.GetBoolean(), promoted.ToString());
        var line = await WaitForMemberLineAsync(ctl, newId, l => l.EndsWith(", false", StringComparison.Ordinal), extra);
        output.WriteLine($"after promote: {line}");
        Assert.All(await ctl.LinesAsync("member", "list"), l => Assert.EndsWith(", false", l));
        await newCtl.PutAsync("learn/via-promoted", "v");
        await WaitForSerializableValueAsync(newCtl, "learn/via-promoted", "v", extra);
    }

    [Fact(Timeout = 90_000)]
    public async Task Removing_the_leader_elects_a_new_leader_among_the_rest_and_writes_continue()
    {
        var ctl = Cluster.Etcdctl();
        await ctl.PutAsync("rmleader/before", "b");
        var leader = await Cluster.FindLeaderAsync();
        var leaderId = await MemberIdAsync(ctl, Cluster.Members[leader].Name);
        var rest = Enumerable.Range(0, 3).Where(i => i != leader).ToArray();
        var restCtl = Cluster.Etcdctl(rest);

        var removed = await MembershipCommandAsync(restCtl, "member", "remove", leaderId.ToString("x"));
        Assert.True(removed.ExitCode == 0, $"{removed}\n{Cluster.DescribeOutput()}");
        // The removed member stops by itself once it applied its removal, with an error, as etcd does.
        var exitCode = await Cluster.WaitForExitAsync(leader, StepTimeout);
        Assert.True(exitCode != 0, $"the removed member exited with 0\n{Cluster.DescribeOutput()}");
        Assert.Contains("permanently removed from the cluster", Cluster.Members[leader].Output.Text(), StringComparison.Ordinal);

        var successor = await Cluster.FindLeaderAsync();
        Assert.Contains(successor, rest);
        output.WriteLine($"removed leader {Cluster.Members[leader]}, new leader {Cluster.Members[successor]}");
        for (var i = 0; i < 5; i++) await restCtl.PutAsync($"rmleader/after/{i}", $"a{i}");
        var lines = await restCtl.LinesAsync("member", "list");
        Assert.True(lines.Count == 2, string.Join('\n', lines));
        Assert.DoesNotContain(lines, l => l.StartsWith($"{leaderId:x},", StringComparison.Ordinal));
        foreach (var i in rest)
            await WaitForSerializableValueAsync(Cluster.Etcdctl(i), "rmleader/after/4", "a4", null);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_member_frozen_while_it_is_removed_is_told_so_when_it_wakes_and_stops()
    {
        // A member cut off while the rest commit its removal never applies it; etcd's peers answer it "removed", and it
        // stops. Without the notice it would run on, campaign and serve stale reads until an operator stopped it.
        var ctl = Cluster.Etcdctl();
        await ctl.PutAsync("cutoff/before", "b");
        var leader = await Cluster.FindLeaderAsync();
        var cutOff = (leader + 1) % 3;
        var cutOffId = await MemberIdAsync(ctl, Cluster.Members[cutOff].Name);
        var rest = Enumerable.Range(0, 3).Where(i => i != cutOff).ToArray();
        var restCtl = Cluster.Etcdctl(rest);

        Cluster.Freeze(cutOff, frozen: true);
        // Until the others' connections to it fail their liveness check, what they send it waits in its socket buffers
        // and it would read the commit of its own removal on waking: wait until every other member gave it up.
        // (Keel's log lines; etcd 3.4, when this suite runs against it, only has to stop the member in the end.)
        var keel = Cluster.Kind == ServerKind.Keel;
        var clock = Stopwatch.StartNew();
        while (keel && !rest.All(i => Cluster.Members[i].Output.Text().Contains($"peer {cutOffId:x16} connection lost", StringComparison.Ordinal)))
        {
            Assert.True(clock.Elapsed < StepTimeout, $"the others never gave up their connections to the frozen member\n{Cluster.DescribeOutput()}");
            await Task.Delay(100);
        }
        var removed = await MembershipCommandAsync(restCtl, "member", "remove", cutOffId.ToString("x"));
        Assert.True(removed.ExitCode == 0, $"{removed}\n{Cluster.DescribeOutput()}");
        for (var i = 0; i < 3; i++) await restCtl.PutAsync($"cutoff/after/{i}", $"a{i}");
        // A removed peer's connection may first deliver what was queued for it (at most 2 s): wait until it closed.
        while (keel && !rest.All(i => Cluster.Members[i].Output.Text().Contains($"removed peer {cutOffId:x16}: connection closed", StringComparison.Ordinal)))
        {
            Assert.True(clock.Elapsed < StepTimeout, $"the others never closed their connections to the removed member\n{Cluster.DescribeOutput()}");
            await Task.Delay(100);
        }
        Cluster.Freeze(cutOff, frozen: false);

        var exitCode = await Cluster.WaitForExitAsync(cutOff, StepTimeout);
        var text = Cluster.Members[cutOff].Output.Text();
        Assert.True(exitCode != 0, $"the removed member exited with 0\n{Cluster.DescribeOutput()}");
        Assert.Contains("permanently removed from the cluster", text, StringComparison.Ordinal);
        Assert.True(!keel || text.Contains("told it so", StringComparison.Ordinal), $"it did not stop on a peer's notice:\n{text}");
        var lines = await restCtl.LinesAsync("member", "list");
        Assert.True(lines.Count == 2, string.Join('\n', lines));
        // The rest go on: the write after the exit lands one revision after the writes before it.
        var before = await restCtl.PutAsync("cutoff/last", "1");
        Assert.Equal(before + 1, await restCtl.PutAsync("cutoff/last", "2"));
    }

    [Fact(Timeout = 90_000)]
    public async Task A_SIGKILLed_follower_restarted_on_its_data_dir_catches_up_to_the_same_hashkv()
    {
        var ctl = Cluster.Etcdctl();
        for (var i = 0; i < 10; i++) await ctl.PutAsync($"rejoin/before/{i}", $"b{i}");
        var leader = await Cluster.FindLeaderAsync();
        var follower = (leader + 1) % 3;
        await Cluster.KillAsync(follower);
        Assert.False(Cluster.Members[follower].IsRunning);

        var live = Cluster.Etcdctl(Enumerable.Range(0, 3).Where(i => i != follower).ToArray());
        long last = 0;
        for (var i = 0; i < 20; i++) last = await live.PutAsync($"rejoin/down/{i}", $"d{i}");
        await live.LinesAsync("del", "rejoin/before/0");
        last++;

        await Cluster.RestartAsync(follower);
        Assert.Equal(2, Cluster.Members[follower].Incarnation);
        var restarted = Cluster.Etcdctl(follower);
        await WaitForSerializableValueAsync(restarted, "rejoin/down/19", "d19", null);
        var clock = Stopwatch.StartNew();
        while (await Cluster.RevisionAsync(follower) < last)
        {
            Assert.True(clock.Elapsed < StepTimeout, $"{Cluster.Members[follower]} did not reach revision {last}\n{Cluster.DescribeOutput()}");
            await Task.Delay(100);
        }
        using var gone = await restarted.JsonAsync("get", "rejoin/before/0", "--consistency=s");
        Assert.Equal(0, gone.RootElement.TryGetProperty("count", out var count) ? count.GetInt64() : 0);

        // Every member's hash of the store at the same revision is the same (hashkv needs host:port against Keel).
        var hostPorts = new Ctl(Cluster.Members.Select(m => new Uri(m.ClientUrl).Authority));
        using var hashes = await hostPorts.JsonAsync("endpoint", "hashkv", $"--rev={last}");
        var byEndpoint = hashes.RootElement.EnumerateArray()
            .ToDictionary(e => e.GetProperty("Endpoint").GetString()!, e => e.GetProperty("HashKV").GetProperty("hash").GetUInt32());
        output.WriteLine($"hashkv at revision {last}: {string.Join(", ", byEndpoint.Select(kv => $"{kv.Key}={kv.Value}"))}");
        Assert.Equal(3, byEndpoint.Count);
        Assert.True(byEndpoint.Values.Distinct().Count() == 1, $"hashkv differs at revision {last}: {hashes.RootElement}\n{Cluster.DescribeOutput()}");
        Assert.Equal(last + 1, await ctl.PutAsync("rejoin/after", "a"));
    }

    [Fact(Timeout = 90_000)]
    public async Task An_added_member_SIGKILLed_and_restarted_on_its_data_dir_rejoins_and_catches_up()
    {
        var ctl = Cluster.Etcdctl();
        await ctl.PutAsync("addrestart/before", "b");
        var (newId, extra) = await AddAndStartAsync("n4", learner: false);
        var newCtl = new Ctl([extra.ClientUrl]);
        await WaitForSerializableValueAsync(newCtl, "addrestart/before", "b", extra);
        await WaitForMemberLineAsync(ctl, newId, l => l.Contains(", started, n4, ", StringComparison.Ordinal), extra);

        extra.Kill();
        long last = 0;
        for (var i = 0; i < 10; i++) last = await ctl.PutAsync($"addrestart/down/{i}", $"d{i}");
        // Restarted with the same flags (etcd ignores --initial-cluster-state once the data directory holds a member).
        extra.Start(extra.InitialCluster!);
        await WaitForSerializableValueAsync(newCtl, "addrestart/down/9", "d9", extra);
        Assert.True(extra.IsRunning, Describe(extra));

        var endpoints = Cluster.Members.Select(m => new Uri(m.ClientUrl).Authority).Append(new Uri(extra.ClientUrl).Authority).ToArray();
        using var hashes = await new Ctl(endpoints).JsonAsync("endpoint", "hashkv", $"--rev={last}");
        var values = hashes.RootElement.EnumerateArray().Select(e => e.GetProperty("HashKV").GetProperty("hash").GetUInt32()).ToArray();
        Assert.Equal(4, values.Length);
        Assert.True(values.Distinct().Count() == 1, $"hashkv differs at revision {last}: {hashes.RootElement}\n{Describe(extra)}");
        await newCtl.PutAsync("addrestart/via-n4", "x");
    }

    /// <summary>
    /// <c>etcdctl member add</c> (as a learner if asked), then starts the new member with the printed
    /// ETCD_INITIAL_CLUSTER, <c>--initial-cluster-state existing</c> and an empty data directory, and waits until it
    /// answers <c>endpoint health</c> (a learner: <c>endpoint status</c>, which learners serve).
    /// </summary>
    private async Task<(ulong Id, ExtraMember Member)> AddAndStartAsync(string name, bool learner)
    {
        var ports = FreePorts.Reserve(2);
        var extra = new ExtraMember(name, ports[0], ports[1], Cluster.Kind);
        _extras.Add(extra);
        string[] args = learner
            ? ["member", "add", name, $"--peer-urls={extra.PeerUrl}", "--learner"]
            : ["member", "add", name, $"--peer-urls={extra.PeerUrl}"];
        var added = await MembershipCommandAsync(Cluster.Etcdctl(), args);
        Assert.True(added.ExitCode == 0, added.ToString());
        var idMatch = Regex.Match(added.StandardOutput, "Member +([0-9a-f]+) added to cluster");
        var clusterMatch = Regex.Match(added.StandardOutput, "ETCD_INITIAL_CLUSTER=\"([^\"]+)\"");
        Assert.True(idMatch.Success && clusterMatch.Success, added.ToString());
        Assert.Contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\"", added.StandardOutput);
        var id = Convert.ToUInt64(idMatch.Groups[1].Value, 16);
        Assert.Contains($"{name}={extra.PeerUrl}", clusterMatch.Groups[1].Value.Split(','));
        output.WriteLine($"added {name} as {id:x}{(learner ? " (learner)" : "")}; ETCD_INITIAL_CLUSTER={clusterMatch.Groups[1].Value}");

        extra.Start(clusterMatch.Groups[1].Value);
        var hostPort = new Ctl([new Uri(extra.ClientUrl).Authority]);
        var clock = Stopwatch.StartNew();
        EtcdctlResult? last = null;
        while (true)
        {
            Assert.True(extra.IsRunning, $"{name} exited (code {extra.ExitCode})\n{Describe(extra)}");
            try
            {
                last = learner
                    ? await hostPort.RunAsync(["endpoint", "status", "--command-timeout=2s"], null, TimeSpan.FromSeconds(5))
                    : await new Ctl([extra.ClientUrl]).RunAsync(["endpoint", "health", "--command-timeout=2s"], null, TimeSpan.FromSeconds(5));
                if (last.ExitCode == 0) break;
            }
            catch (TimeoutException)
            {
            }
            Assert.True(clock.Elapsed < StepTimeout, $"{name} not healthy within {StepTimeout.TotalSeconds} s: {last}\n{Describe(extra)}");
            await Task.Delay(200);
        }
        output.WriteLine($"{name} answered after {clock.ElapsedMilliseconds} ms");
        return (id, extra);
    }

    /// <summary>
    /// Runs a member add/remove, retried (bounded) while the server answers "unhealthy cluster": etcd's strict
    /// reconfiguration check refuses changes until every member has been connected for 5 s
    /// (<c>etcdserver/server.go</c> mayAddMember/mayRemoveMember, HealthInterval).
    /// </summary>
    private static async Task<EtcdctlResult> MembershipCommandAsync(Ctl ctl, params string[] args)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var result = await ctl.RunAsync(args);
            if (result.ExitCode == 0 || !result.StandardError.Contains("unhealthy cluster", StringComparison.Ordinal) || clock.Elapsed > StepTimeout)
                return result;
            await Task.Delay(250);
        }
    }

    private async Task WaitForSerializableValueAsync(Ctl ctl, string key, string value, ExtraMember? extra)
    {
        var clock = Stopwatch.StartNew();
        EtcdctlResult? last = null;
        while (clock.Elapsed < StepTimeout)
        {
            Assert.True(extra is null || extra.IsRunning, $"{extra?.Name} exited (code {extra?.ExitCode}) while waiting for {key}={value}\n{Describe(extra)}");
            last = await ctl.RunAsync("get", key, "--consistency=s");
            if (last.ExitCode == 0 && last.OutputLines.SequenceEqual([key, value])) return;
            await Task.Delay(100);
        }
        Assert.Fail($"{string.Join(',', ctl.Endpoints)} did not serve {key}={value} (serializable) within {StepTimeout.TotalSeconds} s: {last}\n{Describe(extra)}");
    }

    /// <summary>Polls <c>member list</c> (bounded) until the line of member <paramref name="id"/> satisfies <paramref name="condition"/>.</summary>
    private async Task<string> WaitForMemberLineAsync(Ctl ctl, ulong id, Func<string, bool> condition, ExtraMember? extra)
    {
        var clock = Stopwatch.StartNew();
        IReadOnlyList<string> lines = [];
        while (clock.Elapsed < StepTimeout)
        {
            var result = await ctl.RunAsync("member", "list");
            lines = result.OutputLines;
            if (result.ExitCode == 0 && lines.FirstOrDefault(l => l.StartsWith($"{id:x}, ", StringComparison.Ordinal)) is { } line && condition(line))
                return line;
            await Task.Delay(200);
        }
        Assert.Fail($"member list never showed the expected line for {id:x} within {StepTimeout.TotalSeconds} s; last:\n{string.Join('\n', lines)}\n{Describe(extra)}");
        return "";
    }

    private static async Task<ulong> MemberIdAsync(Ctl ctl, string name)
    {
        using var list = await ctl.JsonAsync("member", "list");
        return list.RootElement.GetProperty("members").EnumerateArray().Single(m => m.GetProperty("name").GetString() == name).GetProperty("ID").GetUInt64();
    }

    private string Describe(ExtraMember? extra) =>
        (extra is null ? "" : $"--- {extra.Name} {extra.ClientUrl} ({(extra.IsRunning ? "running" : "stopped")}):\n{extra.Output.Text(60)}\n") + Cluster.DescribeOutput(40);

    /// <summary>
    /// A member started outside the harness's fixed member set (the harness starts only its initial members): the
    /// server with etcd's flags, <c>--initial-cluster-state existing</c> and its own empty data directory. Disposing
    /// kills its process tree and deletes the directory.
    /// </summary>
    private sealed class ExtraMember(string name, int clientPort, int peerPort, ServerKind kind) : IDisposable
    {
        private readonly string _dataDirectory = Directory.CreateTempSubdirectory("keel-extra-member-").FullName;
        private Process? _process;

        public string Name { get; } = name;
        public string ClientUrl { get; } = $"http://127.0.0.1:{clientPort}";
        public string PeerUrl { get; } = $"http://127.0.0.1:{peerPort}";
        public OutputLog Output { get; } = new();
        public bool IsRunning => _process is { HasExited: false };
        public int? ExitCode => _process is { HasExited: true } p ? p.ExitCode : null;

        public string? InitialCluster { get; private set; }

        public void Start(string initialCluster)
        {
            Kill();
            InitialCluster = initialCluster;
            ProcessStartInfo start;
            if (kind == ServerKind.Etcd)
            {
                var etcd = Environment.GetEnvironmentVariable(TestCluster.TestCluster.EtcdExecutableEnvironmentVariable);
                start = new ProcessStartInfo(etcd is { Length: > 0 } ? etcd : "/usr/bin/etcd");
            }
            else
            {
                start = new ProcessStartInfo("dotnet");
                start.ArgumentList.Add(TestCluster.TestCluster.KeelDll);
                start.ArgumentList.Add("serve");
            }
            string[] flags =
            [
                "--name", Name,
                "--data-dir", Path.Combine(_dataDirectory, "data"),
                "--listen-client-urls", ClientUrl,
                "--advertise-client-urls", ClientUrl,
                "--listen-peer-urls", PeerUrl,
                "--initial-advertise-peer-urls", PeerUrl,
                "--initial-cluster", initialCluster,
                "--initial-cluster-state", "existing",
            ];
            foreach (var flag in flags) start.ArgumentList.Add(flag);
            start.RedirectStandardOutput = true;
            start.RedirectStandardError = true;
            start.UseShellExecute = false;
            start.WorkingDirectory = _dataDirectory;
            var process = new Process { StartInfo = start };
            process.OutputDataReceived += (_, e) => Output.Append("out", e.Data);
            process.ErrorDataReceived += (_, e) => Output.Append("err", e.Data);
            Output.Append("harness", $"start: {start.FileName} {string.Join(' ', start.ArgumentList)}");
            process.Start();
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            _process = process;
        }

        public void Dispose()
        {
            Kill();
            try { Directory.Delete(_dataDirectory, recursive: true); }
            catch (IOException) { /* best effort: a temp directory */ }
            catch (UnauthorizedAccessException) { /* best effort */ }
        }

        /// <summary>SIGKILL to the whole process tree; the data directory stays for a restart.</summary>
        public void Kill()
        {
            if (_process is { } process)
            {
                try
                {
                    if (!process.HasExited) process.Kill(entireProcessTree: true);
                    process.WaitForExit(10_000);
                }
                catch (InvalidOperationException) { /* already gone */ }
                catch (System.ComponentModel.Win32Exception) { /* already gone */ }
                process.Dispose();
                _process = null;
                Output.Append("harness", "SIGKILL");
            }
        }
    }
}
