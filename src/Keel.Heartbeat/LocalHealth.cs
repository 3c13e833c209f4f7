using Keel.Core;

namespace Keel.Heartbeat;

/// <summary>
/// Local health awareness (Lifeguard: Dadgar, Phillips, Currey, "Lifeguard: Local Health Awareness for More Accurate
/// Failure Detection", 2018; hashicorp/memberlist <c>awareness.go</c>): a score 0..7 that rises when this node notices
/// that it is itself slow (its own timers fire late, it misses its own deadlines) and falls on timely rounds. The score
/// multiplies this node's timeouts (<see cref="TimeoutMultiplier"/>), so a node starved of CPU stops accusing healthy
/// peers of what is its own fault (consul #1212: flapping under CPU load).
/// </summary>
/// <remarks>
/// It also remembers the spans during which this process was paused (a tick firing more than
/// <see cref="LocalHealthOptions.PauseThresholdMs"/> late), so that a monitor can excuse peers' silence during them:
/// heartbeats that arrived while we were frozen are sitting unread in a socket buffer, and convicting their senders
/// is the classic GC-pause false positive (Cassandra's <c>FailureDetector.interpret</c> skips convictions after a
/// local pause). Allocation-free after construction; not thread-safe.
/// </remarks>
public sealed class LocalHealth
{
    private readonly long[] _pauseStartMs;
    private readonly long[] _pauseEndMs;
    private int _pauseCount;   // valid entries, sorted by start, disjoint
    private int _newestPause;  // index of the latest-ending pause (always the last entry)

    /// <summary>Creates a healthy tracker (score 0); <paramref name="options"/> defaults to Lifeguard's range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">When a setting is out of range.</exception>
    public LocalHealth(LocalHealthOptions? options = null)
    {
        Options = options ?? new LocalHealthOptions();
        Options.Validate();
        _pauseStartMs = new long[Options.RememberedPauses];
        _pauseEndMs = new long[Options.RememberedPauses];
    }

    /// <summary>The settings in use.</summary>
    public LocalHealthOptions Options { get; }

    /// <summary>The current score, 0 (healthy) to <see cref="LocalHealthOptions.MaxScore"/>.</summary>
    public int Score { get; private set; }

    /// <summary><c>Score + 1</c>: the factor this node's timeouts are stretched by.</summary>
    public int TimeoutMultiplier => Score + 1;

    /// <summary>How many pauses were detected in total.</summary>
    public long PausesDetected { get; private set; }

    /// <summary>The length of the most recent detected pause, or 0 if none.</summary>
    public long LastPauseMs => _pauseCount == 0 ? 0 : _pauseEndMs[_newestPause] - _pauseStartMs[_newestPause];

    /// <summary>When the most recent detected pause ended, or null if none.</summary>
    public long? LastPauseEndMs => _pauseCount == 0 ? null : _pauseEndMs[_newestPause];

    /// <summary>
    /// Reports that a timer of this node, due at <paramref name="scheduledMs"/>, fired at <paramref name="nowMs"/>.
    /// Late ticks raise the score, timely ones lower it; a very late one is recorded as a pause over
    /// [<paramref name="scheduledMs"/>, <paramref name="nowMs"/>).
    /// </summary>
    public LocalTickOutcome OnTick(long scheduledMs, long nowMs)
    {
        var latenessMs = nowMs - scheduledMs;
        if (latenessMs < Options.LateThresholdMs)
        {
            OnTimelyRound();
            return LocalTickOutcome.Timely;
        }
        OnMissedDeadline();
        if (latenessMs < Options.PauseThresholdMs) return LocalTickOutcome.Late;
        RecordPause(scheduledMs, nowMs);
        return LocalTickOutcome.Paused;
    }

    /// <summary>Reports that this node missed one of its own deadlines (a probe it could not send in time, a nack): score +1.</summary>
    public void OnMissedDeadline() => Score = Math.Min(Score + 1, Options.MaxScore);

    /// <summary>Reports a round that went as planned: score -1.</summary>
    public void OnTimelyRound() => Score = Math.Max(Score - 1, 0);

