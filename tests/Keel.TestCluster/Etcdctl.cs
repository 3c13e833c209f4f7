using System.Diagnostics;

namespace Keel.TestCluster;

/// <summary>
/// Runs the unmodified etcdctl 3.4 (Debian's etcd-client) against a set of endpoints: ETCDCTL_API=3 and
/// ETCDCTL_ENDPOINTS are set in its environment (so commands it runs itself, such as <c>lock</c>'s command, inherit
/// them), every run is bounded by a timeout after which the process is killed.
/// </summary>
public sealed class Etcdctl
{
    /// <summary>Overrides the etcdctl binary (default <c>/usr/bin/etcdctl</c>).</summary>
    public const string ExecutableEnvironmentVariable = "KEEL_TEST_ETCDCTL";

    /// <summary>The default bound on one etcdctl run.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(20);

    /// <summary>Creates a runner for the given client URLs (such as <c>http://127.0.0.1:2379</c>).</summary>
    /// <param name="endpoints">Client URLs.</param>
    /// <param name="timeout">The bound on one run.</param>
    /// <param name="tls">The CA, certificate and key passed as <c>--cacert --cert --key</c> (through ETCDCTL_CACERT,
    /// ETCDCTL_CERT and ETCDCTL_KEY, so commands etcdctl runs itself inherit them), or null for none.</param>
    public Etcdctl(IEnumerable<string> endpoints, TimeSpan? timeout = null, EtcdctlTls? tls = null)
    {
        Tls = tls;
        Endpoints = endpoints.ToArray();
        if (Endpoints.Count == 0) throw new ArgumentException("at least one endpoint", nameof(endpoints));
        Timeout = timeout ?? DefaultTimeout;
    }

    /// <summary>
    /// The same endpoints as <paramref name="user"/> (etcdctl's <c>--user name:password</c>, passed as ETCDCTL_USER so
    /// that commands etcdctl starts itself inherit it).
    /// </summary>
    public Etcdctl As(string user, string password) => new(Endpoints, Timeout, Tls) { User = user + ":" + password };

    /// <summary>The <c>name:password</c> etcdctl authenticates with, or null to send no credentials.</summary>
    public string? User { get; private init; }

    /// <summary>The client URLs passed as ETCDCTL_ENDPOINTS.</summary>
    public IReadOnlyList<string> Endpoints { get; }

    /// <summary>The bound on one run.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>The TLS files given to etcdctl, or null.</summary>
    public EtcdctlTls? Tls { get; }

    /// <summary>The etcdctl binary in use.</summary>
    public static string ExecutablePath =>
        Environment.GetEnvironmentVariable(ExecutableEnvironmentVariable) is { Length: > 0 } path ? path : "/usr/bin/etcdctl";

    /// <summary>Runs <c>etcdctl args...</c> to completion.</summary>
    public Task<EtcdctlResult> RunAsync(params string[] args) => RunAsync(args, standardInput: null);

