using System.Diagnostics;
using System.Globalization;
using Keel.Linearizability;
using Keel.TestCluster;

namespace Keel.Chaos;

/// <summary>Lengths of a scenario's phases.</summary>
public sealed record ScenarioTiming
{
    /// <summary>Workload before the fault.</summary>
    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The fault window.</summary>
    public TimeSpan Fault { get; init; } = TimeSpan.FromSeconds(8);

    /// <summary>Workload after healing (at least until every member serves again or <see cref="RecoveryBound"/>).</summary>
    public TimeSpan After { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>The longest the harness waits for every member to serve after healing.</summary>
    public TimeSpan RecoveryBound { get; init; } = TimeSpan.FromSeconds(30);
}

/// <summary>The measured outcome of one scenario.</summary>
public sealed record ScenarioResult
{
    /// <summary>keel or etcd.</summary>
    public required string Server { get; init; }

    /// <summary>The fault's name.</summary>
    public required string Fault { get; init; }

    /// <summary>Set when the scenario could not run (unsupported, unavailable) or the harness failed.</summary>
    public string? Skipped { get; init; }

    /// <summary>Calls started during the fault.</summary>
    public int CallsDuringFault { get; init; }

    /// <summary>Share of them that succeeded.</summary>
    public double AvailabilityDuringFault { get; init; }

    /// <summary>Share of the calls to members other than the isolated one that succeeded (NaN when no member is isolated).</summary>
    public double MajoritySideAvailability { get; init; }

    /// <summary>
    /// Failed calls during the fault by kind of error (<see cref="Workload.ErrorKind"/>), majority side only (all
    /// members when no member is isolated): tells fast refusals ("no leader") from calls that waited out their deadline.
    /// </summary>
    public IReadOnlyDictionary<string, int> MajorityErrors { get; init; } = new Dictionary<string, int>();

    /// <summary>Failed calls during the fault by kind of error, at the isolated member (empty when none is isolated).</summary>
    public IReadOnlyDictionary<string, int> IsolatedErrors { get; init; } = new Dictionary<string, int>();

    /// <summary>Calls during the fault to members other than the isolated one.</summary>
    public int MajorityCalls { get; init; }

    /// <summary>Milliseconds from healing until every member served a linearizable get and a put; null if not within the bound.</summary>
    public long? RecoveryMs { get; init; }

    /// <summary>Per member, the milliseconds until it served again.</summary>
    public IReadOnlyList<long?> RecoveryPerMemberMs { get; init; } = [];

    /// <summary>Linearizability violations (0 or 1: the checker reports the first failing key).</summary>
    public int Violations { get; init; }

    /// <summary>The checker's verdict.</summary>
    public string Verdict { get; init; } = "";

    /// <summary>Register operations checked (completed + pending).</summary>
    public int HistoryOperations { get; init; }

    /// <summary>Acknowledged unique writes.</summary>
    public int AcknowledgedWrites { get; init; }

    /// <summary>Acknowledged writes missing on some member (the largest count over members).</summary>
    public int LostWrites { get; init; }

    /// <summary>What went wrong, for failure messages.</summary>
    public IReadOnlyList<string> Problems { get; init; } = [];

    /// <summary>Acknowledged writes a member's watch never delivered (the largest count over members).</summary>
    public int WatchGaps { get; init; }

    /// <summary>Watch events out of order or duplicated, over all members.</summary>
    public int WatchDisorder { get; init; }

    /// <summary>Leases followed to their expiry.</summary>
    public int LeasesChecked { get; init; }

    /// <summary>Leases whose key vanished before the TTL had passed since the grant was asked for (violations).</summary>
    public int EarlyLeaseExpiries { get; init; }

    /// <summary>Leases still alive TTL·2 + 10 s after the grant (not a safety violation; reported).</summary>
    public int LateLeases { get; init; }

    /// <summary>What the fault observed.</summary>
    public string? Note { get; init; }

    /// <summary>Member output on problems.</summary>
    public string? Output { get; init; }

    /// <summary>Whether the run meets 0 violations, 0 lost writes and recovery within <paramref name="recoveryGoal"/>.</summary>
    public bool Passes(TimeSpan recoveryGoal) =>
        Skipped is null && Violations == 0 && LostWrites == 0 && EarlyLeaseExpiries == 0 && WatchGaps == 0 && WatchDisorder == 0 && Problems.Count == 0 && RecoveryMs is { } ms && ms <= recoveryGoal.TotalMilliseconds;
}

/// <summary>Bugs planted on purpose to show that the checks can fail.</summary>
public enum PlantedBug
{
    /// <summary>None: the real measurement.</summary>
    None,

    /// <summary>Gets are serializable (stale reads from a cut-off member): the linearizability check must fail.</summary>
    StaleReads,

    /// <summary>One acknowledged write is deleted before the read-back: the loss check must fail.</summary>
    DeleteAcknowledged,
}

/// <summary>Runs one fault against one server kind in a fresh namespace, and cleans everything up.</summary>
public static class Scenario
{
    private static int s_counter;

