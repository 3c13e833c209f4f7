using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Keel.TestCluster;

/// <summary>
/// Every process the harness starts is registered here and killed when the test host exits, even if a test forgot to
/// dispose its cluster: no server or etcdctl outlives the test run.
/// </summary>
internal static class ChildProcesses
{
    private static readonly ConcurrentDictionary<int, Process> Live = new();

    static ChildProcesses()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
    }

    public static void Register(Process process) => Live[process.Id] = process;

    public static void Unregister(Process process)
    {
        try { Live.TryRemove(process.Id, out _); }
        catch (InvalidOperationException) { /* never started */ }
    }

    /// <summary>SIGKILL to the process and its descendants, then waits (bounded) for it to be reaped.</summary>
    public static void KillTree(Process process)
    {
        try
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.WaitForExit(10_000);
        }
        catch (InvalidOperationException) { /* already gone */ }
        catch (System.ComponentModel.Win32Exception) { /* already gone */ }
        Unregister(process);
    }

    /// <summary>Sends SIGINT (what Ctrl-C sends): etcdctl lock/elect release what they hold and exit.</summary>
    public static void Interrupt(Process process)
    {
        const int sigint = 2;
        if (process.HasExited) return;
        if (kill(process.Id, sigint) != 0 && !process.HasExited)
            throw new InvalidOperationException($"kill({process.Id}, SIGINT) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Sends SIGTERM (what a service manager sends to stop a server gracefully).</summary>
    public static void Terminate(Process process)
    {
        const int sigterm = 15;
        if (process.HasExited) return;
        if (kill(process.Id, sigterm) != 0 && !process.HasExited)
            throw new InvalidOperationException($"kill({process.Id}, SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Sends SIGSTOP (the process freezes at once, as in a long pause or a partition it cannot see) or SIGCONT.</summary>
    public static void Freeze(Process process, bool frozen)
    {
        // Linux's numbers (x86-64 and arm64).
        const int sigstop = 19, sigcont = 18;
        if (process.HasExited) return;
        var signal = frozen ? sigstop : sigcont;
        if (kill(process.Id, signal) != 0 && !process.HasExited)
            throw new InvalidOperationException($"kill({process.Id}, {(frozen ? "SIGSTOP" : "SIGCONT")}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    private static void KillAll()
    {
        foreach (var process in Live.Values) KillTree(process);
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
