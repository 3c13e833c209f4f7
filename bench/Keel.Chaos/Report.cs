using System.Globalization;
using System.Text;

namespace Keel.Chaos;

/// <summary>The markdown table of docs/chaos.md.</summary>
public static class Report
{
    /// <summary>One row per fault and server: medians over rounds for availability and recovery, sums for the rest.</summary>
    public static string Markdown(IEnumerable<ScenarioResult> results)
    {
        var text = new StringBuilder();
        text.AppendLine("| fault | server | runs | availability during fault | majority side | full service after healing (median, max) | violations | lost acked writes / acked | watch gaps, disorder | early lease expiries / leases |");
        text.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var group in results.GroupBy(r => (r.Fault, r.Server)))
        {
            var ran = group.Where(r => r.Skipped is null).ToArray();
            if (ran.Length == 0)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"| {group.Key.Fault} | {group.Key.Server} | 0 | n/a: {group.First().Skipped} | | | | | | |");
                continue;
            }
            var recoveries = ran.Select(r => r.RecoveryMs).ToArray();
            var measured = recoveries.Where(r => r is not null).Select(r => r!.Value).Order().ToArray();
            var recovery = measured.Length == 0 ? "never" : $"{measured[measured.Length / 2] / 1000.0:F2} s, {measured[^1] / 1000.0:F2} s";
            if (measured.Length < recoveries.Length) recovery += $" ({recoveries.Length - measured.Length} never)";
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {group.Key.Fault} | {group.Key.Server} | {ran.Length} | {Median(ran.Select(r => r.AvailabilityDuringFault))} | {Median(ran.Select(r => r.MajoritySideAvailability))} | {recovery} | {ran.Sum(r => r.Violations)} | {ran.Sum(r => r.LostWrites)} / {ran.Sum(r => r.AcknowledgedWrites)} | {ran.Sum(r => r.WatchGaps)}, {ran.Sum(r => r.WatchDisorder)} | {ran.Sum(r => r.EarlyLeaseExpiries)} / {ran.Sum(r => r.LeasesChecked)} |");
        }
        return text.ToString();
    }

    private static string Median(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        return sorted.Length == 0 ? "–" : string.Create(CultureInfo.InvariantCulture, $"{sorted[sorted.Length / 2] * 100:F1} %");
    }
}
