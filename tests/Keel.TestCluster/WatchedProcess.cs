using System.Diagnostics;

namespace Keel.TestCluster;

/// <summary>
/// A running program (etcdctl watch, lock, elect; an app a test installed) whose stdout and stderr lines are collected
/// as they arrive, so a test can wait, with a bound, for the lines it expects. Disposing kills it (SIGKILL to the whole
/// tree).
/// </summary>
public class WatchedProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _program;
    private readonly IReadOnlyList<string> _args;
    private readonly List<string> _stdout = new();
    private readonly List<string> _stderr = new();
    private readonly object _gate = new();
    private readonly TaskCompletionSource _stdoutClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stderrClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Starts <paramref name="start"/> (its output redirected); <paramref name="program"/> and <paramref name="args"/> name it in failure messages.</summary>
    public WatchedProcess(ProcessStartInfo start, string program, IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(start);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        _program = program;
        _args = args;
        _process = new Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => OnLine(_stdout, e.Data, _stdoutClosed);
        _process.ErrorDataReceived += (_, e) => OnLine(_stderr, e.Data, _stderrClosed);
        _process.Exited += (_, _) => Signal();
        _process.Start();
        ChildProcesses.Register(_process);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The operating-system process id.</summary>
    public int ProcessId => _process.Id;

    /// <summary>Whether the process has exited.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The stdout lines so far.</summary>
    public IReadOnlyList<string> OutputLines
    {
        get { lock (_gate) return _stdout.ToArray(); }
    }

    /// <summary>The stderr lines so far.</summary>
    public IReadOnlyList<string> ErrorLines
    {
        get { lock (_gate) return _stderr.ToArray(); }
    }

    /// <summary>Waits until at least <paramref name="count"/> stdout lines have arrived and returns all lines so far.</summary>
    /// <exception cref="TimeoutException">They did not arrive in time, or the process exited first.</exception>
    public Task<IReadOnlyList<string>> WaitForLinesAsync(int count, TimeSpan timeout) =>
        WaitForAsync(lines => lines.Count >= count, $"{count} stdout lines", timeout);

    /// <summary>Waits until <paramref name="condition"/> holds for the stdout lines and returns them.</summary>
    /// <exception cref="TimeoutException">It did not hold in time, or the process exited first.</exception>
    public async Task<IReadOnlyList<string>> WaitForAsync(Func<IReadOnlyList<string>, bool> condition, string what, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        while (true)
        {
            Task changed;
            IReadOnlyList<string> lines;
            lock (_gate)
            {
                changed = _changed.Task;
                lines = _stdout.ToArray();
            }
            if (condition(lines)) return lines;
            if (_process.HasExited && _stdoutClosed.Task.IsCompleted)
                throw new TimeoutException($"waiting for {what}: {Describe()} exited first");
            try
            {
                await changed.WaitAsync(cancel.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"waiting for {what}: not within {timeout.TotalSeconds} s; {Describe()}");
            }
        }
    }

    /// <summary>Sends SIGINT, as Ctrl-C would: etcdctl lock and elect release what they hold and exit.</summary>
    public void Interrupt() => ChildProcesses.Interrupt(_process);

    /// <summary>Waits (bounded) for the process to exit and for its output to be drained; returns its exit code.</summary>
    /// <exception cref="TimeoutException">It did not exit in time.</exception>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cancel.Token).ConfigureAwait(false);
            await Task.WhenAll(_stdoutClosed.Task, _stderrClosed.Task).WaitAsync(cancel.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"not exited within {timeout.TotalSeconds} s: {Describe()}");
        }
        return _process.ExitCode;
    }

    /// <summary>The command line, exit state and output so far, for failure messages.</summary>
    public string Describe()
    {
        lock (_gate)
        {
            var state = _process.HasExited ? $"exited {_process.ExitCode}" : "running";
            return $"{_program} {string.Join(' ', _args)} ({state})\nstdout:\n{string.Join('\n', _stdout)}\nstderr:\n{string.Join('\n', _stderr)}";
        }
    }

    /// <summary>Kills the process tree (SIGKILL).</summary>
    public ValueTask DisposeAsync()
    {
        ChildProcesses.KillTree(_process);
        _process.Dispose();
        return ValueTask.CompletedTask;
    }

    private void OnLine(List<string> target, string? line, TaskCompletionSource closed)
    {
        if (line is null)
        {
            closed.TrySetResult();
            Signal();
            return;
        }
        lock (_gate) target.Add(line);
        Signal();
    }

    private void Signal()
    {
        TaskCompletionSource previous;
        lock (_gate)
        {
            previous = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        previous.TrySetResult();
    }
}
