using System.Diagnostics;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Client;

public sealed partial class KeelClient
{
    /// <summary>
    /// Grants a lease of <paramref name="ttl"/> (rounded up to whole seconds, at least 1 s) — exactly once, however
    /// often it is retried — and, unless <paramref name="keepAlive"/> is false, keeps it alive until disposed.
    /// </summary>
    public async Task<KeelLease> GrantLeaseAsync(TimeSpan ttl, bool keepAlive = true, CancellationToken cancellationToken = default)
    {
        var seconds = (long)Math.Max(1, Math.Ceiling(ttl.TotalSeconds));
        var request = new LeaseGrantRequest { TTL = seconds };
        var sentAt = Stopwatch.GetTimestamp();
        var (response, trailers) = await CallAsync("LeaseGrant", (invoker, call) => new Lease.LeaseClient(invoker).LeaseGrantAsync(request, call),
            safeToRepeat: Options.IdempotentWrites, NewIdempotencyKey(), cancellationToken).ConfigureAwait(false);
        if (!string.IsNullOrEmpty(response.Error)) throw new KeelClientException($"keel: lease grant refused: {response.Error}");
        return new KeelLease(this, response.ID, TimeSpan.FromSeconds(response.TTL), ParseFencingToken(trailers), sentAt, keepAlive);
    }

    /// <summary>Revokes lease <paramref name="leaseId"/>: its keys are deleted at once. A lease that is already gone is not an error.</summary>
    public async Task RevokeLeaseAsync(long leaseId, CancellationToken cancellationToken = default)
    {
        var request = new LeaseRevokeRequest { ID = leaseId };
        try
        {
            // Revoking twice is harmless (the second answers "lease not found"), so retries are safe.
            await CallAsync("LeaseRevoke", (invoker, call) => new Lease.LeaseClient(invoker).LeaseRevokeAsync(request, call),
                safeToRepeat: true, idempotencyKey: null, cancellationToken).ConfigureAwait(false);
        }
        catch (KeelClientException notFound) when (notFound.StatusCode == Grpc.Core.StatusCode.NotFound)
        {
        }
    }

    /// <summary>The remaining TTL of lease <paramref name="leaseId"/>, or null when it does not exist (expired or revoked).</summary>
    public async Task<TimeSpan?> LeaseTimeToLiveAsync(long leaseId, CancellationToken cancellationToken = default)
    {
        var request = new LeaseTimeToLiveRequest { ID = leaseId };
        var (response, _) = await CallAsync("LeaseTimeToLive", (invoker, call) => new Lease.LeaseClient(invoker).LeaseTimeToLiveAsync(request, call),
            safeToRepeat: true, idempotencyKey: null, cancellationToken).ConfigureAwait(false);
        return response.TTL < 0 ? null : TimeSpan.FromSeconds(response.TTL);
    }
}
