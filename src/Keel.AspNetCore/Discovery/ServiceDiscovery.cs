using System.Runtime.CompilerServices;
using System.Text.Json;
using Keel.Client;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Keel.AspNetCore.Discovery;

/// <summary>One registered instance of a service.</summary>
/// <param name="ServiceName">The service's name.</param>
/// <param name="InstanceId">The instance's id, unique within the service.</param>
/// <param name="Address">Where to reach it, e.g. <c>http://10.0.0.7:8080</c>.</param>
/// <param name="Metadata">Free-form labels (version, zone, ...).</param>
public sealed record ServiceInstance(string ServiceName, string InstanceId, string Address, IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>The gossip member id of the instance's agent (<c>AddKeelGossipAgent</c>), or null when it runs none.</summary>
    public ulong? GossipMemberId { get; init; }

    /// <summary>
    /// What the cluster's failure detector says of the instance (<see cref="ServiceHealth.Unknown"/> without a gossip
    /// agent, or from <see cref="IKeelServiceDiscovery.WatchAsync"/>, which follows registrations only).
    /// </summary>
    public ServiceHealth Health { get; init; }
}

/// <summary>An instance's health as the Keel servers' gossip (SWIM) and phi-accrual detector see its agent.</summary>
public enum ServiceHealth
{
    /// <summary>No gossip view: the instance runs no agent, the servers have not heard of it yet, or the server is etcd.</summary>
    Unknown,

    /// <summary>Alive and answering probes.</summary>
    Healthy,

    /// <summary>Suspected: probes are failing, not yet declared dead.</summary>
    Suspect,

    /// <summary>Dead, left, or failed by the phi-accrual detector: left out of <see cref="IKeelServiceDiscovery.ResolveAsync"/> unless <see cref="KeelServiceDiscoveryOptions.IncludeDown"/>.</summary>
    Down,
}

/// <summary>Settings shared by registration and discovery.</summary>
public sealed class KeelServiceDiscoveryOptions
{
    /// <summary>Key prefix of the registry (default <c>services/</c>): an instance is <c>{prefix}{service}/{instance}</c>.</summary>
    public string KeyPrefix { get; set; } = "services/";

    /// <summary>
    /// Whether <see cref="IKeelServiceDiscovery.ResolveAsync"/> also returns instances whose gossip agent the cluster
    /// finds down (default false: a registration whose lease is still alive but whose process no longer answers
    /// gossip is left out as soon as the servers declare it dead).
    /// </summary>
    public bool IncludeDown { get; set; }
}

/// <summary>Finds the live instances of a service registered in Keel, once or as a stream of changes.</summary>
public interface IKeelServiceDiscovery
{
    /// <summary>
    /// The instances of <paramref name="serviceName"/> registered now, ordered by instance id, each with its gossip
    /// health when it runs an agent (those found down are left out unless <see cref="KeelServiceDiscoveryOptions.IncludeDown"/>).
    /// </summary>
    Task<IReadOnlyList<ServiceInstance>> ResolveAsync(string serviceName, CancellationToken cancellationToken = default);

    /// <summary>
    /// The instances of <paramref name="serviceName"/>: the current set first, then the whole set again after every
    /// registration, deregistration or expiry (a crashed instance disappears when its lease expires).
    /// </summary>
    IAsyncEnumerable<IReadOnlyList<ServiceInstance>> WatchAsync(string serviceName, CancellationToken cancellationToken = default);
}

