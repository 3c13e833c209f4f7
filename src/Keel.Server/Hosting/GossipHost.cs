using System.Net;
using System.Security.Cryptography;
using Keel.Gossip;
using Keel.Gossip.Hosting;
using Keel.Node;
using Keel.Node.Keyring;
using Keel.Server.Security;
using Microsoft.Extensions.Logging;

namespace Keel.Server.Hosting;

/// <summary>
/// The gossip member every Keel server runs beside Raft (Consul's model: servers and lightweight agents in one SWIM
/// pool): a <see cref="GossipAgent"/> on UDP at the same host and port as the server's peer URL, tagged
/// <c>role=server</c>, joined through the other servers' peer addresses. Raft keeps the few voters consistent; gossip
/// tells every server who among possibly thousands of agents is alive, with phi-accrual health, without a
/// coordinator. Joining retries in the background, because servers of a new cluster start in any order.
/// </summary>
/// <remarks>
/// Keys: the gossip keyring is replicated state (<see cref="GossipKeys"/>, changed through the Raft log by
/// <c>keel keyring</c>). Until this member has applied it, the agent uses <c>--gossip-key-file</c>; with no file it
/// waits for the replicated keyring. While the replicated keyring is empty, the leader proposes its initialization:
/// the file's keys, or a key generated here from the operating system's RNG. Every change applied later is handed to
/// the agent at once.
/// </remarks>
public sealed class GossipHost : IAsyncDisposable
{
    private const int SyncEveryMs = 100;

    private readonly CancellationTokenSource _stopping = new();
    private readonly ILogger _logger;
    private readonly NodeHost _node;
    private readonly IReadOnlyList<byte[]>? _fileKeys;
    private readonly DropLogLimiter _dropLog = new();
    private readonly Task _runner;
    private readonly IReadOnlyList<Uri> _seedUrls;
    private volatile GossipAgent? _agent;
    private GossipKeys? _applied;

    private GossipHost(GossipAgentOptions options, IReadOnlyList<Uri> seedUrls, NodeHost node, IReadOnlyList<byte[]>? fileKeys, ILogger logger)
    {
        _logger = logger;
        _node = node;
        _fileKeys = fileKeys;
        _seedUrls = seedUrls;
        options = options with { OnPacketDropped = LogDrop };
        _runner = Task.Run(() => RunAsync(options));
    }

    /// <summary>The running agent, once it has joined (null before).</summary>
    public GossipAgent? Agent => _agent;

    /// <summary>The UDP endpoint of a peer URL (gossip shares the peer port number, over UDP).</summary>
    /// <exception cref="System.Net.Sockets.SocketException">The URL's host name does not resolve (yet).</exception>
    public static IPEndPoint EndpointOf(Uri peerUrl) => new(Peers.PeerTransport.ResolveListenAddress(peerUrl), peerUrl.Port);

    /// <summary>
    /// <see cref="EndpointOf"/>, or null while the URL's host name does not resolve: a member of a Kubernetes
    /// StatefulSet has a DNS name only once its pod exists, and reports about it must not fail meanwhile.
    /// </summary>
    public static IPEndPoint? TryEndpointOf(Uri peerUrl)
    {
        try
        {
            return EndpointOf(peerUrl);
        }
        catch (System.Net.Sockets.SocketException)
        {
            return null;
        }
    }

    /// <summary>
    /// Resolves the seeds' peer URLs to gossip endpoints, leaving out this member itself. A name that does not resolve
    /// is returned in <c>Unresolved</c> instead of failing the start: servers of a StatefulSet start before the names of
    /// the pods after them are published, so the caller retries those later.
    /// </summary>
    public static async Task<(IPEndPoint[] Resolved, string[] Unresolved)> ResolveSeedsAsync(
        IReadOnlyList<Uri> seedUrls, IPEndPoint self, Func<string, CancellationToken, Task<IPAddress[]>> resolve, CancellationToken cancellationToken)
    {
        var resolved = new List<IPEndPoint>();
        var unresolved = new List<string>();
        foreach (var url in seedUrls)
        {
            IPAddress? address = null;
            if (Peers.PeerTransport.TryLiteralAddress(url.Host, out var literal)) address = literal;
            else
            {
                try
                {
                    var addresses = await resolve(url.Host, cancellationToken).ConfigureAwait(false);
                    address = addresses.FirstOrDefault();
                }
                catch (System.Net.Sockets.SocketException)
                {
                }
            }
            if (address is null)
            {
                unresolved.Add(url.Host);
                continue;
            }
            var endpoint = new IPEndPoint(address, url.Port);
            if (!endpoint.Equals(self) && !resolved.Contains(endpoint)) resolved.Add(endpoint);
        }
        return (resolved.ToArray(), unresolved.Distinct(StringComparer.OrdinalIgnoreCase).ToArray());
    }

