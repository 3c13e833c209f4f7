using System.Diagnostics;
using Keel.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Keel.AspNetCore.Tests;

/// <summary>One real 3-member Keel cluster for the whole assembly (stopped, every process killed, at the end); tests use their own key prefixes.</summary>
public sealed class ClusterFixture : IAsyncLifetime
{
    private TestCluster.TestCluster? _cluster;
    private KeelClient? _client;

    public TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    /// <summary>A client of the test itself (not of an app instance).</summary>
    public KeelClient Client => _client ?? throw new InvalidOperationException("not started");

    public KeelClient NewClient() => new(new KeelClientOptions { Endpoints = Cluster.ClientUrls.ToList() });

    public async Task InitializeAsync()
    {
        _cluster = await TestCluster.TestCluster.StartAsync(3);
        _client = NewClient();
    }

    public async Task DisposeAsync()
    {
        if (_client is not null) await _client.DisposeAsync();
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    /// <summary>
    /// An app instance on an in-memory TestServer with its own KeelClient (from <c>AddKeelClient</c> bound to the
    /// cluster's endpoints), as a separate process of the service would have.
    /// </summary>
    public Task<WebApplication> StartAppAsync(Action<WebApplicationBuilder> configureServices, Action<WebApplication> configureApp) =>
        StartAsync(builder =>
        {
            builder.Services.AddKeelClient(builder.Configuration.GetSection("Keel"));
            configureServices(builder);
            var app = builder.Build();
            configureApp(app);
            return app;
        });

    /// <summary>Starts a web application built by <paramref name="build"/> from a builder already pointed at the cluster and the TestServer.</summary>
    public async Task<WebApplication> StartAsync(Func<WebApplicationBuilder, WebApplication> build)
    {
        var builder = WebApplication.CreateBuilder();
        Configure(builder);
        var app = build(builder);
        await app.StartAsync();
        return app;
    }

    /// <summary>Points a builder at the cluster and an in-memory TestServer, with quiet logs.</summary>
    public void Configure(WebApplicationBuilder builder)
    {
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        for (var i = 0; i < Cluster.ClientUrls.Count; i++) builder.Configuration[$"Keel:Endpoints:{i}"] = Cluster.ClientUrls[i];
    }
}

internal static class Poll
{
    public static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    /// <summary>Waits until <paramref name="condition"/> holds, failing after <see cref="Bound"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? bound = null)
    {
        var limit = bound ?? Bound;
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(clock.Elapsed < limit, $"not within {limit.TotalSeconds} s: {what}");
            await Task.Delay(50);
        }
    }

    public static Task UntilAsync(Func<bool> condition, string what, TimeSpan? bound = null) => UntilAsync(() => Task.FromResult(condition()), what, bound);
}

/// <summary>Stops and disposes app instances at the end of a test, also when it fails.</summary>
internal sealed class Apps : IAsyncDisposable
{
    private readonly List<WebApplication> _apps = [];

    public WebApplication Add(WebApplication app)
    {
        _apps.Add(app);
        return app;
    }

    public static async Task StopAsync(WebApplication app)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await app.StopAsync(bound.Token);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var app in _apps)
        {
            try
            {
                await StopAsync(app);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
            }
            await app.DisposeAsync();
        }
        _apps.Clear();
    }
}
