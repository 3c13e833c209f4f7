using System.Diagnostics;

namespace Keel.Chaos;

/// <summary>Runs short external commands (ip, iptables, tc, mount) with a time bound.</summary>
public static class Shell
{
    /// <summary>The outcome of one command.</summary>
    public sealed record Result(int ExitCode, string Output, string Error);

    /// <summary>Runs <paramref name="file"/> with <paramref name="args"/>; kills it after <paramref name="timeout"/> (default 30 s).</summary>
    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return new Result(127, "", $"{file}: {e.Message}");
        }
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var bound = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(bound.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            return new Result(124, await output.ConfigureAwait(false), $"{file} timed out");
        }
        return new Result(process.ExitCode, await output.ConfigureAwait(false), await error.ConfigureAwait(false));
    }

    /// <summary>Runs a command and throws when it fails.</summary>
    /// <exception cref="InvalidOperationException">The command exited with a non-zero code.</exception>
    public static async Task<string> MustAsync(string file, params string[] args)
    {
        var result = await RunAsync(file, args).ConfigureAwait(false);
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"`{file} {string.Join(' ', args)}` failed ({result.ExitCode}): {result.Error.Trim()} {result.Output.Trim()}");
        return result.Output;
    }
}
