using Microsoft.Extensions.Configuration;

namespace Keel.Client.Configuration;

/// <summary>
/// Configuration from the keys under a prefix in Keel (or etcd): <c>{prefix}Logging/LogLevel/Default</c> becomes
/// <c>Logging:LogLevel:Default</c>. With reload on, a watch keeps the values current and raises the reload token on each
/// change, so <c>IOptionsMonitor</c> and <c>IConfiguration.GetReloadToken()</c> users see updates within a round trip.
/// </summary>
public sealed class KeelConfigurationSource : IConfigurationSource
{
    /// <summary>The client to read and watch with (owned by the caller).</summary>
    public required KeelClient Client { get; init; }

    /// <summary>The key prefix, e.g. <c>config/my-service/</c>; it is removed from the configuration keys.</summary>
    public required string Prefix { get; init; }

    /// <summary>Keep the values current through a watch (default true).</summary>
    public bool ReloadOnChange { get; init; } = true;

    /// <summary>Start with no values instead of failing when the cluster cannot be read at start-up (default false).</summary>
    public bool Optional { get; init; }

    /// <inheritdoc />
    public IConfigurationProvider Build(IConfigurationBuilder builder) => new KeelConfigurationProvider(this);
}

/// <summary>The provider behind <see cref="KeelConfigurationSource"/>; disposing it stops the watch.</summary>
public sealed class KeelConfigurationProvider(KeelConfigurationSource source) : ConfigurationProvider, IDisposable
{
    private static readonly TimeSpan RewatchPause = TimeSpan.FromSeconds(1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private Task? _watch;
    private long _revision;

    /// <summary>Set when the last attempt to read or watch failed; null while the values are current.</summary>
    public Exception? LastError { get; private set; }

    /// <summary>Reads every key under the prefix (configuration loading is synchronous by design) and starts the watch.</summary>
    public override void Load()
    {
        try
        {
            LoadAsync(_stop.Token).GetAwaiter().GetResult();
        }
        catch (KeelClientException failure) when (source.Optional)
        {
            LastError = failure;
        }
        if (source.ReloadOnChange && _watch is null) _watch = Task.Run(() => WatchLoopAsync(_stop.Token));
    }

    private async Task LoadAsync(CancellationToken token)
    {
        var range = await source.Client.GetPrefixAsync(source.Prefix, cancellationToken: token).ConfigureAwait(false);
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var kv in range.Kvs) data[ToConfigurationKey(kv.Key)] = kv.Value;
        lock (_gate)
        {
            Data = data;
            _revision = range.Revision;
        }
        LastError = null;
    }

    private async Task WatchLoopAsync(CancellationToken token)
    {
        while (!token.IsCancellationRequested)
        {
            try
            {
                var from = Interlocked.Read(ref _revision) + 1;
                await foreach (var e in source.Client.WatchAsync(source.Prefix, new WatchOptions { Prefix = true, StartRevision = from }, token).ConfigureAwait(false))
                {
                    lock (_gate)
                    {
                        // Copy on write: readers on other threads always see a complete dictionary, never one mid-update.
                        var data = new Dictionary<string, string?>(Data, StringComparer.OrdinalIgnoreCase);
                        var key = ToConfigurationKey(e.Kv.Key);
                        if (e.Type == WatchEventType.Put) data[key] = e.Kv.Value;
                        else data.Remove(key);
                        Data = data;
                        _revision = e.Revision;
                    }
                    OnReload();
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (KeelClientException failure)
            {
                // Compacted history or a cluster unreachable for a while: start over from a fresh read.
                LastError = failure;
                try
                {
                    await Task.Delay(RewatchPause, token).ConfigureAwait(false);
                    await LoadAsync(token).ConfigureAwait(false);
                    OnReload();
                }
                catch (KeelClientException again)
                {
                    LastError = again;
                }
                catch (OperationCanceledException) when (token.IsCancellationRequested)
                {
                    return;
                }
            }
        }
    }

    private string ToConfigurationKey(string key) =>
        key[source.Prefix.Length..].Replace("/", ConfigurationPath.KeyDelimiter, StringComparison.Ordinal);

    /// <summary>Stops the watch.</summary>
    public void Dispose()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        try
        {
            _watch?.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
    }
}

/// <summary>Adds Keel as a configuration source.</summary>
public static class KeelConfigurationExtensions
{
    /// <summary>
    /// Adds the keys under <paramref name="prefix"/> (e.g. <c>config/my-service/</c>) as configuration, kept current by
    /// a watch unless <paramref name="reloadOnChange"/> is false.
    /// </summary>
    public static IConfigurationBuilder AddKeel(this IConfigurationBuilder builder, KeelClient client, string prefix, bool reloadOnChange = true, bool optional = false)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        return builder.Add(new KeelConfigurationSource { Client = client, Prefix = prefix, ReloadOnChange = reloadOnChange, Optional = optional });
    }
}
