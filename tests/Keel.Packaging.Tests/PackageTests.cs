using System.Diagnostics;
using System.IO.Compression;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Cluster = Keel.TestCluster.TestCluster;

namespace Keel.Packaging.Tests;

/// <summary>
/// Issue 15's "Done when" for packages: every package packs with its README, license, symbols and a version from git;
/// Keel.Client and Keel.AspNetCore installed from the local feed into a fresh project work against a real 3-member
/// cluster; <c>dotnet tool install</c> of the local package gives a working <c>keel</c>.
/// </summary>
public sealed class PackageTests(PackedFeed feed) : IClassFixture<PackedFeed>
{
    private static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(6);

    [Fact]
    public void Every_package_has_its_readme_license_symbols_and_one_version_from_git()
    {
        Assert.Matches(new Regex(@"^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$"), feed.Version);
        var commit = GitHead();
        foreach (var id in PackedFeed.PackageIds)
        {
            var package = Path.Combine(feed.Feed, $"{id}.{feed.Version}.nupkg");
            Assert.True(File.Exists(package), $"{id} {feed.Version} was not packed; in the feed: {string.Join(", ", Directory.GetFiles(feed.Feed).Select(Path.GetFileName))}");
            Assert.True(File.Exists(Path.ChangeExtension(package, ".snupkg")), $"{id} has no symbol package");
            using var archive = ZipFile.OpenRead(package);
            var metadata = PackedFeed.Nuspec(archive).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
            string? Field(string name) => metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value;
            Assert.Equal("MIT", Field("license"));
            Assert.Equal("README.md", Field("readme"));
            Assert.Contains(archive.Entries, e => e.FullName == "README.md" && e.Length > 200);
            Assert.False(string.IsNullOrWhiteSpace(Field("description")), $"{id} has no description");
            // SourceLink: the package names the commit it was built from.
            var repository = metadata.Elements().SingleOrDefault(e => e.Name.LocalName == "repository");
            Assert.NotNull(repository);
            if (commit is not null) Assert.Equal(commit, repository.Attribute("commit")?.Value);
            // Dependencies on other Keel packages carry the same version (one release, one version).
            foreach (var dependency in metadata.Descendants().Where(e => e.Name.LocalName == "dependency" && (e.Attribute("id")?.Value.StartsWith("Keel.", StringComparison.Ordinal) ?? false)))
                Assert.Equal(feed.Version, dependency.Attribute("version")?.Value);
            if (id == "keel")
                Assert.Contains(archive.Entries, e => e.FullName.EndsWith("/any/DotnetToolSettings.xml", StringComparison.Ordinal));
            else
                Assert.Contains(archive.Entries, e => e.FullName == $"lib/net10.0/{id}.dll");
        }
    }

    [Fact]
    public async Task A_fresh_project_uses_the_client_and_aspnetcore_packages_against_a_three_member_cluster()
    {
        var consumer = await feed.ConsumerAsync();
        await using var cluster = await Cluster.StartAsync(3);

        var (exit, output) = await PackedFeed.RunAsync("dotnet", feed.Scratch, TimeSpan.FromMinutes(2), consumer, "basic", string.Join(',', cluster.ClientUrls));

        Assert.True(exit == 0, $"the consumer failed (exit {exit}):\n{output}\n{cluster.DescribeOutput(20)}");
        var put = Regex.Match(output, @"get: hello from a package at (\d+)");
        Assert.True(put.Success, output);
        Assert.Matches($@"watch: Put pkg/greeting=hello from a package at {put.Groups[1].Value}", output);
        var fencing = Regex.Match(output, @"fencing: (\d+) then (\d+)");
        Assert.True(fencing.Success, output);
        Assert.True(long.Parse(fencing.Groups[2].Value) > long.Parse(fencing.Groups[1].Value), $"fencing tokens must grow: {fencing.Value}");
        // Restored from the feed just packed, not from anywhere else.
        Assert.True(Directory.Exists(Path.Combine(feed.Scratch, "consumer-packages", "keel.client", feed.Version)));
    }

