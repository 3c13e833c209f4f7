using System.Globalization;
using System.Text;

namespace Keel.Chaos;

/// <summary>The markdown table of docs/chaos.md.</summary>
public static class Report
{
    /// <summary>One row per fault and server: each run's availability and recovery (in run order), sums for the rest.</summary>
    public static string Markdown(IEnumerable<ScenarioResult> results)
    {
        var text = new StringBuilder();
        text.AppendLine("| fault | server | runs | availability during fault, % (each run) | majority side, % | full service after healing, s (each run) | violations | lost acked writes / acked | watch gaps, disorder | early lease expiries / leases |");
        text.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var group in results.GroupBy(r => (r.Fault, r.Server)))
        {
            var ran = group.Where(r => r.Skipped is null).ToArray();
            if (ran.Length == 0)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"| {group.Key.Fault} | {group.Key.Server} | 0 | n/a: {group.First().Skipped} | | | | | | |");
                continue;
            }
            var recovery = string.Join(", ", ran.Select(r => r.RecoveryMs is { } ms ? (ms / 1000.0).ToString("F2", CultureInfo.InvariantCulture) : "never"));
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {group.Key.Fault} | {group.Key.Server} | {ran.Length} | {Each(ran.Select(r => r.AvailabilityDuringFault))} | {Each(ran.Select(r => r.MajoritySideAvailability))} | {recovery} | {ran.Sum(r => r.Violations)} | {ran.Sum(r => r.LostWrites)} / {ran.Sum(r => r.AcknowledgedWrites)} | {ran.Sum(r => r.WatchGaps)}, {ran.Sum(r => r.WatchDisorder)} | {ran.Sum(r => r.EarlyLeaseExpiries)} / {ran.Sum(r => r.LeasesChecked)} |");
        }
        return text.ToString();
    }

    private static string Each(IEnumerable<double> values) =>
        string.Join(", ", values.Select(v => double.IsNaN(v) ? "–" : (v * 100).ToString("F0", CultureInfo.InvariantCulture)));
}
