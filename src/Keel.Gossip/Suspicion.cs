namespace Keel.Gossip;

/// <summary>
/// Lifeguard's dynamic suspicion timeout (memberlist <c>suspicion.go</c>): it starts at <c>max</c> and shrinks as
/// independent members confirm the suspicion, down to <c>min</c> after k confirmations:
/// <c>timeout = max(min, max - log(c + 1) / log(k + 1) x (max - min))</c>. A member that is really down is declared dead
/// quickly because many probers notice; a lone, possibly slow, accuser has to wait the long timeout, which is the window
/// a healthy member needs to hear the rumour and refute it.
/// </summary>
public sealed class Suspicion
{
    private readonly List<ulong> _confirmers = [];

    /// <summary>Starts a suspicion raised by <paramref name="suspector"/> at <paramref name="startMs"/>.</summary>
    public Suspicion(ulong suspector, long startMs, long minTimeoutMs, long maxTimeoutMs, int confirmationsForMin)
    {
        Suspector = suspector;
        StartMs = startMs;
        MinTimeoutMs = minTimeoutMs;
        MaxTimeoutMs = Math.Max(minTimeoutMs, maxTimeoutMs);
        ConfirmationsForMin = confirmationsForMin;
    }

    /// <summary>The member that raised the suspicion (does not count as a confirmation).</summary>
    public ulong Suspector { get; }

    /// <summary>When this node started suspecting.</summary>
    public long StartMs { get; }

    /// <summary>The shortest timeout, reached after <see cref="ConfirmationsForMin"/> confirmations.</summary>
    public long MinTimeoutMs { get; }

    /// <summary>The timeout with no confirmation.</summary>
    public long MaxTimeoutMs { get; }

    /// <summary>Lifeguard's k.</summary>
    public int ConfirmationsForMin { get; }

    /// <summary>Distinct confirmers so far.</summary>
    public int Confirmations => _confirmers.Count;

    /// <summary>Extra time granted after a local pause (the silence was ours, not the suspect's).</summary>
    public long GraceMs { get; set; }

    /// <summary>The current timeout.</summary>
    public long TimeoutMs => TimeoutFor(Confirmations, ConfirmationsForMin, MinTimeoutMs, MaxTimeoutMs);

    /// <summary>When the suspect is declared dead unless it refutes.</summary>
    public long DeadlineMs => StartMs + TimeoutMs + GraceMs;

    /// <summary>Records a confirmation; true only for a new, independent one (not the suspector, not a repeat).</summary>
    public bool Confirm(ulong from)
    {
        if (from == Suspector || _confirmers.Contains(from) || _confirmers.Count >= ConfirmationsForMin) return false;
        _confirmers.Add(from);
        return true;
    }

    /// <summary>Lifeguard's formula for <paramref name="confirmations"/> of <paramref name="k"/>.</summary>
    public static long TimeoutFor(int confirmations, int k, long minMs, long maxMs)
    {
        if (k < 1 || maxMs <= minMs) return minMs;
        var fraction = Math.Log(confirmations + 1.0) / Math.Log(k + 1.0);
        var timeout = (long)Math.Floor(maxMs - fraction * (maxMs - minMs));
        return Math.Max(minMs, timeout);
    }
}