    /// <summary>Runs <paramref name="fault"/> against a fresh 3-member <paramref name="kind"/> cluster.</summary>
    public static async Task<ScenarioResult> RunAsync(ServerKind kind, Fault fault, ScenarioTiming timing, Action<string>? log = null, PlantedBug plant = PlantedBug.None)
    {
        var server = kind == ServerKind.Etcd ? "etcd" : "keel";
        if (fault.UnsupportedFor(kind) is { } reason)
            return new ScenarioResult { Server = server, Fault = fault.Name, Skipped = reason };
        if (fault is NetemDelay && !await NetemDelay.AvailableAsync().ConfigureAwait(false))
            return new ScenarioResult { Server = server, Fault = fault.Name, Skipped = "tc netem is not available in this kernel (sch_netem missing)" };
        try
        {
            await fault.PrepareAsync().ConfigureAwait(false);
            return await RunPreparedAsync(kind, fault, timing, log, plant).ConfigureAwait(false);
        }
        finally
        {
            await fault.CleanupAsync().ConfigureAwait(false);
        }
    }

    private static async Task<ScenarioResult> RunPreparedAsync(ServerKind kind, Fault fault, ScenarioTiming timing, Action<string>? log, PlantedBug plant)
    {
        log ??= _ => { };
        var server = kind == ServerKind.Etcd ? "etcd" : "keel";

        await NetworkNamespace.SweepLeftoversAsync().ConfigureAwait(false);
        var name = $"keel-chaos-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}";
        await using var ns = await NetworkNamespace.CreateAsync(name).ConfigureAwait(false);
        using var sockets = new NamespaceSockets(ns.HandlePath);
        await using var cluster = await ChaosCluster.StartAsync(fault.Customize(new ClusterSpec(kind) { Faketime = fault.NeedsFaketime }), ns, sockets, TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        var problems = new List<string>();
        var clock = Stopwatch.StartNew();
        var workload = new Workload(cluster, clock)
        {
            SerializableReads = plant == PlantedBug.StaleReads,
            // With the default mix a cut-off member spends most of a short fault in writes that time out, and in
            // about one run in twenty served no read at all while cut off, so the planted bug went unseen.
            ReadPercent = plant == PlantedBug.StaleReads ? 80 : 35,
        };
        var window = timing.Fault > fault.MinimumWindow ? timing.Fault : fault.MinimumWindow;
        using var stop = new CancellationTokenSource();
        var hardBound = timing.Warmup + window + TimeSpan.FromSeconds(20) + timing.RecoveryBound + timing.After + TimeSpan.FromSeconds(10);
        var running = workload.RunAsync(hardBound, stop.Token);
        var leases = new LeaseChecker(cluster, clock);
        var leasing = leases.RunAsync(stop.Token);
        using var stopWatches = new CancellationTokenSource();
        var watches = new WatchChecker(cluster);
        var watching = watches.RunAsync(stopWatches.Token);
        long injectedAt = 0, healedAt = 0;
        var perMember = new long?[cluster.Members.Count];
        var injected = false;
        try
        {
            await Task.Delay(timing.Warmup).ConfigureAwait(false);
            var leader = await cluster.FindLeaderAsync(TimeSpan.FromSeconds(20)).ConfigureAwait(false);
            var target = new FaultTarget(leader, (leader + 1) % cluster.Members.Count);
            log($"{server} {fault.Name}: leader n{leader + 1}, injecting");
            injectedAt = clock.ElapsedMilliseconds;
            injected = true;
            await fault.InjectAsync(cluster, target).ConfigureAwait(false);
            await Task.Delay(window - TimeSpan.FromMilliseconds(clock.ElapsedMilliseconds - injectedAt) is { Ticks: > 0 } left ? left : TimeSpan.Zero).ConfigureAwait(false);
            healedAt = clock.ElapsedMilliseconds;
            await fault.HealAsync(cluster).ConfigureAwait(false);
            injected = false;
            log($"{server} {fault.Name}: healed; measuring recovery");
            await Task.WhenAll(cluster.Members.Select(async member =>
            {
                if (await cluster.WaitServesAsync(member, timing.RecoveryBound).ConfigureAwait(false))
                    perMember[member.Index] = clock.ElapsedMilliseconds - healedAt;
            })).ConfigureAwait(false);
            var sinceHeal = TimeSpan.FromMilliseconds(clock.ElapsedMilliseconds - healedAt);
            if (sinceHeal < timing.After) await Task.Delay(timing.After - sinceHeal).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            problems.Add("harness: " + e.Message);
        }
        finally
        {
            if (injected)
            {
                try { await fault.HealAsync(cluster).ConfigureAwait(false); }
                catch (InvalidOperationException e) { problems.Add("heal: " + e.Message); }
            }
            await stop.CancelAsync().ConfigureAwait(false);
            await running.ConfigureAwait(false);
            await leasing.ConfigureAwait(false);
        }

        if (plant == PlantedBug.DeleteAcknowledged && workload.Acknowledged.Keys.FirstOrDefault() is { } victim)
            await cluster.Members[0].Kv.DeleteRangeAsync(new Keel.Protocol.Etcd.Etcdserverpb.DeleteRangeRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8(victim) }, deadline: DateTime.UtcNow.AddSeconds(10)).ConfigureAwait(false);
        var (lost, readBack) = await workload.VerifyAcknowledgedAsync(TimeSpan.FromSeconds(20)).ConfigureAwait(false);
        problems.AddRange(readBack);
        var (gaps, watchProblems) = await watches.AwaitAllAsync(workload.Acknowledged, TimeSpan.FromSeconds(15)).ConfigureAwait(false);
        await stopWatches.CancelAsync().ConfigureAwait(false);
        await watching.ConfigureAwait(false);
        problems.AddRange(watchProblems);
        LinearizabilityReport report;
        lock (workload.History) report = new LinearizabilityChecker<string?, KvInput, KvOutput>(new KvModel()).Check(workload.History);
        if (report.Verdict != LinearizabilityVerdict.Linearizable) problems.Add($"linearizability: {report}");
        problems.AddRange(leases.Early.Select(e => "early lease expiry: " + e));

        var during = workload.Calls.Where(c => c.StartMs >= injectedAt && c.StartMs < healedAt).ToArray();
        var majority = during.Where(c => c.Member != fault.Isolated).ToArray();
        long? recovery = perMember.All(p => p is not null) ? perMember.Max() : null;
        if (recovery is null) problems.Add($"not every member served within {timing.RecoveryBound.TotalSeconds:F0} s of healing: {string.Join(", ", perMember.Select((p, i) => $"n{i + 1}={(p is { } v ? v.ToString(CultureInfo.InvariantCulture) + " ms" : "never")}"))}");
        var result = new ScenarioResult
        {
            Server = server,
            Fault = fault.Name,
            CallsDuringFault = during.Length,
            AvailabilityDuringFault = during.Length == 0 ? double.NaN : (double)during.Count(c => c.Ok) / during.Length,
            MajorityCalls = majority.Length,
            MajorityErrors = CountErrors(majority),
            IsolatedErrors = fault.Isolated < 0 ? new Dictionary<string, int>() : CountErrors(during.Where(c => c.Member == fault.Isolated)),
            MajoritySideAvailability = fault.Isolated < 0 || majority.Length == 0 ? double.NaN : (double)majority.Count(c => c.Ok) / majority.Length,
            RecoveryMs = recovery,
            RecoveryPerMemberMs = perMember,
            Violations = report.Verdict == LinearizabilityVerdict.NotLinearizable ? 1 : 0,
            Verdict = report.Verdict.ToString(),
            HistoryOperations = workload.History.Count,
            AcknowledgedWrites = workload.Acknowledged.Count,
            LostWrites = lost,
            Problems = problems,
            Output = problems.Count > 0 ? cluster.Describe() : null,
            Note = fault.Note,
            LeasesChecked = leases.Checked,
            WatchGaps = gaps,
            WatchDisorder = watches.Disorder.Count,
            EarlyLeaseExpiries = leases.Early.Count,
            LateLeases = leases.Late,
        };
        log($"{server} {fault.Name}: {Format(result)}");
        return result;
    }

