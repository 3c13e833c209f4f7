using System.Text;
using System.Text.RegularExpressions;
using Keel.TestCluster;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Keel.Dashboard.Tests;

/// <summary>
/// Opens <c>/ui</c> of a real 3-member Keel cluster in headless Chromium and checks what an operator sees: three
/// members and the leader, a leader change after the leader is killed, and a key's history with hybrid timestamps.
/// Screenshots go to docs/dashboard-*.png.
/// </summary>
public sealed class DashboardBrowserTests(ITestOutputHelper output)
{
    /// <summary>Overrides the Chromium executable (default: Debian's /usr/bin/chromium).</summary>
    public const string ChromiumEnvironmentVariable = "KEEL_TEST_CHROMIUM";

    private static string ChromiumPath()
    {
        var path = Environment.GetEnvironmentVariable(ChromiumEnvironmentVariable) is { Length: > 0 } chosen ? chosen : "/usr/bin/chromium";
        // Fail, never skip: CI must prove the dashboard works in a browser.
        Assert.True(File.Exists(path),
            $"Chromium is missing at {path}: install Debian's package with `apt-get install -y chromium` (.ci/run does) or set " +
            $"{ChromiumEnvironmentVariable}. Playwright's own browser download is not used.");
        return path;
    }

    [Fact]
    public async Task Dashboard_shows_three_members_follows_a_leader_change_and_renders_a_key_history()
    {
        var chromium = ChromiumPath();
        var metricsPorts = new int[3];
        await using var cluster = await TestCluster.TestCluster.StartAsync(3, ServerKind.Keel, options: new TestClusterOptions
        {
            // A fresh metrics port per start (the harness retries with fresh peer ports when it loses a port race).
            EnvironmentOf = (index, _) =>
            {
                metricsPorts[index] = FreePorts.Reserve(1)[0];
                return new Dictionary<string, string> { ["KEEL_LISTEN_METRICS_URLS"] = $"http://127.0.0.1:{metricsPorts[index]}" };
            },
        });
        var leader = await cluster.FindLeaderAsync();
        var viewer = (leader + 1) % 3;
        var etcdctl = cluster.Etcdctl(viewer);
        foreach (var value in new[] { "v1", "v2", "v3" }) await RunAsync(etcdctl, "put", "/app/config", value);
        await RunAsync(etcdctl, "put", "<b>bold</b>&\"key\"", "<script>window.injected=1</script>");
        var lease = (await RunAsync(etcdctl, "lease", "grant", "300")).StandardOutput.Split(' ')[1];
        await RunAsync(etcdctl, "put", "--lease=" + lease, "/locks/scheduler", "node-b");
        for (var i = 0; i < 40; i++) await RunAsync(etcdctl, "put", $"/load/{i % 8}", $"value-{i}");

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = chromium,
            Headless = true,
            // As root (CI) Chromium needs --no-sandbox; /dev/shm may be small in containers.
            Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        });
        var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1500, Height = 1100 } });
        page.SetDefaultTimeout(30_000);
        var errors = new List<string>();
        page.PageError += (_, error) => errors.Add(error);
        var viewerName = cluster.Members[viewer].Name;
        var leaderName = cluster.Members[leader].Name;
        output.WriteLine($"viewing {viewerName} on :{metricsPorts[viewer]}; leader {leaderName}");
        await page.GotoAsync($"http://127.0.0.1:{metricsPorts[viewer]}/ui");

        // Three members, the leader named.
        await Expect(page.Locator("#members tr.member")).ToHaveCountAsync(3);
        await Expect(page.Locator("#leader")).ToHaveTextAsync(leaderName);
        await Expect(page.Locator($"#members tr.member[data-name='{leaderName}'][data-leader='true']")).ToHaveCountAsync(1);
        await Expect(page.Locator("#health")).ToHaveTextAsync("ready");
        await Expect(page.Locator("#gossip tr.gossip-member")).ToHaveCountAsync(3);
        await Expect(page.Locator("#leases tr.lease")).ToContainTextAsync(["/locks/scheduler"]);

        // A key's history: every put, newest first, with hybrid timestamps.
        var configRow = page.Locator($"#keys tr.key[data-key='{Convert.ToBase64String(Encoding.UTF8.GetBytes("/app/config"))}']");
        await configRow.ClickAsync();
        await Expect(page.Locator("#history-key")).ToHaveTextAsync("/app/config");
        // At least three: a put retried after a timeout may have landed twice.
        var changes = page.Locator("#history-table tr.change");
        await Expect(changes.Nth(2)).ToBeVisibleAsync();
        await Expect(changes.First).ToContainTextAsync("v3");
        await Expect(changes.Last).ToContainTextAsync("v1");
        await Expect(changes.Nth(0)).ToContainTextAsync(new Regex(@"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC ·\d+"));

        // Keys are bytes, shown as text: markup in a key or value never becomes HTML or runs.
        await Expect(page.Locator("#keys td", new PageLocatorOptions { HasText = "<b>bold</b>&\"key\"" })).ToHaveCountAsync(1);
        Assert.Equal(0, await page.Locator("#keys b").CountAsync());
        Assert.Null(await page.EvaluateAsync<int?>("() => window.injected ?? null"));

        // The time slider at its left end shows the store as of the first write.
        await page.Locator("#time").FillAsync("0");
        await Expect(page.Locator("#asof-hint")).ToContainTextAsync("store as of revision 2 ");
        await Expect(page.Locator("#keys tr.key")).ToHaveCountAsync(1);
        await page.Locator("#now").ClickAsync();
        await Expect(page.Locator("#time-label")).ToHaveTextAsync("now (live)");
        await configRow.ClickAsync();
        await Expect(changes.First).ToContainTextAsync("v3");
        // Let the charts collect a few samples.
        await page.WaitForTimeoutAsync(2_500);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = DocsPath("dashboard-overview.png"), FullPage = true });

        // Kill the leader: the page follows the new one.
        await cluster.KillAsync(leader);
        await Expect(page.Locator("#leader")).Not.ToHaveTextAsync(leaderName, new LocatorAssertionsToHaveTextOptions { Timeout = 30_000 });
        await Expect(page.Locator("#leader")).ToHaveTextAsync(new Regex("^(" + string.Join('|', cluster.Members.Where(m => m.Index != leader).Select(m => m.Name)) + ")$"),
            new LocatorAssertionsToHaveTextOptions { Timeout = 30_000 });
        var newLeader = await page.Locator("#leader").TextContentAsync();
        output.WriteLine($"new leader {newLeader}");
        await Expect(page.Locator($"#members tr.member[data-name='{newLeader}'][data-leader='true']")).ToHaveCountAsync(1);
        await Expect(page.Locator($"#members tr.member[data-name='{leaderName}'][data-leader='true']")).ToHaveCountAsync(0);
        // Gossip notices the dead member too (suspect, then dead).
        await Expect(page.Locator("#gossip")).ToContainTextAsync(new Regex("suspect|dead"), new LocatorAssertionsToContainTextOptions { Timeout = 30_000 });
        await page.WaitForTimeoutAsync(1_500);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = DocsPath("dashboard-leader-change.png"), FullPage = true });

        // The new leader's own dashboard shows each follower's match index and lag (a follower does not know them).
        var newLeaderIndex = cluster.Members.Single(m => m.Name == newLeader).Index;
        if (newLeaderIndex != viewer) await page.GotoAsync($"http://127.0.0.1:{metricsPorts[newLeaderIndex]}/ui");
        await Expect(page.Locator("#leader")).ToHaveTextAsync(newLeader!);
        var liveFollower = cluster.Members.Single(m => m.Index != leader && m.Index != newLeaderIndex).Name;
        await Expect(page.Locator($"#members tr.member[data-name='{liveFollower}'] td").Nth(3)).ToHaveTextAsync(new Regex(@"^\d+$"));
        await Expect(page.Locator($"#members tr.member[data-name='{liveFollower}'] td").Nth(5)).ToHaveTextAsync("replicate");
        await configRow.ClickAsync();
        await Expect(changes.First).ToContainTextAsync("v3");
        await page.WaitForTimeoutAsync(1_500);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = DocsPath("dashboard-leader.png"), FullPage = true });
        Assert.Empty(errors);
    }

    /// <summary>
    /// Runs etcdctl with a generous timeout, retrying a few times: on a loaded CI machine a write can miss etcdctl's
    /// 5-second default while the cluster is still settling.
    /// </summary>
    private static async Task<EtcdctlResult> RunAsync(Etcdctl etcdctl, params string[] args)
    {
        EtcdctlResult? result = null;
        for (var attempt = 0; attempt < 4; attempt++)
        {
            result = await etcdctl.RunAsync([.. args, "--command-timeout=15s"], null, TimeSpan.FromSeconds(30));
            if (result.ExitCode == 0) return result;
            await Task.Delay(500);
        }
        return result!.EnsureSuccess();
    }

    /// <summary>docs/NAME in the repository (found upward from the test's folder), else the test's folder.</summary>
    private static string DocsPath(string name)
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            if (File.Exists(Path.Combine(directory.FullName, "Keel.slnx"))) return Path.Combine(directory.FullName, "docs", name);
        return Path.Combine(AppContext.BaseDirectory, name);
    }
}
