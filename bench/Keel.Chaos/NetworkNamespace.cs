using System.Globalization;

namespace Keel.Chaos;

/// <summary>
/// A private network namespace with its own loopback (<c>ip netns add</c>): every server process, iptables rule and tc
/// qdisc of a scenario lives in it, so nothing touches the host's network. Disposing kills every process still in the
/// namespace (SIGKILL, by pid from <c>ip netns pids</c>) and deletes it, which drops its rules and qdiscs with it.
/// </summary>
public sealed class NetworkNamespace : IAsyncDisposable
{
    private bool _disposed;

    private NetworkNamespace(string name) => Name = name;

    /// <summary>The namespace's name (<c>keel-chaos-PID-N</c>).</summary>
    public string Name { get; }

    /// <summary>Where <c>ip netns</c> keeps the namespace handle, for setns(2).</summary>
    public string HandlePath => "/var/run/netns/" + Name;

    /// <summary>Creates the namespace and brings its loopback up.</summary>
    /// <exception cref="InvalidOperationException"><c>ip netns</c> is unavailable (needs iproute2 and root).</exception>
    public static async Task<NetworkNamespace> CreateAsync(string name)
    {
        var created = await Shell.RunAsync("ip", ["netns", "add", name]).ConfigureAwait(false);
        if (created.ExitCode != 0)
            throw new InvalidOperationException(
                $"the chaos harness needs network namespaces: `ip netns add {name}` failed ({created.ExitCode}): {created.Error.Trim()}. " +
                "Run as root on Linux with iproute2, iptables and faketime installed (.ci/run installs them).");
        var ns = new NetworkNamespace(name);
        try
        {
            await ns.ExecMustAsync("ip", "link", "set", "lo", "up").ConfigureAwait(false);
        }
        catch
        {
            await ns.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        return ns;
    }

    /// <summary>
    /// Deletes namespaces left by a harness process that was killed before its cleanup ran (named
    /// keel-chaos-PID-N with PID no longer alive), killing what still runs in them.
    /// </summary>
    public static async Task SweepLeftoversAsync()
    {
        var list = await Shell.RunAsync("ip", ["netns", "list"]).ConfigureAwait(false);
        foreach (var line in list.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var name = line.Split(' ')[0];
            var parts = name.Split('-');
            if (parts is ["keel", "chaos", var pid, _] && int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && !Directory.Exists($"/proc/{id}"))
                await new NetworkNamespace(name).DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Runs a command inside the namespace.</summary>
    public Task<Shell.Result> ExecAsync(params string[] command) => Shell.RunAsync("ip", ["netns", "exec", Name, .. command]);

    /// <summary>Runs a command inside the namespace and throws when it fails.</summary>
    public Task<string> ExecMustAsync(params string[] command) => Shell.MustAsync("ip", ["netns", "exec", Name, .. command]);

    /// <summary>Adds an iptables rule (<c>iptables -A ...</c>) in the namespace.</summary>
    public Task<string> IptablesAsync(params string[] rule) => ExecMustAsync(["iptables", "-w", .. rule]);

    /// <summary>Removes every iptables rule of the filter table in the namespace.</summary>
    public async Task FlushIptablesAsync()
    {
        await ExecMustAsync("iptables", "-w", "-F").ConfigureAwait(false);
    }

    /// <summary>Every iptables rule in the namespace (iptables -S), for reports.</summary>
    public async Task<string> RulesAsync() => (await ExecAsync("iptables", "-S").ConfigureAwait(false)).Output;

    /// <summary>Kills what still runs in the namespace and deletes it.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var pids = await Shell.RunAsync("ip", ["netns", "pids", Name]).ConfigureAwait(false);
            var list = pids.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (list.Length == 0) break;
            foreach (var pid in list)
                if (int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
                {
                    await Shell.RunAsync("kill", ["-CONT", id.ToString(CultureInfo.InvariantCulture)]).ConfigureAwait(false);
                    await Shell.RunAsync("kill", ["-KILL", id.ToString(CultureInfo.InvariantCulture)]).ConfigureAwait(false);
                }
            await Task.Delay(50).ConfigureAwait(false);
        }
        await Shell.RunAsync("ip", ["netns", "del", Name]).ConfigureAwait(false);
    }
}