    private static Dictionary<string, int> CountErrors(IEnumerable<CallRecord> calls) =>
        calls.Where(c => !c.Ok).GroupBy(c => c.Error ?? "?").OrderByDescending(g => g.Count()).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);

    private static string Errors(IReadOnlyDictionary<string, int> errors) =>
        errors.Count == 0 ? "none" : string.Join(", ", errors.Select(e => $"{e.Key} {e.Value}"));

    /// <summary>One line per result.</summary>
    public static string Format(ScenarioResult r) => r.Skipped is { } why
        ? $"skipped: {why}"
        : string.Create(CultureInfo.InvariantCulture,
            $"availability {r.AvailabilityDuringFault:P1} ({r.CallsDuringFault} calls), majority side {r.MajoritySideAvailability:P1} ({r.MajorityCalls} calls; failed: {Errors(r.MajorityErrors)}){(r.IsolatedErrors.Count > 0 ? "; isolated member failed: " + Errors(r.IsolatedErrors) : "")}, recovery {(r.RecoveryMs is { } ms ? ms + " ms" : "NEVER")}, {r.Verdict} ({r.HistoryOperations} ops), lost {r.LostWrites}/{r.AcknowledgedWrites}, watch gaps {r.WatchGaps} disorder {r.WatchDisorder}, leases early {r.EarlyLeaseExpiries}/{r.LeasesChecked} late {r.LateLeases}{(r.Note is { } note ? ", " + note : "")}{(r.Problems.Count > 0 ? ", problems: " + string.Join(" | ", r.Problems) : "")}");
}