    /// <summary>Starts gossiping for a server.</summary>
    /// <exception cref="ArgumentException"><c>--gossip-key-file</c> cannot be read or holds a bad key.</exception>
    public static GossipHost Start(ServerOptions options, NodeHost node, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(node);
        var fileKeys = options.GossipKeyFile is { } path ? GossipKeyFile.Read(path) : null;
        var self = EndpointOf(options.ListenPeerUrls[0]);
        // Resolved when the agent starts, and again on every retry: see ResolveSeedsAsync.
        var advertised = options.InitialAdvertisePeerUrls.Select(u => u.OriginalString).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var seedUrls = node.InitialMembers.SelectMany(m => m.PeerUrls).Where(u => !advertised.Contains(u))
            .Distinct(StringComparer.OrdinalIgnoreCase).Select(u => new Uri(u)).ToArray();
        var agentOptions = new GossipAgentOptions
        {
            Keys = fileKeys ?? [new byte[GossipKeyring.KeyBytes]], // replaced before the agent starts when there is no file
            BindEndpoint = self,
            Tags = new MemberTags(options.Zone, "server", Api.MaintenanceApi.ApiVersion, 0),
            RandomSeed = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8)),
            JoinTimeoutMs = 5_000,
            // Shutting down announces the leave, but waits at most a second for it (a stop should be quick).
            LeaveTimeoutMs = 1_000,
        };
        return new GossipHost(agentOptions, seedUrls, node, fileKeys, logger);
    }

    private void LogDrop(OpenOutcome reason, IPEndPoint from)
    {
        var count = _dropLog.ShouldLog(reason);
        if (count == 0) return;
        _logger.LogWarning("gossip packet from {From} dropped ({Reason}; {Count} so far for this reason){Hint}", from, DropLogLimiter.NameOf(reason), count,
            reason switch
            {
                OpenOutcome.Forged => ": it does not decrypt under any installed key (another cluster's key, a removed key, or tampered)",
                OpenOutcome.Plaintext => ": it is not encrypted (an old Keel, or not a member)",
                _ => "",
            });
    }

    private async Task RunAsync(GossipAgentOptions options)
    {
        // A generated key is made once per process: if this member leads several times before the keyring is committed,
        // it proposes the same key.
        var generated = RandomNumberGenerator.GetBytes(GossipKeyring.KeyBytes);
        var proposing = false;
        var waitingLogged = false;
        var attempt = 0;
        long nextStartMs = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!_stopping.IsCancellationRequested)
        {
            var replicated = _node.GossipKeys;
            if (replicated.IsEmpty && !proposing && _node.Status.Leader == _node.MemberId)
            {
                proposing = true;
                _ = InitializeKeyringAsync(_fileKeys ?? [generated]).ContinueWith(_ => proposing = false, TaskScheduler.Default);
            }
            if (_agent is null && clock.ElapsedMilliseconds >= nextStartMs)
            {
                var keys = !replicated.IsEmpty ? replicated.Keys : _fileKeys;
                if (keys is null)
                {
                    if (!waitingLogged) _logger.LogInformation("gossip: no --gossip-key-file; waiting for the cluster's keyring from the replicated log");
                    waitingLogged = true;
                }
                else if (await TryStartAsync(options with { Keys = keys }, attempt++))
                {
                    _applied = replicated.IsEmpty ? null : replicated;
                }
                else
                {
                    nextStartMs = clock.ElapsedMilliseconds + 1_000;
                }
            }
            if (_agent is { } agent && !replicated.IsEmpty && (_applied is null || !_applied.SameAs(replicated)))
            {
                try
                {
                    await agent.SetKeysAsync(replicated.Keys);
                    _applied = replicated;
                    _logger.LogInformation("gossip keyring now {Count} key(s), primary {Primary} (fingerprints: {All})", replicated.Keys.Count,
                        GossipKeyFile.Fingerprint(replicated.Primary!), string.Join(", ", replicated.Keys.Select(k => GossipKeyFile.Fingerprint(k))));
                }
                catch (ObjectDisposedException)
                {
                    return;
                }
            }
            try
            {
                await Task.Delay(SyncEveryMs, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task InitializeKeyringAsync(IReadOnlyList<byte[]> keys)
    {
        try
        {
            var result = await _node.WriteAsync(KvCommand.OfKeyring(new KeyringChange(KeyringAction.Initialize, keys)));
            if (result.Error is { } error) _logger.LogInformation("gossip: proposing the cluster keyring failed ({Error}); retrying", error.Message);
            else _logger.LogInformation("gossip: initialized the cluster keyring with {Source} (primary {Primary})",
                _fileKeys is null ? "a generated key" : "the keys of --gossip-key-file", GossipKeyFile.Fingerprint(keys[0]));
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            _logger.LogInformation("gossip: proposing the cluster keyring failed ({Error}); retrying", exception.Message);
        }
    }

    private async Task<bool> TryStartAsync(GossipAgentOptions options, int attempt)
    {
        try
        {
            var (seeds, unresolved) = await ResolveSeedsAsync(_seedUrls, options.BindEndpoint, Dns.GetHostAddressesAsync, _stopping.Token);
            if (unresolved.Length > 0 && attempt % 6 == 0)
                _logger.LogInformation("gossip: seed names not resolvable yet ({Hosts}); retrying (a StatefulSet publishes its pods' names as they start)",
                    string.Join(", ", unresolved));
            // Every other server is a seed: with none reachable by name yet, joining would only make a pool of one.
            if (seeds.Length == 0 && unresolved.Length > 0) return false;
            _agent = await GossipAgent.StartAsync(options with { Seeds = seeds }, _stopping.Token);
            _logger.LogInformation("gossip member {Id:x16} on udp {Endpoint} joined ({Members} members known)",
                _agent.Id, _agent.LocalEndpoint, _agent.Members.Count);
            return true;
        }
        catch (GossipJoinException) when (!_stopping.IsCancellationRequested)
        {
            if (attempt % 6 == 0) _logger.LogInformation("gossip: no seed answered yet; retrying");
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception exception)
        {
            _logger.LogWarning(exception, "gossip: could not start; retrying");
        }
        return false;
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