    /// <summary>Stretches <paramref name="timeoutMs"/> by <see cref="TimeoutMultiplier"/> (Lifeguard scales probe interval and timeout this way).</summary>
    public long ScaleTimeout(long timeoutMs) => checked(timeoutMs * TimeoutMultiplier);

    /// <summary>
    /// How much of [<paramref name="fromMs"/>, <paramref name="toMs"/>) this process spent paused, over the remembered
    /// pauses: the part of a peer's silence that is this node's fault.
    /// </summary>
    public long PausedMsWithin(long fromMs, long toMs)
    {
        long total = 0;
        for (var i = 0; i < _pauseCount; i++)
        {
            var overlap = Math.Min(toMs, _pauseEndMs[i]) - Math.Max(fromMs, _pauseStartMs[i]);
            if (overlap > 0) total += overlap;
        }
        return total;
    }

    /// <summary>
    /// True while worsening verdicts must be held back: within <see cref="LocalHealthOptions.ConvictionGraceAfterPauseMs"/>
    /// after the end of the most recent pause.
    /// </summary>
    public bool ConvictionsHeld(long nowMs) =>
        _pauseCount > 0 && Options.ConvictionGraceAfterPauseMs > 0 &&
        nowMs < _pauseEndMs[_newestPause] + Options.ConvictionGraceAfterPauseMs;

    /// <summary>Checks the tracker's invariants; throws <see cref="InvariantViolationException"/> when broken.</summary>
    public void AssertInvariants()
    {
        Invariant.Check(Score >= 0 && Score <= Options.MaxScore, "local health score within 0..MaxScore");
        Invariant.Check(_pauseCount >= 0 && _pauseCount <= _pauseStartMs.Length, "pause count within the ring");
        for (var i = 0; i < _pauseCount; i++)
            Invariant.Check(_pauseStartMs[i] < _pauseEndMs[i], "a remembered pause has positive length");
        // Remembered pauses are sorted and never overlap, or the same silence would be excused twice.
        for (var i = 1; i < _pauseCount; i++)
            Invariant.Check(_pauseEndMs[i - 1] < _pauseStartMs[i], "remembered pauses are sorted and disjoint");
        Invariant.Check(_pauseCount == 0 || _newestPause == _pauseCount - 1, "the newest pause is the last entry");
    }

    private void RecordPause(long startMs, long endMs)
    {
        PausesDetected++;
        // Kept sorted by start and disjoint. Two timers can notice the same freeze: overlapping reports are merged so
        // the same silence is never excused twice.
        var i = 0;
        while (i < _pauseCount && _pauseEndMs[i] < startMs) i++;
        var mergeEnd = i;
        while (mergeEnd < _pauseCount && _pauseStartMs[mergeEnd] <= endMs)
        {
            startMs = Math.Min(startMs, _pauseStartMs[mergeEnd]);
            endMs = Math.Max(endMs, _pauseEndMs[mergeEnd]);
            mergeEnd++;
        }
        var removed = mergeEnd - i;
        if (removed == 0)
        {
            if (_pauseCount == _pauseStartMs.Length)
            {
                if (i == 0) return; // older than everything remembered in a full ring: nothing to keep
                ShiftLeft(1, _pauseCount); // forget the oldest
                i--;
            }
            ShiftRight(i, _pauseCount);
        }
        else if (removed > 1)
        {
            ShiftLeft(i + removed, _pauseCount, removed - 1);
        }
        _pauseStartMs[i] = startMs;
        _pauseEndMs[i] = endMs;
        _newestPause = _pauseCount - 1;
    }

    // Moves entries [from, count) left by `by` and shrinks the count.
    private void ShiftLeft(int from, int count, int by = 1)
    {
        for (var k = from; k < count; k++)
        {
            _pauseStartMs[k - by] = _pauseStartMs[k];
            _pauseEndMs[k - by] = _pauseEndMs[k];
        }
        _pauseCount -= by;
    }

    // Opens a hole at `at` by moving entries [at, count) right by one and grows the count.
    private void ShiftRight(int at, int count)
    {
        for (var k = count; k > at; k--)
        {
            _pauseStartMs[k] = _pauseStartMs[k - 1];
            _pauseEndMs[k] = _pauseEndMs[k - 1];
        }
        _pauseCount++;
    }
}
