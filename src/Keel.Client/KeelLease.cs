using System.Diagnostics;
using Grpc.Core;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Client;

/// <summary>
/// A lease: keys attached to it are deleted when it expires. With keep-alive on (the default of
/// <see cref="KeelClient.GrantLeaseAsync"/>), the client renews it every third of its TTL, on whichever member answers.
/// When it is lost — the server says it expired or was revoked, or no renewal got through within one TTL of the last
/// good one, measured from when that renewal was sent — <see cref="Lost"/> is cancelled and <see cref="LeaseLost"/>
/// raised, once. Work that is only safe while the lease lives (a lock, a leadership) should watch <see cref="Lost"/>.
/// Disposing stops the renewals and revokes the lease.
/// </summary>
public sealed class KeelLease : IAsyncDisposable
{
    private readonly KeelClient _client;
    private readonly CancellationTokenSource _lost = new();
    private readonly CancellationTokenSource _stop;
    private readonly Task _keepAlive;
    private int _lostOnce;

    internal KeelLease(KeelClient client, long id, TimeSpan ttl, long fencingToken, long grantSentAt, bool keepAlive)
    {
        _client = client;
        Id = id;
        Ttl = ttl;
        FencingToken = fencingToken;
        ValidUntil = grantSentAt + Ticks(ttl);
        _stop = CancellationTokenSource.CreateLinkedTokenSource(client.DisposedToken);
        _keepAlive = keepAlive ? Task.Run(KeepAliveLoopAsync) : Task.CompletedTask;
    }

    /// <summary>The lease id to attach keys to (<c>PutAsync(key, value, lease.Id)</c>).</summary>
    public long Id { get; }

    /// <summary>The TTL the server granted.</summary>
    public TimeSpan Ttl { get; }

    /// <summary>Keel's fencing token for the grant (only increases across the cluster's history); 0 from etcd.</summary>
    public long FencingToken { get; }

    /// <summary>Cancelled when the lease is lost (see the class summary); never cancelled by <see cref="DisposeAsync"/> or <see cref="RevokeAsync"/>.</summary>
    public CancellationToken Lost => _lost.Token;

    /// <summary>Why the lease was lost, once it was.</summary>
    public string? LostReason { get; private set; }

    /// <summary>Raised once, on a pool thread, when the lease is lost; the argument is the reason.</summary>
    public event EventHandler<string>? LeaseLost;

    /// <summary>When the last successful renewal (or the grant) guarantees the lease lives until, by the local monotonic clock.</summary>
    internal long ValidUntil { get; private set; }

    /// <summary>
    /// How much longer the last successful renewal (or the grant) guarantees the lease lives, by the local monotonic
    /// clock and measured from when that renewal was sent; zero once that moment has passed. While renewals get
    /// through it stays above two thirds of the TTL; work that must stop before the lease can expire on the server
    /// (a leader's job) stops when it falls below its safety margin.
    /// </summary>
    public TimeSpan GuaranteedRemaining =>
        TimeSpan.FromSeconds(Math.Max(0, (ValidUntil - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency));

    /// <summary>Stops the keep-alive and revokes the lease (its keys are deleted at once).</summary>
    public async Task RevokeAsync(CancellationToken cancellationToken = default)
    {
        await StopKeepAliveAsync().ConfigureAwait(false);
        await _client.RevokeLeaseAsync(Id, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops the keep-alive and revokes the lease; a failure to revoke is swallowed (the lease then expires after its TTL).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_client.DisposedToken.IsCancellationRequested)
        {
            await StopKeepAliveAsync().ConfigureAwait(false);
            return;
        }
        try
        {
            using var bound = new CancellationTokenSource(_client.Options.CommandTimeout);
            await RevokeAsync(bound.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KeelClientException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private async Task StopKeepAliveAsync()
    {
        if (!_stop.IsCancellationRequested) _stop.Cancel();
        try
        {
            await _keepAlive.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        catch (RpcException cancelled) when (cancelled.StatusCode == StatusCode.Cancelled)
        {
        }
    }

    private async Task KeepAliveLoopAsync()
    {
        var token = _stop.Token;
        var interval = Ttl / 3;
        while (!token.IsCancellationRequested)
        {
            var wait = TimeSpan.FromSeconds(Math.Max(0, (ValidUntil - Ticks(Ttl - interval) - Stopwatch.GetTimestamp()) / (double)Stopwatch.Frequency));
            await Task.Delay(wait, token).ConfigureAwait(false);
            // Renew until one gets through or the lease can no longer be alive.
            for (var attempt = 1; !token.IsCancellationRequested; attempt++)
            {
                var remaining = ValidUntil - Stopwatch.GetTimestamp();
                if (remaining <= 0)
                {
                    Lose($"no renewal got through within the {Ttl.TotalSeconds:0} s TTL");
                    return;
                }
                var sentAt = Stopwatch.GetTimestamp();
                var member = _client.Members.Pick();
                var deadline = TimeSpan.FromSeconds(Math.Min(remaining / (double)Stopwatch.Frequency, _client.Options.CommandTimeout.TotalSeconds));
                long ttlSeconds;
                try
                {
                    ttlSeconds = await KeepAliveOnceAsync(member, deadline, token).ConfigureAwait(false);
                }
                catch (RpcException) when (!token.IsCancellationRequested)
                {
                    _client.Members.Failed(member);
                    await Task.Delay(KeelClient.Backoff(attempt), token).ConfigureAwait(false);
                    continue;
                }
                _client.Members.Succeeded(member);
                if (ttlSeconds <= 0)
                {
                    Lose("the server reports the lease expired or revoked");
                    return;
                }
                ValidUntil = sentAt + Ticks(TimeSpan.FromSeconds(ttlSeconds));
                break;
            }
        }
    }

    private async Task<long> KeepAliveOnceAsync(int member, TimeSpan deadline, CancellationToken token)
    {
        using var call = new Lease.LeaseClient(_client.Members.Invoker(member))
            .LeaseKeepAlive(new CallOptions(deadline: DateTime.UtcNow + deadline, cancellationToken: token));
        try
        {
            await call.RequestStream.WriteAsync(new LeaseKeepAliveRequest { ID = Id }, token).ConfigureAwait(false);
            if (!await call.ResponseStream.MoveNext(token).ConfigureAwait(false))
                throw new RpcException(new Status(StatusCode.Unavailable, "keep-alive stream ended without an answer"));
            await call.RequestStream.CompleteAsync().ConfigureAwait(false);
            return call.ResponseStream.Current.TTL;
        }
        catch (InvalidOperationException closed)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, closed.Message));
        }
    }

    private void Lose(string reason)
    {
        if (Interlocked.Exchange(ref _lostOnce, 1) != 0) return;
        LostReason = reason;
        _lost.Cancel();
        LeaseLost?.Invoke(this, reason);
    }

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);
}
