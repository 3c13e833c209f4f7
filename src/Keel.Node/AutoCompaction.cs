namespace Keel.Node;

/// <summary>How the leader bounds the store's history on its own (etcd's <c>--auto-compaction-mode</c>).</summary>
public enum AutoCompactionMode
{
    /// <summary>Never: history grows until a client compacts (etcd's default, retention 0).</summary>
    None = 0,

    /// <summary>
    /// Keep the history of the last <see cref="AutoCompactionPolicy.Retention"/> milliseconds of wall time: every
    /// min(retention, 1 h) the leader compacts at the revision that was current retention ago (etcd 3.4's periodic
    /// compactor has the same interval; Keel finds the revision from the hybrid timestamps the store keeps per
    /// revision, the same lookup as a read as of a wall time).
    /// </summary>
    Periodic = 1,

    /// <summary>Keep the last <see cref="AutoCompactionPolicy.Retention"/> revisions: every 5 minutes the leader compacts
    /// at current revision - retention (etcd 3.4's revision compactor).</summary>
    Revision = 2,
}

/// <summary>
/// The auto-compaction policy: a mode and its retention (milliseconds of wall time for <see cref="AutoCompactionMode.Periodic"/>,
/// revisions for <see cref="AutoCompactionMode.Revision"/>). The leader proposes an ordinary Compact through the log, as
/// etcd's compactor does, so every replica compacts at the same revision.
/// </summary>
/// <param name="Mode">The mode.</param>
/// <param name="Retention">Milliseconds (periodic) or revisions (revision); 0 turns it off.</param>
public sealed record AutoCompactionPolicy(AutoCompactionMode Mode, long Retention)
{
    /// <summary>Off.</summary>
    public static AutoCompactionPolicy Off { get; } = new(AutoCompactionMode.None, 0);

    /// <summary>etcd 3.4's revision compactor checks every 5 minutes.</summary>
    public const long RevisionCheckIntervalMs = 5 * 60_000;

    /// <summary>etcd 3.4's periodic compactor compacts every retention period, at most every hour.</summary>
    public const long MaxPeriodicIntervalMs = 60 * 60_000;

    /// <summary>Whether the leader compacts at all.</summary>
    public bool Enabled => Mode != AutoCompactionMode.None && Retention > 0;

    /// <summary>How often the leader looks for a revision to compact at.</summary>
    public long CheckIntervalMs => Mode == AutoCompactionMode.Periodic ? Math.Min(Retention, MaxPeriodicIntervalMs) : RevisionCheckIntervalMs;

    /// <summary>
    /// Parses etcd's flag pair: <c>--auto-compaction-mode periodic|revision</c> and <c>--auto-compaction-retention</c>
    /// ("0" = off; periodic: a duration such as "1h", "30m", "90s", or a plain number of hours as etcd reads it;
    /// revision: a number of revisions).
    /// </summary>
    /// <exception cref="FormatException">An unknown mode or a retention that is not a duration / a number.</exception>
    public static AutoCompactionPolicy Parse(string mode, string retention)
    {
        ArgumentNullException.ThrowIfNull(mode);
        ArgumentNullException.ThrowIfNull(retention);
        var text = retention.Trim();
        switch (mode.Trim().ToLowerInvariant())
        {
            case "periodic":
                if (long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var hours))
                    return hours == 0 ? Off : new(AutoCompactionMode.Periodic, checked(hours * 3_600_000));
                return new(AutoCompactionMode.Periodic, ParseDurationMs(text));
            case "revision":
                if (!long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var revisions))
                    throw new FormatException($"--auto-compaction-retention '{retention}': revision mode takes a number of revisions");
                return revisions == 0 ? Off : new(AutoCompactionMode.Revision, revisions);
            default:
                throw new FormatException($"--auto-compaction-mode '{mode}': expected periodic or revision");
        }
    }

    private static long ParseDurationMs(string text)
    {
        // Go duration units as etcd's flag takes them: a sequence of number+unit (h, m, s, ms), e.g. "1h30m".
        long total = 0;
        var i = 0;
        while (i < text.Length)
        {
            var start = i;
            while (i < text.Length && char.IsAsciiDigit(text[i])) i++;
            if (i == start) throw new FormatException($"--auto-compaction-retention '{text}': expected a duration such as 1h, 30m or 90s");
            var number = long.Parse(text.AsSpan(start, i - start), System.Globalization.CultureInfo.InvariantCulture);
            long unitMs;
            if (text.AsSpan(i).StartsWith("ms")) { unitMs = 1; i += 2; }
            else if (i < text.Length && text[i] == 'h') { unitMs = 3_600_000; i++; }
            else if (i < text.Length && text[i] == 'm') { unitMs = 60_000; i++; }
            else if (i < text.Length && text[i] == 's') { unitMs = 1_000; i++; }
            else throw new FormatException($"--auto-compaction-retention '{text}': a number needs a unit (h, m, s, ms)");
            total = checked(total + number * unitMs);
        }
        return total;
    }
}
