using System.Globalization;
using System.Text;

namespace Keel.LoadBench;

/// <summary>The measured outcome of one load row. Latencies are of successful calls only, in milliseconds, from an
/// HdrHistogram with three significant digits; throughput is successful calls per second of the measured phase.</summary>
public sealed record RowResult
{
    /// <summary>Row name (see <see cref="LoadSpec.Name"/>).</summary>
    public required string Name { get; init; }

    /// <summary>"put" or "range-l" / "range-s".</summary>
    public required string Operation { get; init; }

    /// <summary>Concurrent clients.</summary>
    public required int Clients { get; init; }

    /// <summary>gRPC connections.</summary>
    public required int Connections { get; init; }

    /// <summary>True when every connection went to the leader.</summary>
    public required bool TargetLeader { get; init; }

    /// <summary>Requests allowed (the --total bound).</summary>
    public required long Total { get; init; }

    /// <summary>Successful calls.</summary>
    public required long Succeeded { get; init; }

    /// <summary>Failed calls (any gRPC status but OK, or a transport failure).</summary>
    public required long Errors { get; init; }

    /// <summary>Calls in flight when the time limit cut the row (neither success nor error).</summary>
    public required long CutByTimeLimit { get; init; }

    /// <summary>Failures by gRPC status code name.</summary>
    public required SortedDictionary<string, long> ErrorsByCode { get; init; }

    /// <summary>The message of the first failure of each code, to tell what went wrong.</summary>
    public SortedDictionary<string, string> FirstErrorByCode { get; init; } = new(StringComparer.Ordinal);

    /// <summary>Length of the measured phase in seconds.</summary>
    public required double ElapsedSeconds { get; init; }

    /// <summary>Successful calls per second.</summary>
    public required double ThroughputPerSecond { get; init; }

    /// <summary>Mean latency, ms.</summary>
    public required double MeanMs { get; init; }

    /// <summary>Median latency, ms.</summary>
    public required double P50Ms { get; init; }

    /// <summary>90th percentile latency, ms.</summary>
    public required double P90Ms { get; init; }

    /// <summary>99th percentile latency, ms.</summary>
    public required double P99Ms { get; init; }

    /// <summary>99.9th percentile latency, ms.</summary>
    public required double P999Ms { get; init; }

    /// <summary>Slowest successful call, ms.</summary>
    public required double MaxMs { get; init; }

    /// <summary>CPU the load generator itself used during the row, in cores (1.0 = one core busy throughout): on a
    /// machine it shares with the servers, the part of the CPU the servers did not get.</summary>
    public double ClientCpuCores { get; init; }

    /// <summary>CPU all server processes used during the row, in cores (null when no server pids were given).</summary>
    public double? ServerCpuCores { get; init; }

    /// <summary>Server CPU across the cluster per successful call, µs (null when no server pids were given): the cost
    /// of a call to the servers, independent of how busy the machine was.</summary>
    public double? ServerCpuMicrosPerCall { get; init; }

    /// <summary>Bytes the servers allocated across the cluster per successful call (null when not measured: suite
    /// --server-metrics). Includes the two scrapes of /metrics around the phase (tens of KB per member).</summary>
    public double? ServerAllocatedBytesPerCall { get; init; }

    /// <summary>One human-readable line.</summary>
    public string ToLine()
    {
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture,
            $"{Name,-10} clients={Clients,-5} conns={Connections,-4} {(TargetLeader ? "leader" : "all   ")} ");
        text.Append(CultureInfo.InvariantCulture,
            $"{ThroughputPerSecond,10:F1} req/s  p50 {P50Ms,8:F2} ms  p99 {P99Ms,8:F2} ms  max {MaxMs,8:F2} ms  ");
        text.Append(CultureInfo.InvariantCulture, $"ok={Succeeded} errors={Errors}");
        if (CutByTimeLimit > 0) text.Append(CultureInfo.InvariantCulture, $" cut={CutByTimeLimit}");
        if (ErrorsByCode.Count > 0)
        {
            text.Append(" (").Append(string.Join(", ", ErrorsByCode.Select(e =>
                $"{e.Key}: {e.Value}, first: \"{FirstErrorByCode.GetValueOrDefault(e.Key)}\""))).Append(')');
        }
        text.Append(CultureInfo.InvariantCulture, $" in {ElapsedSeconds:F1} s, client cpu {ClientCpuCores:F2} cores");
        if (ServerCpuMicrosPerCall is { } perCall)
            text.Append(CultureInfo.InvariantCulture, $", server cpu {ServerCpuCores:F2} cores, {perCall:F0} µs/call");
        if (ServerAllocatedBytesPerCall is { } allocatedPerCall)
            text.Append(CultureInfo.InvariantCulture, $", {allocatedPerCall / 1024:F1} KB allocated/call");
        return text.ToString();
    }
}

/// <summary>A suite run against one cluster: the machine-readable document that <c>compare</c> reads.</summary>
public sealed record RunReport
{
    /// <summary>What was measured ("etcd", "keel").</summary>
    public required string Label { get; init; }

    /// <summary>Round of the interleaved script (1, 2, ...), 0 when run alone.</summary>
    public int Round { get; init; }

    /// <summary>Client endpoints given.</summary>
    public required string[] Endpoints { get; init; }

    /// <summary>Server version reported by Maintenance.Status, when it answered.</summary>
    public string? ServerVersion { get; init; }

    /// <summary>UTC start of the run, ISO 8601.</summary>
    public required string StartedUtc { get; init; }

    /// <summary>Logical processors of the machine.</summary>
    public required int ProcessorCount { get; init; }

    /// <summary>Whether every endpoint returned the read key's value before the read rows (null: not checked).</summary>
    public bool? ReadKeyVerified { get; init; }

    /// <summary>What the read-key check found.</summary>
    public string? ReadKeyCheck { get; init; }

    /// <summary>The rows, in the order run.</summary>
    public required List<RowResult> Rows { get; init; }
}
