using System.Globalization;

namespace Keel.LoadBench;

/// <summary>
/// CPU time used by the server processes of a cluster, read from <c>/proc/PID/stat</c> (user + system time). Read
/// before and after a row's measured phase, it gives the servers' CPU per successful call across the whole cluster:
/// the figure issue 12 asks for ("server CPU per put"), measured the same way for etcd and Keel. Linux only; when a
/// process cannot be read (gone, or another OS) the sample is null and the row reports no server CPU.
/// </summary>
public static class ServerCpu
{
    // USER_HZ: /proc reports times in clock ticks of 1/100 s on every Linux architecture this runs on (x86-64, arm64).
    private const double TicksPerSecond = 100.0;

    /// <summary>The summed user + system CPU time of <paramref name="pids"/>, or null when any cannot be read.</summary>
    public static TimeSpan? Sample(IReadOnlyList<int> pids)
    {
        if (pids.Count == 0) return null;
        long ticks = 0;
        foreach (var pid in pids)
        {
            string stat;
            try
            {
                stat = File.ReadAllText($"/proc/{pid}/stat");
            }
            catch (IOException)
            {
                return null;
            }
            catch (UnauthorizedAccessException)
            {
                return null;
            }
            if (Parse(stat) is not { } processTicks) return null;
            ticks += processTicks;
        }
        return TimeSpan.FromSeconds(ticks / TicksPerSecond);
    }

    /// <summary>utime + stime (fields 14 and 15) of one <c>/proc/PID/stat</c> line, in clock ticks; null if malformed.</summary>
    public static long? Parse(string stat)
    {
        // Field 2 is the command name in parentheses and may itself hold spaces or ')': count fields after the last ')'.
        var close = stat.LastIndexOf(')');
        if (close < 0) return null;
        var fields = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // fields[0] is field 3 (state), so field 14 (utime) is fields[11] and field 15 (stime) is fields[12].
        if (fields.Length < 13) return null;
        if (!long.TryParse(fields[11], NumberStyles.None, CultureInfo.InvariantCulture, out var user)) return null;
        if (!long.TryParse(fields[12], NumberStyles.None, CultureInfo.InvariantCulture, out var system)) return null;
        return user + system;
    }

    /// <summary>Parses <c>--server-pids 12,34,56</c>.</summary>
    public static IReadOnlyList<int> ParsePids(string? list) =>
        string.IsNullOrWhiteSpace(list)
            ? []
            : list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(p => int.Parse(p, NumberStyles.None, CultureInfo.InvariantCulture)).ToList();
}