    [Fact]
    public async Task The_installed_client_applies_every_write_once_while_the_leader_is_killed_and_restarted()
    {
        var consumer = await feed.ConsumerAsync();
        await using var cluster = await Cluster.StartAsync(3);
        var stopFile = Path.Combine(feed.Scratch, $"stop-{Guid.NewGuid():N}");
        await using var writers = PackedFeed.Start("dotnet", feed.Scratch, consumer, "writers", string.Join(',', cluster.ClientUrls), stopFile);
        try
        {
            await WaitForAcksAsync(writers, 200);
            var leader = await cluster.FindLeaderAsync();
            await cluster.KillAsync(leader);
            await WaitForAcksAsync(writers, LastAcks(writers.OutputLines) + 200);
            await cluster.RestartAsync(leader);
            await WaitForAcksAsync(writers, LastAcks(writers.OutputLines) + 200);
        }
        finally
        {
            File.WriteAllText(stopFile, "stop");
        }
        var exit = await writers.WaitForExitAsync(TimeSpan.FromSeconds(90));
        var output = writers.Describe();
        Assert.True(exit == 0, $"writers failed (exit {exit}):\n{output}\n{cluster.DescribeOutput(20)}");
        var result = Regex.Match(output, @"exactly-once: acknowledged (\d+), applied (\d+), duplicates (\d+), versions match (True|False), retries (\d+)");
        Assert.True(result.Success, output);
        Assert.Equal("0", result.Groups[3].Value);
        Assert.Equal(result.Groups[1].Value, result.Groups[2].Value);
        Assert.Equal("True", result.Groups[4].Value);
        // Only proves something if the kill forced retries.
        Assert.True(long.Parse(result.Groups[5].Value) > 0, $"no call was retried: {result.Value}");
    }

    [Fact]
    public async Task Two_instances_of_an_installed_web_app_replay_one_idempotent_response_and_elect_one_leader()
    {
        var consumer = await feed.ConsumerAsync();
        await using var cluster = await Cluster.StartAsync(3);
        var ports = Keel.TestCluster.FreePorts.Reserve(2);
        var urls = ports.Select(p => $"http://127.0.0.1:{p}").ToArray();
        var endpoints = string.Join(',', cluster.ClientUrls);
        await using var first = PackedFeed.Start("dotnet", feed.Scratch, consumer, "web", endpoints, urls[0], "a");
        await using var second = PackedFeed.Start("dotnet", feed.Scratch, consumer, "web", endpoints, urls[1], "b");
        foreach (var instance in new[] { first, second })
            await instance.WaitForAsync(lines => lines.Any(l => l.StartsWith("listening", StringComparison.Ordinal)), "listening", TimeSpan.FromSeconds(60));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };

