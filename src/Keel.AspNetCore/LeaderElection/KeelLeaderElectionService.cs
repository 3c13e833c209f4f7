using Keel.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Keel.AspNetCore.LeaderElection;

/// <summary>Settings of one <see cref="KeelLeaderElectionService"/>.</summary>
public sealed class KeelLeaderElectionOptions
{
    /// <summary>The election's name (its Keel key prefix), e.g. <c>elections/orders-cleanup</c>.</summary>
    public required string Name { get; init; }

    /// <summary>The value announced while leading (default: machine name, process id and a random suffix).</summary>
    public string CandidateId { get; init; } = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>TTL of the leadership's lease (default 10 s): a crashed leader is replaced within it.</summary>
    public TimeSpan LeaseTtl { get; init; } = KeelClient.DefaultSessionTtl;

    /// <summary>
    /// The leader's work is cancelled once no lease renewal has got through for so long that less than this is left
    /// before the lease could expire on the server (default: a third of <see cref="LeaseTtl"/>). It is the time the
    /// work has to wind down before another instance can be elected.
    /// </summary>
    public TimeSpan? StopMargin { get; init; }

    /// <summary>Pause before campaigning again after leadership ended or the work failed (default 1 s).</summary>
    public TimeSpan RecampaignDelay { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>What the leader's work is given: the leadership's fencing token and a token cancelled when it ends.</summary>
/// <param name="Services">The application's services.</param>
/// <param name="FencingToken">The leadership's fencing token (the creation revision of its key): higher for every later leader.</param>
/// <param name="LeaderKey">The leadership's key in Keel.</param>
/// <param name="CancellationToken">Cancelled when leadership is lost or the host stops.</param>
public sealed record LeaderContext(IServiceProvider Services, long FencingToken, string LeaderKey, CancellationToken CancellationToken);

/// <summary>
/// Runs a piece of work only while this instance leads a Keel election. It campaigns; once elected it runs the work
/// with a token that is cancelled when leadership ends — the lease is reported lost, renewals have failed for so long
/// that fewer than <see cref="KeelLeaderElectionOptions.StopMargin"/> remain before the lease could expire on the
/// server, the leader key is deleted, or the host stops — then resigns and campaigns again. When the work returns by
/// itself, leadership is given up and the instance campaigns again after the pause.
/// </summary>
public sealed class KeelLeaderElectionService : BackgroundService
{
    private readonly KeelClient _client;
    private readonly KeelLeaderElectionOptions _options;
    private readonly Func<LeaderContext, Task> _work;
    private readonly IServiceProvider _services;
    private readonly ILogger _logger;
    private long _fencingToken;
    private long _terms;

    /// <summary>Creates the service (normally through <see cref="KeelAspNetCoreServiceCollectionExtensions.AddKeelLeaderElection(IServiceCollection, string, Func{CancellationToken, Task})"/>).</summary>
    public KeelLeaderElectionService(KeelClient client, KeelLeaderElectionOptions options, Func<LeaderContext, Task> work, IServiceProvider services, ILogger<KeelLeaderElectionService> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.Name);
        if (options.LeaseTtl < TimeSpan.FromSeconds(2)) throw new ArgumentException($"KeelLeaderElectionOptions.LeaseTtl: {options.LeaseTtl} is under 2 s", nameof(options));
        if (StopMarginOf(options) <= TimeSpan.Zero || StopMarginOf(options) >= options.LeaseTtl * 2 / 3)
            throw new ArgumentException($"KeelLeaderElectionOptions.StopMargin: {StopMarginOf(options)} must be more than zero and under two thirds of the lease TTL (renewals keep at least that much)", nameof(options));
        _client = client;
        _options = options;
        _work = work;
        _services = services;
        _logger = logger;
    }

    /// <summary>The election's name.</summary>
    public string Name => _options.Name;

    /// <summary>The value this instance announces when it leads.</summary>
    public string CandidateId => _options.CandidateId;

    /// <summary>Whether this instance leads right now (its work is running).</summary>
    public bool IsLeader => Interlocked.Read(ref _fencingToken) != 0;

    /// <summary>The fencing token of the current leadership, 0 when not leading.</summary>
    public long FencingToken => Interlocked.Read(ref _fencingToken);

    /// <summary>How many times this instance has been elected since it started.</summary>
    public long Terms => Interlocked.Read(ref _terms);

    private static TimeSpan StopMarginOf(KeelLeaderElectionOptions options) => options.StopMargin ?? options.LeaseTtl / 3;

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var leadership = await _client.Election(_options.Name)
                    .CampaignAsync(_options.CandidateId, _options.LeaseTtl, stoppingToken).ConfigureAwait(false);
                await LeadAsync(leadership, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // Whatever went wrong (cluster unreachable past the retries, a resignation that failed), the service
                // keeps campaigning rather than stopping the host.
                _logger.LogWarning(e, "keel: election {Election}: campaign failed; campaigning again", _options.Name);
            }
            try
            {
                await Task.Delay(_options.RecampaignDelay, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task LeadAsync(ElectionLeadership leadership, CancellationToken stoppingToken)
    {
        using var term = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, leadership.Lost);
        Interlocked.Exchange(ref _fencingToken, leadership.Revision);
        Interlocked.Increment(ref _terms);
        _logger.LogInformation("keel: election {Election}: {Candidate} leads (fencing token {Token})", _options.Name, _options.CandidateId, leadership.Revision);
        var guards = Task.WhenAll(GuardRenewalsAsync(leadership.Lease, term), GuardKeyAsync(leadership, term));
        try
        {
            await _work(new LeaderContext(_services, leadership.Revision, leadership.Key, term.Token)).ConfigureAwait(false);
            if (!term.IsCancellationRequested)
                _logger.LogInformation("keel: election {Election}: the leader's work returned; giving up leadership", _options.Name);
        }
        catch (OperationCanceledException) when (term.IsCancellationRequested)
        {
        }
        catch (Exception e)
        {
            _logger.LogError(e, "keel: election {Election}: the leader's work failed; giving up leadership", _options.Name);
        }
        finally
        {
            // Not leading from here on, whatever the resignation below does.
            Interlocked.Exchange(ref _fencingToken, 0);
            if (!term.IsCancellationRequested) term.Cancel();
            await guards.ConfigureAwait(false);
            if (leadership.Lost.IsCancellationRequested)
                _logger.LogWarning("keel: election {Election}: leadership lost: {Reason}", _options.Name, leadership.Lease.LostReason);
        }
    }

    /// <summary>Ends the term once renewals have failed so long that the lease could expire on the server within the stop margin.</summary>
    private async Task GuardRenewalsAsync(KeelLease lease, CancellationTokenSource term)
    {
        var margin = StopMarginOf(_options);
        try
        {
            while (!term.IsCancellationRequested)
            {
                var remaining = lease.GuaranteedRemaining;
                if (remaining <= margin)
                {
                    _logger.LogWarning("keel: election {Election}: no lease renewal for too long ({Remaining} left); stopping the leader's work", _options.Name, remaining);
                    term.Cancel();
                    return;
                }
                await Task.Delay(remaining - margin, term.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Ends the term when the leader key is deleted behind our back (an operator's resign, a revoked lease).</summary>
    private async Task GuardKeyAsync(ElectionLeadership leadership, CancellationTokenSource term)
    {
        try
        {
            await foreach (var e in _client.WatchAsync(leadership.Key, new WatchOptions { StartRevision = leadership.Revision + 1 }, term.Token).ConfigureAwait(false))
            {
                if (e.Type != WatchEventType.Delete) continue;
                _logger.LogWarning("keel: election {Election}: the leader key was deleted; stopping the leader's work", _options.Name);
                term.Cancel();
                return;
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (KeelClientException e)
        {
            // The renewal guard still bounds the term; this only reacts faster.
            _logger.LogWarning(e, "keel: election {Election}: watching the leader key failed", _options.Name);
        }
    }
}
