using System.Net;
using System.Security.Cryptography;
using System.Text;
using Keel.Gossip;
using Keel.Gossip.Hosting;
using Keel.Node;
using Microsoft.Extensions.Logging;

namespace Keel.Server.Hosting;

/// <summary>
/// The gossip member every Keel server runs beside Raft (Consul's model: servers and lightweight agents in one SWIM
/// pool): a <see cref="GossipAgent"/> on UDP at the same host and port as the server's peer URL, tagged
/// <c>role=server</c>, joined through the other servers' peer addresses. Raft keeps the few voters consistent; gossip
/// tells every server who among possibly thousands of agents is alive, with phi-accrual health, without a
/// coordinator. Joining retries in the background, because servers of a new cluster start in any order.
/// </summary>
public sealed class GossipHost : IAsyncDisposable
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly ILogger _logger;
    private readonly Task _runner;
    private volatile GossipAgent? _agent;

    private GossipHost(GossipAgentOptions options, ILogger logger)
    {
        _logger = logger;
        _runner = Task.Run(() => RunAsync(options));
    }

    /// <summary>The running agent, once it has joined (null before).</summary>
    public GossipAgent? Agent => _agent;

    /// <summary>The key servers use when <c>--gossip-key</c> is not given: derived from the cluster token.</summary>
    /// <remarks>
    /// It keeps clusters with different tokens apart and rejects stray packets, but anyone who knows the token can
    /// forge packets: give every member a secret <c>--gossip-key</c> for real authentication.
    /// </remarks>
    public static byte[] DefaultKey(string clusterToken) => SHA256.HashData(Encoding.UTF8.GetBytes("keel-gossip/" + clusterToken));

    /// <summary>The UDP endpoint of a peer URL (gossip shares the peer port number, over UDP).</summary>
    public static IPEndPoint EndpointOf(Uri peerUrl) => new(Peers.PeerTransport.ResolveListenAddress(peerUrl), peerUrl.Port);

    /// <summary>Starts gossiping for a server.</summary>
    public static GossipHost Start(ServerOptions options, IReadOnlyList<InitialMember> members, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var self = EndpointOf(options.ListenPeerUrls[0]);
        var seeds = members.SelectMany(m => m.PeerUrls).Select(u => EndpointOf(new Uri(u))).Where(e => !e.Equals(self)).Distinct().ToArray();
        var agentOptions = new GossipAgentOptions
        {
            Key = options.GossipKey ?? DefaultKey(options.InitialClusterToken),
            BindEndpoint = self,
            Seeds = seeds,
            Tags = new MemberTags(options.Zone, "server", Api.MaintenanceApi.ApiVersion, 0),
            RandomSeed = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)),
            JoinTimeoutMs = 5_000,
            // Shutting down announces the leave, but waits at most a second for it (a stop should be quick).
            LeaveTimeoutMs = 1_000,
        };
        return new GossipHost(agentOptions, logger);
    }

    private async Task RunAsync(GossipAgentOptions options)
    {
        var attempt = 0;
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                _agent = await GossipAgent.StartAsync(options, _stopping.Token);
                _logger.LogInformation("gossip member {Id:x16} on udp {Endpoint} joined ({Members} members known)",
                    _agent.Id, _agent.LocalEndpoint, _agent.Members.Count);
                return;
            }
            catch (GossipJoinException) when (!_stopping.IsCancellationRequested)
            {
                if (attempt++ % 6 == 0) _logger.LogInformation("gossip: no seed answered yet; retrying");
            }
            catch (Exception exception) when (exception is OperationCanceledException)
            {
                return;
            }
            catch (Exception exception)
            {
                _logger.LogWarning(exception, "gossip: could not start; retrying");
            }
            try
            {
                await Task.Delay(1_000, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Leaves the pool gracefully (peers mark this server left, not dead) and stops.</summary>
    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        try
        {
            await _runner.WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception exception) when (exception is OperationCanceledException or TimeoutException)
        {
        }
        if (_agent is { } agent)
        {
            try
            {
                // LeaveAsync stops the agent once the departure is announced.
                await agent.LeaveAsync().WaitAsync(TimeSpan.FromSeconds(5));
            }
            catch (Exception exception) when (exception is OperationCanceledException or TimeoutException or ObjectDisposedException or InvalidOperationException)
            {
                await agent.DisposeAsync();
            }
        }
        _stopping.Dispose();
    }
}