        async Task<(int Status, string Body, bool Replayed)> Post(string url, string key, string body)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, url + "/orders") { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
            request.Headers.Add("Idempotency-Key", key);
            using var response = await http.SendAsync(request);
            return ((int)response.StatusCode, await response.Content.ReadAsStringAsync(), response.Headers.Contains("Idempotent-Replayed"));
        }

        var original = await Post(urls[0], "order-42", """{"item":"tea"}""");
        Assert.Equal(201, original.Status);
        var replay = await Post(urls[1], "order-42", """{"item":"tea"}""");
        Assert.Equal(201, replay.Status);
        Assert.Equal(original.Body, replay.Body);
        Assert.True(replay.Replayed, "the second instance did not mark its answer as a replay");
        var changed = await Post(urls[1], "order-42", """{"item":"coffee"}""");
        Assert.Equal(422, changed.Status);
        // The handler ran once across both instances.
        var orders = (await cluster.Etcdctl().RunAsync("get", "pkg/orders/", "--prefix", "--keys-only")).EnsureSuccess();
        Assert.Single(orders.OutputLines, l => l.Length > 0);

        // Exactly one instance leads the election.
        var clock = Stopwatch.StartNew();
        string[] leaders = [];
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            leaders = (await Task.WhenAll(urls.Select(u => http.GetStringAsync(u + "/leader")))).Where(l => l != "none").ToArray();
            if (leaders.Length == 1) break;
            await Task.Delay(200); // polling the two instances for the election's outcome: bounded above
        }
        Assert.Single(leaders);
    }

    [Fact]
    public async Task The_keel_tool_installs_from_the_feed_and_talks_to_a_cluster()
    {
        await using var cluster = await Cluster.StartAsync(3);
        var tools = Path.Combine(feed.Scratch, "tools");
        feed.WriteNuGetConfig(feed.Scratch);
        var (installed, installOutput) = await PackedFeed.DotnetAsync(feed.Scratch, BuildTimeout,
            "tool", "install", "keel", "--tool-path", tools, "--version", feed.Version, "--add-source", feed.Feed);
        Assert.True(installed == 0, installOutput);
        var keel = Path.Combine(tools, "keel");
        Assert.True(File.Exists(keel), installOutput);

        var endpoints = string.Join(',', cluster.ClientUrls);
        var (putExit, putOutput) = await PackedFeed.RunAsync(keel, feed.Scratch, TimeSpan.FromSeconds(60), "put", "pkg/tool", "installed", "--endpoints", endpoints);
        Assert.True(putExit == 0, putOutput);
        Assert.Contains("OK", putOutput, StringComparison.Ordinal);
        var (getExit, getOutput) = await PackedFeed.RunAsync(keel, feed.Scratch, TimeSpan.FromSeconds(60), "get", "pkg/tool", "--endpoints", endpoints);
        Assert.True(getExit == 0, getOutput);
        Assert.Equal(["pkg/tool", "installed"], getOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        // The same value through an independent client proves the tool wrote to the cluster, not somewhere else.
        var etcdctl = (await cluster.Etcdctl().RunAsync("get", "pkg/tool", "--print-value-only")).EnsureSuccess();
        Assert.Equal(["installed"], etcdctl.OutputLines);
    }

    [Fact]
    public async Task The_self_contained_single_file_build_serves_etcdctl_without_a_dotnet_runtime_on_the_path()
    {
        var output = Path.Combine(feed.Scratch, "single-file");
        var (published, publishOutput) = await PackedFeed.DotnetAsync(PackedFeed.RepositoryRoot, BuildTimeout,
            "publish", "src/Keel.Cli", "-c", "Release", "-r", "linux-x64", "--self-contained", "-p:PublishSingleFile=true", "-o", output);
        Assert.True(published == 0, publishOutput);
        var keel = Path.Combine(output, "keel");
        Assert.True(File.Exists(keel), publishOutput);
        // One file: no keel.dll, no runtime beside it.
        Assert.Empty(Directory.GetFiles(output, "*.dll"));

        var data = Path.Combine(feed.Scratch, "single-file-data");
        var ports = Keel.TestCluster.FreePorts.Reserve(3);
        var client = $"http://127.0.0.1:{ports[0]}";
        var start = new ProcessStartInfo(keel) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "serve", "--data-dir", data, "--listen-client-urls", client, "--advertise-client-urls", client,
                     "--listen-peer-urls", $"http://127.0.0.1:{ports[1]}", "--initial-advertise-peer-urls", $"http://127.0.0.1:{ports[1]}",
                     "--initial-cluster", $"default=http://127.0.0.1:{ports[1]}", "--listen-metrics-urls", $"http://127.0.0.1:{ports[2]}" })
            start.ArgumentList.Add(argument);
        // No DOTNET_ROOT and a PATH without dotnet: the runtime must come from the file itself.
        start.Environment.Remove("DOTNET_ROOT");
        start.Environment["PATH"] = "/usr/bin:/bin";
        using var server = Process.Start(start)!;
        Keel.TestCluster.ChildProcesses.Register(server);
        var log = new System.Text.StringBuilder();
        server.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        server.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        try
        {
            var etcdctl = new Keel.TestCluster.Etcdctl([client]);
            Keel.TestCluster.EtcdctlResult? put = null;
            for (var attempt = 0; attempt < 60 && put is not { ExitCode: 0 }; attempt++)
            {
                if (attempt > 0) await Task.Delay(250); // polling for the port to open: bounded, 15 s in all
                put = await etcdctl.RunAsync("put", "single", "file");
            }
            Assert.True(put is { ExitCode: 0 }, $"{put?.StandardError}\n{log}");
            var get = (await etcdctl.RunAsync("get", "single", "--print-value-only")).EnsureSuccess();
            Assert.Equal(["file"], get.OutputLines);
        }
        finally
        {
            Keel.TestCluster.ChildProcesses.KillTree(server);
        }
    }

    [Fact]
    public async Task The_kubernetes_manifests_pass_the_api_schemas_and_a_broken_one_does_not()
    {
        var validate = Path.Combine(PackedFeed.RepositoryRoot, "deploy", "kubernetes", "validate");
        var manifests = new[] { "keel.yaml", "keel-agent.yaml" }.Select(f => Path.Combine(validate, "..", f)).ToArray();
        // npm ci: exactly the versions of package-lock.json, from the npm registry.
        var (installed, installOutput) = await PackedFeed.RunAsync("npm", validate, TimeSpan.FromMinutes(3), "ci", "--no-audit", "--no-fund");
        Assert.True(installed == 0, $"npm ci failed (node and npm are needed: apt-get install nodejs npm):\n{installOutput}");

        var (exit, output) = await PackedFeed.RunAsync("node", validate, TimeSpan.FromMinutes(1), ["validate.mjs", .. manifests]);
        Assert.True(exit == 0, output);
        foreach (var kind in new[] { "Service/keel:", "Service/keel-client:", "StatefulSet/keel:", "PodDisruptionBudget/keel:", "DaemonSet/keel-agent:" })
            Assert.Contains($"{kind} valid", output, StringComparison.Ordinal);

        // The check can fail: a replica count that is not a number, and a StatefulSet whose governing service is missing.
        var broken = Path.Combine(feed.Scratch, "broken.yaml");
        File.WriteAllText(broken, File.ReadAllText(manifests[0]).Replace("replicas: 3", "replicas: three", StringComparison.Ordinal));
        var (brokenExit, brokenOutput) = await PackedFeed.RunAsync("node", validate, TimeSpan.FromMinutes(1), "validate.mjs", broken);
        Assert.Equal(1, brokenExit);
        Assert.Contains("StatefulSet/keel: INVALID: data/spec/replicas must be integer", brokenOutput, StringComparison.Ordinal);
        var orphan = Path.Combine(feed.Scratch, "orphan.yaml");
        File.WriteAllText(orphan, File.ReadAllText(manifests[0]).Replace("serviceName: keel\n", "serviceName: keel-peers\n", StringComparison.Ordinal));
        var (orphanExit, orphanOutput) = await PackedFeed.RunAsync("node", validate, TimeSpan.FromMinutes(1), "validate.mjs", orphan);
        Assert.Equal(1, orphanExit);
        Assert.Contains("serviceName keel-peers is not defined", orphanOutput, StringComparison.Ordinal);
    }

    // The writers mode prints "acks N" every 100 ms.
    private static long LastAcks(IReadOnlyList<string> lines) =>
        lines.LastOrDefault(l => l.StartsWith("acks ", StringComparison.Ordinal)) is { } last ? long.Parse(last[5..], System.Globalization.CultureInfo.InvariantCulture) : 0;

    private static Task WaitForAcksAsync(Keel.TestCluster.WatchedProcess writers, long atLeast) =>
        writers.WaitForAsync(lines => LastAcks(lines) >= atLeast, $"{atLeast} acknowledged writes", TimeSpan.FromSeconds(60));

    private static string? GitHead()
    {
        try
        {
            var start = new ProcessStartInfo("git", ["rev-parse", "HEAD"]) { WorkingDirectory = PackedFeed.RepositoryRoot, RedirectStandardOutput = true, RedirectStandardError = true };
            using var git = Process.Start(start)!;
            var head = git.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit();
            return git.ExitCode == 0 && head.Length == 40 ? head : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
