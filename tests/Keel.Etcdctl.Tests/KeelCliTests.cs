using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Keel.TestCluster;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// The <c>keel</c> CLI's own client commands speak etcdctl's output formats (<c>-w simple|json|table</c>) and honour
/// etcdctl's <c>--dial-timeout</c>/<c>--command-timeout</c>; <c>keel serve --log-level</c> sets the console's level.
/// Keel only: these are Keel's commands.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class KeelCliTests
{
    private static async Task<(int ExitCode, string Output, string Error)> Keel(params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(TestCluster.TestCluster.KeelDll);
        foreach (var arg in args) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            var output = process.StandardOutput.ReadToEndAsync(bound.Token);
            var error = process.StandardError.ReadToEndAsync(bound.Token);
            await process.WaitForExitAsync(bound.Token);
            return (process.ExitCode, await output, await error);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    private static string Base64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    [Fact(Timeout = 180_000)]
    public async Task The_keel_commands_take_etcdctls_tls_and_user_flags_against_a_secured_cluster()
    {
        var directory = Directory.CreateTempSubdirectory("keel-cli-tls-").FullName;
        try
        {
            using var ca = TestCertificateAuthority.Create("keel-test-ca", directory);
            var server = ca.Issue("member", "server");
            var client = ca.Issue("client", "client");
            await using var cluster = await TestCluster.TestCluster.StartAsync(1, ServerKind.Keel, options: new TestClusterOptions
            {
                ClientScheme = "https",
                EtcdctlTls = new EtcdctlTls(ca.CaFile, client.CertFile, client.KeyFile),
                ExtraFlags = ["--cert-file", server.CertFile, "--key-file", server.KeyFile, "--trusted-ca-file", ca.CaFile, "--client-cert-auth", "--bcrypt-cost", "4"],
            });
            var root = cluster.Etcdctl();
            (await root.RunAsync("user", "add", "root:rootpw")).EnsureSuccess();
            (await root.RunAsync("auth", "enable")).EnsureSuccess();
            var endpoint = new Uri(cluster.Members[0].ClientUrl).Authority;
            string[] tls = ["--endpoints", endpoint, "--cacert", ca.CaFile, "--cert", client.CertFile, "--key", client.KeyFile];

            var put = await Keel(["put", "secure/k", "v1", .. tls, "--user", "root:rootpw"]);
            Assert.True(put.ExitCode == 0, put.Output + put.Error);
            var get = await Keel(["get", "secure/k", .. tls, "--user", "root:rootpw"]);
            Assert.True(get.ExitCode == 0, get.Output + get.Error);
            Assert.Equal(["secure/k", "v1"], get.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            var keyring = await Keel(["keyring", "list", .. tls, "--user", "root:rootpw"]);
            Assert.True(keyring.ExitCode == 0, keyring.Output + keyring.Error);
            Assert.Contains(" primary ", keyring.Output);
            var members = await Keel(["members", .. tls, "--user", "root:rootpw"]);
            Assert.True(members.ExitCode == 0, members.Output + members.Error);
            Assert.Contains("leader", members.Output);

            // The client certificate's CN ("client") is no user, so without --user the call is refused; a wrong password
            // is refused with etcd's text; without the CA the member's certificate is not trusted.
            var noUser = await Keel(["get", "secure/k", .. tls]);
            Assert.NotEqual(0, noUser.ExitCode);
            Assert.Contains("etcdserver: permission denied", noUser.Error);
            var wrong = await Keel(["get", "secure/k", .. tls, "--user", "root:nope"]);
            Assert.NotEqual(0, wrong.ExitCode);
            Assert.Contains("etcdserver: authentication failed, invalid user ID or password", wrong.Error);
            var untrusted = await Keel("get", "secure/k", "--endpoints", "https://" + endpoint, "--cert", client.CertFile, "--key", client.KeyFile, "--user", "root:rootpw");
            Assert.NotEqual(0, untrusted.ExitCode);
            Assert.DoesNotContain("v1", untrusted.Output);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Put_and_get_write_etcdctl_json_and_table_and_serve_logs_at_the_level_asked()
    {
        await using var cluster = await TestCluster.TestCluster.StartAsync(1, ServerKind.Keel,
            options: new TestClusterOptions { ExtraFlags = ["--log-level", "warn"] });
        var endpoint = new Uri(cluster.Members[0].ClientUrl).Authority;

        var put = await Keel("put", "cli/k", "v1", "--endpoints", endpoint, "-w", "json");
        Assert.True(put.ExitCode == 0, put.Output + put.Error);
        using (var json = JsonDocument.Parse(put.Output))
            Assert.True(json.RootElement.GetProperty("header").GetProperty("revision").GetInt64() > 1, put.Output);

        var get = await Keel("get", "cli/k", "--endpoints", endpoint, "-w", "json");
        Assert.True(get.ExitCode == 0, get.Output + get.Error);
        using (var json = JsonDocument.Parse(get.Output))
        {
            var kv = json.RootElement.GetProperty("kvs")[0];
            Assert.Equal(Base64("cli/k"), kv.GetProperty("key").GetString());
            Assert.Equal(Base64("v1"), kv.GetProperty("value").GetString());
            Assert.Equal(1, json.RootElement.GetProperty("count").GetInt64());
        }

        var table = await Keel("get", "cli/k", "--endpoints", endpoint, "-w", "table");
        Assert.True(table.ExitCode == 0, table.Output + table.Error);
        Assert.Contains("KEY", table.Output);
        Assert.Contains("cli/k", table.Output);
        Assert.Contains("v1", table.Output);

        var simple = await Keel("get", "cli/k", "--endpoints", endpoint);
        Assert.Equal(["cli/k", "v1"], simple.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        var bogus = await Keel("get", "cli/k", "--endpoints", endpoint, "-w", "yaml");
        Assert.NotEqual(0, bogus.ExitCode);
        Assert.Contains("unknown output format", bogus.Output + bogus.Error);

        // The member was started with --log-level warn: it served all of this without a single info line.
        var log = cluster.Members[0].Output.Text();
        Assert.DoesNotContain(" info: ", log);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_command_against_a_silent_endpoint_ends_with_etcdctls_deadline_error()
    {
        // A listener that accepts connections and never answers: the TCP connect succeeds, HTTP/2 never starts.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var accepted = new List<Socket>();
        using var stop = new CancellationTokenSource();
        var acceptLoop = Task.Run(async () =>
        {
            try
            {
                while (true) accepted.Add(await silent.AcceptSocketAsync(stop.Token));
            }
            catch (OperationCanceledException)
            {
            }
        });
        try
        {
            var endpoint = $"127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}";
            var result = await Keel("get", "cli/k", "--endpoints", endpoint, "--dial-timeout", "500ms", "--command-timeout", "1s");
            Assert.NotEqual(0, result.ExitCode);
            Assert.Contains("context deadline exceeded", result.Output + result.Error);
        }
        finally
        {
            await stop.CancelAsync();
            await acceptLoop;
            foreach (var socket in accepted) socket.Dispose();
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Serve_refuses_an_unknown_log_level()
    {
        var result = await Keel("serve", "--log-level", "verbose", "--data-dir", Path.Combine(Path.GetTempPath(), $"keel-cli-{Guid.NewGuid():N}"));
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("--log-level must be debug, info, warn or error", result.Output + result.Error);
    }
}
