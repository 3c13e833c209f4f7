using Google.Protobuf;
using Grpc.Core;
using Keel.Protocol.Etcd.V3Electionpb;
using Keel.Protocol.Etcd.V3Lockpb;
using LockService = Keel.Protocol.Etcd.V3Lockpb.Lock;

namespace Keel.Client;

public sealed partial class KeelClient
{
    /// <summary>Default TTL of the lease a lock or a campaign takes when the caller gives none: 10 s.</summary>
    public static readonly TimeSpan DefaultSessionTtl = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Acquires the distributed lock <paramref name="name"/> (etcd's v3lock service), waiting as long as it is held by
    /// someone else. The lock lives on a lease of its own (<paramref name="ttl"/>, default 10 s) kept alive by this
    /// client; if this process dies the lock is freed within the TTL. Dispose the result to release it.
    /// </summary>
    public async Task<KeelLock> LockAsync(string name, TimeSpan? ttl = null, CancellationToken cancellationToken = default)
    {
        var lease = await GrantLeaseAsync(ttl ?? DefaultSessionTtl, keepAlive: true, cancellationToken).ConfigureAwait(false);
        try
        {
            return await LockAsync(name, lease, ownsLease: true, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await lease.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Acquires the lock <paramref name="name"/> on a lease the caller owns (releasing the lock leaves the lease alone).</summary>
    public Task<KeelLock> LockAsync(string name, KeelLease lease, CancellationToken cancellationToken = default) =>
        LockAsync(name, lease, ownsLease: false, cancellationToken);

    private async Task<KeelLock> LockAsync(string name, KeelLease lease, bool ownsLease, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lease.Lost);
        var request = new LockRequest { Name = Keys.Of(name), Lease = lease.Id };
        // The contender key is derived from the name and the lease, so a retry on another member waits on the same key.
        var (response, trailers) = await CallAsync("Lock", (invoker, call) => new LockService.LockClient(invoker).LockAsync(request, call),
            safeToRepeat: true, idempotencyKey: null, linked.Token, blocking: true).ConfigureAwait(false);
        var token = ParseFencingToken(trailers);
        if (token == 0)
        {
            // Servers without Keel's trailer (etcd): the token is the lock key's creation revision, read back.
            var kv = await GetAsync(response.Key.ToStringUtf8(), cancellationToken: cancellationToken).ConfigureAwait(false);
            token = kv?.CreateRevision ?? throw new KeelClientException($"keel: lock key {response.Key.ToStringUtf8()} vanished right after it was acquired (its lease expired?)");
        }
        return new KeelLock(this, name, response.Key, token, lease, ownsLease);
    }

    internal async Task UnlockAsync(ByteString key, CancellationToken cancellationToken)
    {
        var request = new UnlockRequest { Key = key };
        await CallAsync("Unlock", (invoker, call) => new LockService.LockClient(invoker).UnlockAsync(request, call),
            safeToRepeat: true, idempotencyKey: null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The election <paramref name="name"/>: campaign for it, observe its leader.</summary>
    public KeelElection Election(string name) => new(this, name);
}

/// <summary>
/// A held distributed lock. <see cref="FencingToken"/> is the creation revision of the lock's key (Keel sends it in the
/// <c>keel-fencing-token</c> trailer; on etcd it is read back): it only increases from one holder to the next, so a
/// resource that remembers the highest token it has seen can refuse a paused former holder, and a Keel write can be
/// fenced with <c>TxnCompare.CreateRevision(lock.Key, CompareOp.Equal, lock.FencingToken)</c>.
/// </summary>
public sealed class KeelLock : IAsyncDisposable
{
    private readonly KeelClient _client;
    private readonly ByteString _key;
    private readonly bool _ownsLease;
    private int _released;

    internal KeelLock(KeelClient client, string name, ByteString key, long fencingToken, KeelLease lease, bool ownsLease)
    {
        _client = client;
        Name = name;
        _key = key;
        FencingToken = fencingToken;
        Lease = lease;
        _ownsLease = ownsLease;
    }

    /// <summary>The lock's name.</summary>
    public string Name { get; }

    /// <summary>The key that holds the lock (the name, a slash and the lease id in hex).</summary>
    public string Key => _key.ToStringUtf8();

    /// <summary>The fencing token: the creation revision of <see cref="Key"/>.</summary>
    public long FencingToken { get; }

    /// <summary>The lease the lock lives on.</summary>
    public KeelLease Lease { get; }

    /// <summary>Cancelled when the lease is lost, i.e. the lock may already be someone else's.</summary>
    public CancellationToken Lost => Lease.Lost;

    /// <summary>Releases the lock (and revokes its lease when the lock took its own).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        if (_ownsLease)
        {
            // Revoking the lease deletes the key: one call frees the lock.
            await Lease.DisposeAsync().ConfigureAwait(false);
            return;
        }
        try
        {
            using var bound = new CancellationTokenSource(_client.Options.CommandTimeout);
            await _client.UnlockAsync(_key, bound.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KeelClientException or OperationCanceledException or ObjectDisposedException)
        {
            // The lease's expiry frees the lock in the end.
        }
    }
}

/// <summary>An election (etcd's v3election service): campaign to lead it, read or observe who leads.</summary>
public sealed class KeelElection
{
    private readonly KeelClient _client;

    internal KeelElection(KeelClient client, string name)
    {
        _client = client;
        Name = name;
    }

    /// <summary>The election's name.</summary>
    public string Name { get; }

    /// <summary>
    /// Waits until this caller leads the election, announcing <paramref name="value"/>. Leadership lives on a lease of
    /// its own (<paramref name="ttl"/>, default 10 s) kept alive by this client; dispose the result to resign.
    /// </summary>
    public async Task<ElectionLeadership> CampaignAsync(string value, TimeSpan? ttl = null, CancellationToken cancellationToken = default)
    {
        var lease = await _client.GrantLeaseAsync(ttl ?? KeelClient.DefaultSessionTtl, keepAlive: true, cancellationToken).ConfigureAwait(false);
        try
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, lease.Lost);
            var request = new CampaignRequest { Name = Keys.Of(Name), Lease = lease.Id, Value = ByteString.CopyFromUtf8(value) };
            // The candidate key is derived from the name and the lease: a retry elsewhere campaigns with the same key.
            var (response, _) = await _client.CallAsync("Campaign", (invoker, call) => new Election.ElectionClient(invoker).CampaignAsync(request, call),
                safeToRepeat: true, idempotencyKey: null, linked.Token, blocking: true).ConfigureAwait(false);
            return new ElectionLeadership(_client, response.Leader, lease);
        }
        catch
        {
            await lease.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The current leader's key and value, or null when nobody leads.</summary>
    public async Task<KeyValue?> GetLeaderAsync(CancellationToken cancellationToken = default)
    {
        var request = new LeaderRequest { Name = Keys.Of(Name) };
        try
        {
            var (response, _) = await _client.CallAsync("Leader", (invoker, call) => new Election.ElectionClient(invoker).LeaderAsync(request, call),
                safeToRepeat: true, idempotencyKey: null, cancellationToken).ConfigureAwait(false);
            return KeyValue.FromOrNull(response.Kv);
        }
        catch (KeelClientException none) when (none.Detail.Contains("no leader", StringComparison.Ordinal) && none.Detail.StartsWith("election", StringComparison.Ordinal))
        {
            return null;
        }
    }

    /// <summary>
    /// Each leader in turn (key and value; a proclamation shows as a new value of the same key), starting with the
    /// current one. Reconnects to the next member when its member goes away, skipping what it already delivered.
    /// </summary>
    public async IAsyncEnumerable<KeyValue> ObserveAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var request = new LeaderRequest { Name = Keys.Of(Name) };
        // What was delivered last: a reconnect skips that same leader state (same key, same mod revision) and any state
        // read at an older revision (a lagging member). Not "mod revision only": the next leader's key was created when
        // it began to campaign, often before the previous leader's last proclamation, so its mod revision is lower.
        ByteString? lastKey = null;
        var lastModRevision = 0L;
        var lastRevision = 0L;
        var failuresInARow = 0;
        while (true)
        {
            var member = _client.Members.Pick();
            using var call = new Election.ElectionClient(_client.Members.Invoker(member)).Observe(request, cancellationToken: cancellationToken);
            RpcException? failure = null;
            while (true)
            {
                LeaderResponse current;
                try
                {
                    if (!await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false)) break;
                    current = call.ResponseStream.Current;
                }
                catch (RpcException e) when (!cancellationToken.IsCancellationRequested)
                {
                    failure = e;
                    break;
                }
                catch (RpcException cancelled)
                {
                    throw new OperationCanceledException("keel: observe cancelled", cancelled, cancellationToken);
                }
                failuresInARow = 0;
                if (current.Kv is null) continue;
                var revision = current.Header?.Revision ?? 0;
                if (revision < lastRevision || (current.Kv.ModRevision == lastModRevision && current.Kv.Key.Equals(lastKey))) continue;
                (lastKey, lastModRevision, lastRevision) = (current.Kv.Key, current.Kv.ModRevision, revision);
                yield return KeyValue.From(current.Kv);
            }
            cancellationToken.ThrowIfCancellationRequested();
            failure ??= new RpcException(new Status(StatusCode.Unavailable, "observe stream ended"));
            failuresInARow++;
            if (failuresInARow > _client.Options.RetryLimit) throw new KeelClientException("Observe", failure, _client.Members.Url(member), failuresInARow);
            _client.Members.Failed(member);
            _client.CountReconnect();
            await Task.Delay(KeelClient.Backoff(failuresInARow), cancellationToken).ConfigureAwait(false);
        }
    }
}

/// <summary>
/// Leadership of an election, won by <see cref="KeelElection.CampaignAsync"/>. <see cref="Revision"/> — the creation
/// revision of the leader's key — is its fencing token: it only increases from one leader to the next.
/// </summary>
public sealed class ElectionLeadership : IAsyncDisposable
{
    private readonly KeelClient _client;
    private readonly LeaderKey _leader;
    private int _resigned;

    internal ElectionLeadership(KeelClient client, LeaderKey leader, KeelLease lease)
    {
        _client = client;
        _leader = leader;
        Lease = lease;
    }

    /// <summary>The election's name.</summary>
    public string Name => _leader.Name.ToStringUtf8();

    /// <summary>The leader's key.</summary>
    public string Key => _leader.Key.ToStringUtf8();

    /// <summary>The creation revision of the leader's key: the fencing token of this leadership.</summary>
    public long Revision => _leader.Rev;

    /// <summary>The lease the leadership lives on.</summary>
    public KeelLease Lease { get; }

    /// <summary>Cancelled when the lease is lost: stop leading at once.</summary>
    public CancellationToken Lost => Lease.Lost;

    /// <summary>Announces a new value as leader; fails ("election: not leader") if this leadership is already over.</summary>
    public async Task ProclaimAsync(string value, CancellationToken cancellationToken = default)
    {
        var request = new ProclaimRequest { Leader = _leader, Value = ByteString.CopyFromUtf8(value) };
        await _client.CallAsync("Proclaim", (invoker, call) => new Election.ElectionClient(invoker).ProclaimAsync(request, call),
            safeToRepeat: true, idempotencyKey: null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Gives up leadership so the next candidate takes over, and revokes the leadership's lease.</summary>
    public async Task ResignAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _resigned, 1) != 0) return;
        var request = new ResignRequest { Leader = _leader };
        await _client.CallAsync("Resign", (invoker, call) => new Election.ElectionClient(invoker).ResignAsync(request, call),
            safeToRepeat: true, idempotencyKey: null, cancellationToken).ConfigureAwait(false);
        await Lease.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Resigns (bounded by the command timeout); if that fails, the lease's revocation or expiry ends the leadership.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            using var bound = new CancellationTokenSource(_client.Options.CommandTimeout);
            await ResignAsync(bound.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KeelClientException or OperationCanceledException or ObjectDisposedException)
        {
            await Lease.DisposeAsync().ConfigureAwait(false);
        }
    }
}
