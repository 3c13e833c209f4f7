using System.Net;
using System.Reflection;
using System.Security.Cryptography;
using Keel.Gossip;
using Keel.Gossip.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Keel.AspNetCore.Discovery;

/// <summary>Settings of the in-process gossip agent (<c>AddKeelGossipAgent</c>), the same as <c>keel agent</c>'s flags.</summary>
public sealed class KeelGossipAgentOptions
{
    /// <summary>Where to join: Keel servers' peer addresses (<c>host:port</c>; gossip runs on UDP beside the peer port) or other agents'.</summary>
    public IList<string> Join { get; } = [];

    /// <summary>
    /// The cluster's gossip keys, one base64 key per line, the primary first (<c>keel keyring list &gt; FILE</c> on a
    /// server writes one). Re-read every second; a rotation reaches the agent by replacing the file.
    /// </summary>
    public string KeyFile { get; set; } = "";

    /// <summary>The UDP address to gossip on (default <c>127.0.0.1:0</c>); the servers must be able to reach it.</summary>
    public string Bind { get; set; } = "127.0.0.1:0";

    /// <summary>This instance's zone tag.</summary>
    public string Zone { get; set; } = "default";

    /// <summary>What is wrong with these settings (empty when valid).</summary>
    public IEnumerable<string> Problems()
    {
        if (Join.Count == 0) yield return "KeelGossipAgentOptions.Join needs at least one server peer address (host:port)";
        if (string.IsNullOrWhiteSpace(KeyFile)) yield return "KeelGossipAgentOptions.KeyFile is required (gossip keys are never taken from configuration values)";
        foreach (var address in Join.Append(Bind))
            if (!TryParseHostPort(address, out _, out _)) yield return $"KeelGossipAgentOptions: '{address}' is not host:port";
    }

    internal static bool TryParseHostPort(string text, out string host, out int port)
    {
        host = "";
        port = 0;
        var uriText = text.Contains("://", StringComparison.Ordinal) ? text : "udp://" + text;
        if (!Uri.TryCreate(uriText, UriKind.Absolute, out var uri) || uri.Port < 0 || string.IsNullOrEmpty(uri.Host)) return false;
        host = uri.Host.Trim('[', ']');
        port = uri.Port;
        return true;
    }
}

/// <summary>
/// This application instance as a gossip member of a Keel cluster (Consul's client agent, in-process): it joins the
/// servers' SWIM pool, so every server follows its health with the phi-accrual detector, and a service registration
/// made beside it records its member id, letting discovery leave out instances whose agent the cluster finds dead
/// (a frozen or cut-off process is noticed in a few seconds, well before its registration's lease runs out).
/// Leaves the pool on a clean stop (peers mark it left at once).
/// </summary>
public sealed class KeelGossipAgent(KeelGossipAgentOptions options, ILogger<KeelGossipAgent> logger) : IHostedService, IAsyncDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private Task _following = Task.CompletedTask;
    private GossipAgent? _agent;
    private int _disposed;

    /// <summary>The running agent once the host has started (its <see cref="GossipAgent.Id"/> is this instance's member id).</summary>
    public GossipAgent? Agent => _agent;

    /// <summary>Starts the agent and joins through <see cref="KeelGossipAgentOptions.Join"/>.</summary>
    /// <exception cref="InvalidOperationException">The options are invalid, or no seed answered.</exception>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Problems().FirstOrDefault() is { } problem) throw new InvalidOperationException(problem);
        IReadOnlyList<byte[]> keys;
        try
        {
            keys = GossipKeyFile.Read(options.KeyFile, "KeelGossipAgentOptions.KeyFile");
        }
        catch (ArgumentException error)
        {
            throw new InvalidOperationException(error.Message, error);
        }
        var seeds = new List<IPEndPoint>();
        foreach (var address in options.Join) seeds.Add(await ResolveAsync(address, cancellationToken).ConfigureAwait(false));
        var agentOptions = new GossipAgentOptions
        {
            Keys = keys,
            BindEndpoint = await ResolveAsync(options.Bind, cancellationToken).ConfigureAwait(false),
            Seeds = seeds,
            Tags = new MemberTags(options.Zone, "agent", typeof(KeelGossipAgent).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "", 0),
            RandomSeed = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)),
            LeaveTimeoutMs = 1_000,
            OnPacketDropped = (reason, from) => logger.LogDebug("keel: gossip packet from {From} dropped ({Reason})", from, DropLogLimiter.NameOf(reason)),
        };
        try
        {
            _agent = await GossipAgent.StartAsync(agentOptions, cancellationToken).ConfigureAwait(false);
        }
        catch (GossipJoinException error)
        {
            throw new InvalidOperationException($"keel: the gossip agent could not join through {string.Join(", ", options.Join)}: {error.Message}", error);
        }
        logger.LogInformation("keel: gossip agent {Id:x16} on udp {Endpoint} joined", _agent.Id, _agent.LocalEndpoint);
        var agent = _agent;
        _following = Task.Run(() => GossipKeyFile.FollowAsync(agent, options.KeyFile, TimeSpan.FromSeconds(1),
            reloaded => logger.LogInformation("keel: gossip keys reloaded: {Count} key(s), primary {Fingerprint}", reloaded.Count, GossipKeyFile.Fingerprint(reloaded[0])),
            kept => logger.LogWarning("keel: keeping the current gossip keys: {Message}", kept.Message), _stopping.Token), CancellationToken.None);
    }

    /// <summary>Leaves the pool (peers mark this member left), within about a second and a half.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _following.ConfigureAwait(false);
        if (_agent is not { } agent) return;
        try
        {
            await agent.LeaveAsync().WaitAsync(TimeSpan.FromSeconds(1.5), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception error) when (error is TimeoutException or OperationCanceledException)
        {
            logger.LogWarning("keel: gossip agent stopped without confirming its leave");
            await agent.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        // The container disposes this once as itself and once as the hosted service it also is.
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_agent is { } agent) await agent.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }

    private static async Task<IPEndPoint> ResolveAsync(string text, CancellationToken cancellationToken)
    {
        KeelGossipAgentOptions.TryParseHostPort(text, out var host, out var port);
        if (IPAddress.TryParse(host, out var address)) return new IPEndPoint(address, port);
        var addresses = await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        return new IPEndPoint(addresses.FirstOrDefault() ?? throw new InvalidOperationException($"keel: cannot resolve '{host}'"), port);
    }
}
