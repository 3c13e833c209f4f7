using System.Globalization;
using System.Text;

namespace Keel.LoadBench;

/// <summary>
/// Pairs suite runs of two systems measured on the same machine in the same script (interleaved rounds) and states
/// each row as a ratio candidate/baseline: throughput (higher is better) and p99 latency (lower is better). Ratios,
/// not absolute figures, are what carries from this noisy 2-core machine to another. Each figure is the median over
/// the rounds; the spread over rounds is shown next to it.
/// </summary>
public static class Comparison
{
    /// <summary>The markdown table, with the issue's goals judged below it when both systems were measured.</summary>
    public static string ToMarkdown(IReadOnlyList<RunReport> reports, string baseline, string candidate)
    {
        var text = new StringBuilder();
        var baseRuns = reports.Where(r => r.Label == baseline).ToList();
        var candRuns = reports.Where(r => r.Label == candidate).ToList();
        // The issue's order: puts by clients, then reads (the suite runs the reads first; see Suite.Rows).
        var rowNames = reports.SelectMany(r => r.Rows)
            .OrderBy(r => r.Operation == "put" ? 0 : 1).ThenBy(r => r.Clients).ThenBy(r => r.Name, StringComparer.Ordinal)
            .Select(r => r.Name).Distinct().ToList();
        var haveCandidate = candRuns.Count > 0;
        text.AppendLine(CultureInfo.InvariantCulture,
            $"{baseline}: {baseRuns.Count} round(s), version {Versions(baseRuns)}; {candidate}: {candRuns.Count} round(s){(haveCandidate ? $", version {Versions(candRuns)}" : " (not measured)")}.");
        foreach (var unverified in reports.Where(r => r.ReadKeyVerified == false))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"**Warning:** {unverified.Label} round {unverified.Round}: {unverified.ReadKeyCheck}; its read rows measure nothing useful.");
        }
        text.AppendLine();
        if (haveCandidate)
        {
            text.AppendLine($"| row | {baseline} req/s | {candidate} req/s | throughput {candidate}/{baseline} | {baseline} p50 ms | {candidate} p50 ms | {baseline} p99 ms | {candidate} p99 ms | p99 {candidate}/{baseline} | errors {baseline} / {candidate} | client cores {baseline} / {candidate} | server CPU µs/call {baseline} / {candidate} | CPU/call {candidate}/{baseline} | server KB allocated/call {baseline} / {candidate} | alloc/call {candidate}/{baseline} |");
            text.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        }
        else
        {
            text.AppendLine($"| row | clients | conns | puts to | {baseline} req/s | p50 ms | p99 ms | max ms | errors | client cores |");
            text.AppendLine("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|");
        }
        var verdicts = new List<string>();
        foreach (var name in rowNames)
        {
            var b = baseRuns.SelectMany(r => r.Rows).Where(r => r.Name == name).ToList();
            var c = candRuns.SelectMany(r => r.Rows).Where(r => r.Name == name).ToList();
            if (b.Count == 0) continue;
            var bThroughput = Median(b.Select(r => r.ThroughputPerSecond));
            var bP99 = Median(b.Select(r => r.P99Ms));
            if (!haveCandidate)
            {
                var first = b[0];
                text.AppendLine(CultureInfo.InvariantCulture,
                    $"| {name} | {first.Clients} | {first.Connections} | {(first.Operation == "put" ? (first.TargetLeader ? "leader" : "all") : "all")} | {Spread(b.Select(r => r.ThroughputPerSecond), "N0")} | {Median(b.Select(r => r.P50Ms)):F2} | {Spread(b.Select(r => r.P99Ms), "F2")} | {Median(b.Select(r => r.MaxMs)):F1} | {b.Sum(r => r.Errors)} | {Median(b.Select(r => r.ClientCpuCores)):F2} |");
                continue;
            }
            if (c.Count == 0)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {Spread(b.Select(r => r.ThroughputPerSecond), "N0")} | — | — | {Median(b.Select(r => r.P50Ms)):F2} | — | {bP99:F2} | — | — | {b.Sum(r => r.Errors)} / — | {Median(b.Select(r => r.ClientCpuCores)):F2} / — | {CpuPerCall(b)} / — | — | {AllocPerCall(b)} / — | — |");
                continue;
            }
            var cThroughput = Median(c.Select(r => r.ThroughputPerSecond));
            var cP99 = Median(c.Select(r => r.P99Ms));
            var throughputRatio = bThroughput > 0 ? cThroughput / bThroughput : double.NaN;
            var p99Ratio = bP99 > 0 && cP99 > 0 ? cP99 / bP99 : double.NaN;
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {name} | {Spread(b.Select(r => r.ThroughputPerSecond), "N0")} | {Spread(c.Select(r => r.ThroughputPerSecond), "N0")} | **{throughputRatio:F2}×** | {Median(b.Select(r => r.P50Ms)):F2} | {Median(c.Select(r => r.P50Ms)):F2} | {Spread(b.Select(r => r.P99Ms), "F2")} | {Spread(c.Select(r => r.P99Ms), "F2")} | **{p99Ratio:F2}×** | {b.Sum(r => r.Errors)} / {c.Sum(r => r.Errors)} | {Median(b.Select(r => r.ClientCpuCores)):F2} / {Median(c.Select(r => r.ClientCpuCores)):F2} | {CpuPerCall(b)} / {CpuPerCall(c)} | {PerCallRatio(b, c, r => r.ServerCpuMicrosPerCall)} | {AllocPerCall(b)} / {AllocPerCall(c)} | {PerCallRatio(b, c, r => r.ServerAllocatedBytesPerCall)} |");
            var cErrors = c.Sum(r => r.Errors);
            var readsUnverified = c[0].Operation != "put" && candRuns.Any(r => r.ReadKeyVerified == false);
            var met = !readsUnverified && (name == "put-1000"
                ? throughputRatio >= 2.0 && p99Ratio <= 1.0 && cErrors == 0
                : throughputRatio > 1.0 && cErrors == 0);
            var goal = name == "put-1000" ? "at least 2× throughput, p99 no worse" : "ahead on throughput";
            verdicts.Add(string.Create(CultureInfo.InvariantCulture,
                $"- {name}: goal {goal}: {(met ? "**met**" : "**not met**")} (throughput {throughputRatio:F2}×, p99 {p99Ratio:F2}×{(cErrors > 0 ? $", {cErrors} errors" : "")})"));
        }
        if (verdicts.Count > 0)
        {
            text.AppendLine();
            text.AppendLine("Goals of issue 5 (ratios of medians over rounds; a row with errors does not meet its goal):");
            text.AppendLine();
            foreach (var verdict in verdicts) text.AppendLine(verdict);
        }
        return text.ToString();
    }

    private static string Versions(List<RunReport> runs) =>
        string.Join(", ", runs.Select(r => r.ServerVersion ?? "?").Distinct());

    // A per-call server cost (median over rounds, scaled and formatted) where the runs measured it, else "—": CPU µs
    // (suite --server-pids) or allocated bytes (suite --server-metrics).
    private static string PerCall(IReadOnlyList<RowResult> rows, Func<RowResult, double?> cost, double scale, string format) =>
        Measured(rows, cost) is { Count: > 0 } measured ? (Median(measured) / scale).ToString(format, CultureInfo.InvariantCulture) : "—";

    private static string PerCallRatio(IReadOnlyList<RowResult> baseline, IReadOnlyList<RowResult> candidate, Func<RowResult, double?> cost) =>
        (Measured(baseline, cost), Measured(candidate, cost)) is ({ Count: > 0 } b, { Count: > 0 } c)
            ? (Median(c) / Median(b)).ToString("F2", CultureInfo.InvariantCulture) + "×"
            : "—";

    private static List<double> Measured(IEnumerable<RowResult> rows, Func<RowResult, double?> cost) =>
        rows.Select(cost).Where(value => value is > 0).Select(value => value!.Value).ToList();

    private static string CpuPerCall(IReadOnlyList<RowResult> rows) => PerCall(rows, r => r.ServerCpuMicrosPerCall, 1, "F0");

    private static string AllocPerCall(IReadOnlyList<RowResult> rows) => PerCall(rows, r => r.ServerAllocatedBytesPerCall, 1024, "F1");

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private static string Spread(IEnumerable<double> values, string format)
    {
        var all = values.ToArray();
        var median = Median(all).ToString(format, CultureInfo.InvariantCulture);
        if (all.Length < 2) return median;
        return string.Create(CultureInfo.InvariantCulture,
            $"{median} ({all.Min().ToString(format, CultureInfo.InvariantCulture)}–{all.Max().ToString(format, CultureInfo.InvariantCulture)})");
    }
}
