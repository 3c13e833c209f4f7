using System.Globalization;
using System.Net;

namespace Keel.LoadBench;

/// <summary>
/// Bytes the server processes allocated on their managed heaps, read from each member's Prometheus <c>/metrics</c>:
/// Go's <c>go_memstats_alloc_bytes_total</c> for etcd, <c>dotnet_gc_allocated_bytes_total</c> for Keel (both cumulative
/// since the process started). Read before and after a row's measured phase, it gives the allocation per successful
/// call across the cluster (issue 12: "allocation per put measured and reported"), the same way for both systems.
/// A member that cannot be scraped makes the sample null and the row reports no allocation.
/// </summary>
public static class ServerAllocations
{
    /// <summary>The counters read, in order of preference.</summary>
    public static readonly string[] CounterNames = ["dotnet_gc_allocated_bytes_total", "go_memstats_alloc_bytes_total"];

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    /// <summary>The summed allocated bytes of every member behind <paramref name="endpoints"/>, or null.</summary>
    public static async Task<double?> SampleAsync(IReadOnlyList<string> endpoints, CancellationToken cancellationToken)
    {
        if (endpoints.Count == 0) return null;
        double total = 0;
        foreach (var endpoint in endpoints)
        {
            // etcd serves /metrics over HTTP/1.1 on its client port (HTTP/2 there is gRPC); a Keel client listener speaks
            // HTTP/2 only (h2c with prior knowledge). Try one, then the other.
            var bytes = await ScrapeAsync(endpoint, HttpVersion.Version11, cancellationToken).ConfigureAwait(false)
                ?? await ScrapeAsync(endpoint, HttpVersion.Version20, cancellationToken).ConfigureAwait(false);
            if (bytes is not { } memberBytes) return null;
            total += memberBytes;
        }
        return total;
    }

    private static async Task<double?> ScrapeAsync(string endpoint, Version version, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(endpoint), "/metrics"))
        {
            Version = version,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        try
        {
            using var response = await Http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode) return null;
            return Parse(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (HttpRequestException)
        {
            return null;
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null; // the scrape timed out
        }
    }

    /// <summary>The value of the first of <see cref="CounterNames"/> found in a Prometheus text exposition, or null.</summary>
    public static double? Parse(string exposition)
    {
        ArgumentNullException.ThrowIfNull(exposition);
        var lines = exposition.Split('\n');
        foreach (var name in CounterNames)
        {
            foreach (var rawLine in lines)
            {
                var line = rawLine.TrimEnd('\r');
                if (line.Length == 0 || line[0] == '#') continue;
                // "name value" or "name{labels} value" (these counters carry no labels), optionally with a timestamp.
                var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length < 2) continue;
                var series = fields[0];
                var brace = series.IndexOf('{', StringComparison.Ordinal);
                if ((brace < 0 ? series : series[..brace]) != name) continue;
                if (double.TryParse(fields[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var value)) return value;
            }
        }
        return null;
    }
}