    /// <summary>Runs etcdctl with <paramref name="standardInput"/> written to its stdin (then closed).</summary>
    /// <exception cref="TimeoutException">It did not exit within the timeout (it is killed; the message has its output).</exception>
    public async Task<EtcdctlResult> RunAsync(IReadOnlyList<string> args, string? standardInput, TimeSpan? timeout = null)
    {
        var bound = timeout ?? Timeout;
        using var process = new Process { StartInfo = CreateStartInfo(args) };
        process.StartInfo.RedirectStandardInput = true;
        process.Start();
        ChildProcesses.Register(process);
        try
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (standardInput is not null) await process.StandardInput.WriteAsync(standardInput).ConfigureAwait(false);
            process.StandardInput.Close();
            using var cancel = new CancellationTokenSource(bound);
            try
            {
                await process.WaitForExitAsync(cancel.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                ChildProcesses.KillTree(process);
                throw new TimeoutException(
                    $"etcdctl {string.Join(' ', args)} (endpoints {string.Join(',', Endpoints)}) did not exit within {bound.TotalSeconds} s; " +
                    $"stdout: {await stdout.ConfigureAwait(false)} stderr: {await stderr.ConfigureAwait(false)}");
            }
            return new EtcdctlResult(args.ToArray(), process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
        }
        finally
        {
            ChildProcesses.KillTree(process);
        }
    }

    /// <summary>
    /// Starts a long-running etcdctl (watch, lock, elect, lease keep-alive) whose output lines are collected as they
    /// come; dispose it to kill it.
    /// </summary>
    public EtcdctlProcess Start(params string[] args) => new(CreateStartInfo(args), args);

    /// <summary>The start info of <c>etcdctl args...</c>: environment set, output redirected.</summary>
    public ProcessStartInfo CreateStartInfo(IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(ExecutablePath)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        start.Environment["ETCDCTL_API"] = "3";
        start.Environment["ETCDCTL_ENDPOINTS"] = string.Join(',', Endpoints);
        start.Environment["ETCDCTL_DIAL_TIMEOUT"] = "3s";
        start.Environment.Remove("ETCDCTL_USER");
        if (User is not null) start.Environment["ETCDCTL_USER"] = User;
        if (Tls?.CaFile is { } ca) start.Environment["ETCDCTL_CACERT"] = ca;
        if (Tls?.CertFile is { } cert) start.Environment["ETCDCTL_CERT"] = cert;
        if (Tls?.KeyFile is { } key) start.Environment["ETCDCTL_KEY"] = key;
        if (Tls?.InsecureSkipVerify == true)
        {
            // etcdctl 3.4 dials without TLS when given no certificate files unless told --insecure-transport=false.
            start.Environment["ETCDCTL_INSECURE_SKIP_TLS_VERIFY"] = "true";
            start.Environment["ETCDCTL_INSECURE_TRANSPORT"] = "false";
        }
        return start;
    }
}

/// <summary>TLS files for etcdctl (<c>--cacert</c>, <c>--cert</c>, <c>--key</c>); any may be null.</summary>
/// <param name="CaFile">The CA that signs the server certificates.</param>
/// <param name="CertFile">The client certificate.</param>
/// <param name="KeyFile">The client certificate's key.</param>
/// <param name="InsecureSkipVerify">Accept any server certificate (<c>--insecure-skip-tls-verify</c>, for <c>--auto-tls</c>).</param>
public sealed record EtcdctlTls(string? CaFile, string? CertFile, string? KeyFile, bool InsecureSkipVerify = false);

/// <summary>The outcome of one etcdctl run.</summary>
/// <param name="Arguments">The arguments it ran with.</param>
/// <param name="ExitCode">Its exit code (0 = success).</param>
/// <param name="StandardOutput">Everything it printed on stdout.</param>
/// <param name="StandardError">Everything it printed on stderr.</param>
public sealed record EtcdctlResult(IReadOnlyList<string> Arguments, int ExitCode, string StandardOutput, string StandardError)
{
    /// <summary>stdout split into lines; the newline ending the last line does not add an empty line.</summary>
    public IReadOnlyList<string> OutputLines
    {
        get
        {
            var text = StandardOutput.EndsWith('\n') ? StandardOutput[..^1] : StandardOutput;
            return text.Length == 0 ? [] : text.Split('\n');
        }
    }

    /// <summary>Returns this result if the exit code is 0, else throws with the full output.</summary>
    /// <exception cref="InvalidOperationException">etcdctl failed.</exception>
    public EtcdctlResult EnsureSuccess() =>
        ExitCode == 0 ? this : throw new InvalidOperationException($"etcdctl failed: {this}");

    /// <inheritdoc />
    public override string ToString() =>
        $"etcdctl {string.Join(' ', Arguments)} -> exit {ExitCode}\nstdout:\n{StandardOutput}\nstderr:\n{StandardError}";
}