/// <summary><see cref="IKeelServiceDiscovery"/> over a Keel key prefix: a read, then a watch from the revision after it.</summary>
public sealed class KeelServiceDiscovery(KeelClient client, KeelServiceDiscoveryOptions options) : IKeelServiceDiscovery
{
    /// <inheritdoc />
    public async Task<IReadOnlyList<ServiceInstance>> ResolveAsync(string serviceName, CancellationToken cancellationToken = default)
    {
        var range = await client.GetPrefixAsync(ServicePrefix(options, serviceName), cancellationToken: cancellationToken).ConfigureAwait(false);
        var instances = range.Kvs.Select(kv => Parse(serviceName, kv)).OfType<ServiceInstance>().OrderBy(i => i.InstanceId, StringComparer.Ordinal).ToArray();
        if (!instances.Any(i => i.GossipMemberId is not null)) return instances;
        IReadOnlyList<ClusterMember> members;
        try
        {
            members = await client.MembersAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (KeelClientException error) when (error.StatusCode == Grpc.Core.StatusCode.Unimplemented)
        {
            return instances; // etcd has no gossip view: registrations alone
        }
        var byId = members.ToDictionary(m => m.Id);
        return instances.Select(i => i with { Health = HealthOf(i, byId) })
            .Where(i => options.IncludeDown || i.Health != ServiceHealth.Down).ToArray();
    }

    private static ServiceHealth HealthOf(ServiceInstance instance, Dictionary<ulong, ClusterMember> members)
    {
        if (instance.GossipMemberId is not { } id || !members.TryGetValue(id, out var member) || member.GossipState.Length == 0) return ServiceHealth.Unknown;
        if (member.IsDown) return ServiceHealth.Down;
        return member.GossipState == "suspect" || member.Health == "suspect" ? ServiceHealth.Suspect : ServiceHealth.Healthy;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<IReadOnlyList<ServiceInstance>> WatchAsync(string serviceName, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var prefix = ServicePrefix(options, serviceName);
        var range = await client.GetPrefixAsync(prefix, cancellationToken: cancellationToken).ConfigureAwait(false);
        var current = new SortedDictionary<string, ServiceInstance>(StringComparer.Ordinal);
        foreach (var instance in range.Kvs.Select(kv => Parse(serviceName, kv)).OfType<ServiceInstance>()) current[instance.InstanceId] = instance;
        yield return current.Values.ToArray();
        await foreach (var e in client.WatchAsync(prefix, new WatchOptions { Prefix = true, StartRevision = range.Revision + 1 }, cancellationToken).ConfigureAwait(false))
        {
            var id = e.Kv.Key[prefix.Length..];
            if (e.Type == WatchEventType.Delete) current.Remove(id);
            else if (Parse(serviceName, e.Kv) is { } instance) current[id] = instance;
            else continue;
            yield return current.Values.ToArray();
        }
    }

    internal static string ServicePrefix(KeelServiceDiscoveryOptions options, string serviceName)
    {
        ArgumentException.ThrowIfNullOrEmpty(serviceName);
        if (serviceName.Contains('/', StringComparison.Ordinal)) throw new ArgumentException($"service name '{serviceName}' must not contain '/'", nameof(serviceName));
        return options.KeyPrefix + serviceName + "/";
    }

    /// <summary>The instance a registry value describes, or null for a value that is not a registration (written by something else).</summary>
    private static ServiceInstance? Parse(string serviceName, KeyValue kv)
    {
        try
        {
            var record = JsonSerializer.Deserialize(kv.ValueBytes.Span, DiscoveryJson.Default.RegistrationRecord);
            if (record is null || string.IsNullOrEmpty(record.Address)) return null;
            var id = kv.Key[(kv.Key.LastIndexOf('/') + 1)..];
            ulong? member = ulong.TryParse(record.GossipMember, System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture, out var parsed) ? parsed : null;
            return new ServiceInstance(serviceName, id, record.Address, record.Metadata ?? new Dictionary<string, string>()) { GossipMemberId = member };
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>The stored form of a registration.</summary>
/// <param name="Address">Where to reach the instance.</param>
/// <param name="Metadata">Its labels.</param>
/// <param name="GossipMember">Its gossip agent's member id in hex, when it runs one.</param>
internal sealed record RegistrationRecord(string Address, Dictionary<string, string>? Metadata, string? GossipMember = null);

[System.Text.Json.Serialization.JsonSerializable(typeof(RegistrationRecord))]
internal sealed partial class DiscoveryJson : System.Text.Json.Serialization.JsonSerializerContext;

/// <summary>Settings of one <see cref="KeelServiceRegistration"/>.</summary>
public sealed class KeelServiceRegistrationOptions
{
    /// <summary>The service this instance belongs to (no '/').</summary>
    public required string ServiceName { get; init; }

    /// <summary>
    /// Where others reach this instance. Evaluated when the host has started (so it can read the server's bound
    /// addresses); registration happens then, and is removed when the host stops.
    /// </summary>
    public required Func<IServiceProvider, string> Address { get; init; }

    /// <summary>This instance's id (default: machine name, process id and a random suffix).</summary>
    public string InstanceId { get; init; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>Labels stored with the registration.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    /// <summary>TTL of the registration's lease (default 10 s): a crashed instance disappears within it.</summary>
    public TimeSpan LeaseTtl { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// Registers this instance under <c>{prefix}{service}/{instance}</c> on a kept-alive lease once the host has started,
/// registers again on a fresh lease if that lease is lost (a long partition), and revokes it when the host stops, so
/// the entry goes at once on a clean stop and within the lease TTL after a crash.
/// </summary>
public sealed class KeelServiceRegistration(KeelClient client, KeelServiceRegistrationOptions registration, KeelServiceDiscoveryOptions options,
    IServiceProvider services, ILogger<KeelServiceRegistration> logger) : IHostedLifecycleService
{
    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;
    private KeelLease? _lease;

    /// <summary>The key this instance is registered under.</summary>
    public string Key => KeelServiceDiscovery.ServicePrefix(options, registration.ServiceName) + registration.InstanceId;

    /// <summary>Whether the registration is in place (written on a lease not known to be lost).</summary>
    public bool IsRegistered => _lease is { Lost.IsCancellationRequested: false };

    /// <summary>Registers (after the server has started, so its address is known) and keeps the registration alive.</summary>
    public async Task StartedAsync(CancellationToken cancellationToken)
    {
        var address = registration.Address(services);
        await RegisterAsync(address, cancellationToken).ConfigureAwait(false);
        _loop = Task.Run(() => ReRegisterLoopAsync(address, _stopping.Token), CancellationToken.None);
    }

    private async Task RegisterAsync(string address, CancellationToken cancellationToken)
    {
        var lease = await client.GrantLeaseAsync(registration.LeaseTtl, keepAlive: true, cancellationToken).ConfigureAwait(false);
        try
        {
            var gossip = (services.GetService(typeof(KeelGossipAgent)) as KeelGossipAgent)?.Agent?.Id;
            var record = new RegistrationRecord(address, new Dictionary<string, string>(registration.Metadata), gossip?.ToString("x16", System.Globalization.CultureInfo.InvariantCulture));
            await client.PutAsync(Key, JsonSerializer.SerializeToUtf8Bytes(record, DiscoveryJson.Default.RegistrationRecord), lease.Id, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await lease.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        _lease = lease;
        logger.LogInformation("keel: registered {Key} -> {Address}", Key, address);
    }

    private async Task ReRegisterLoopAsync(string address, CancellationToken stopping)
    {
        while (true)
        {
            var lease = _lease!;
            using (var lostOrStopping = CancellationTokenSource.CreateLinkedTokenSource(stopping, lease.Lost))
            {
                try
                {
                    await Task.Delay(Timeout.Infinite, lostOrStopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                }
            }
            if (stopping.IsCancellationRequested) return;
            logger.LogWarning("keel: registration {Key} lost its lease ({Reason}); registering again", Key, lease.LostReason);
            await lease.DisposeAsync().ConfigureAwait(false);
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    await RegisterAsync(address, stopping).ConfigureAwait(false);
                    break;
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    return;
                }
                catch (KeelClientException e)
                {
                    logger.LogWarning(e, "keel: registering {Key} failed (attempt {Attempt}); trying again", Key, attempt);
                }
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>Removes the registration (revokes its lease) before the server stops taking requests.</summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        if (_lease is { } lease)
        {
            await lease.DisposeAsync().ConfigureAwait(false);
            logger.LogInformation("keel: deregistered {Key}", Key);
        }
    }

    /// <inheritdoc />
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <inheritdoc />
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
