using System.Text;

namespace Keel.TestCluster;

/// <summary>
/// The captured stdout and stderr of one child process, one line per entry, oldest dropped beyond
/// <see cref="MaxLines"/>; failures quote it so a broken server explains itself.
/// </summary>
public sealed class OutputLog
{
    /// <summary>How many lines are kept.</summary>
    public const int MaxLines = 400;

    private readonly Queue<string> _lines = new();
    private readonly object _gate = new();

    /// <summary>Appends one line (thread-safe); <paramref name="stream"/> tags it as out or err.</summary>
    public void Append(string stream, string? line)
    {
        if (line is null) return;
        lock (_gate)
        {
            _lines.Enqueue($"[{stream}] {line}");
            while (_lines.Count > MaxLines) _lines.Dequeue();
        }
    }

    /// <summary>The kept lines, newline-separated, or the last <paramref name="lastLines"/> of them.</summary>
    public string Text(int lastLines = MaxLines)
    {
        lock (_gate)
        {
            var builder = new StringBuilder();
            foreach (var line in _lines.Skip(Math.Max(0, _lines.Count - lastLines))) builder.AppendLine(line);
            return builder.ToString();
        }
    }
}
