using Keel.Client;
using Medallion.Threading;

namespace Keel.AspNetCore.Locks;

/// <summary>Settings of <see cref="KeelDistributedLockProvider"/>.</summary>
public sealed class KeelDistributedLockOptions
{
    /// <summary>Prepended to every lock name to form its Keel key (default <c>locks/</c>).</summary>
    public string KeyPrefix { get; set; } = "locks/";

    /// <summary>
    /// TTL of the lease each held lock lives on (default 10 s), kept alive by the client: if the holder's process dies
    /// the lock is free again within this time; if the holder is cut off, <c>HandleLostToken</c> fires by then.
    /// </summary>
    public TimeSpan LeaseTtl { get; set; } = KeelClient.DefaultSessionTtl;
}

/// <summary>
/// <see cref="IDistributedLockProvider"/> (madelson's DistributedLock.Core abstractions) over Keel's lock service, so
/// code written against <c>IDistributedLockProvider</c> works unchanged on Keel and gains a fencing token.
/// </summary>
public sealed class KeelDistributedLockProvider(KeelClient client, KeelDistributedLockOptions? options = null) : IDistributedLockProvider
{
    private readonly KeelDistributedLockOptions _options = options ?? new KeelDistributedLockOptions();

    /// <summary>The lock named <paramref name="name"/> (its key is the prefix followed by the name).</summary>
    public KeelDistributedLock CreateLock(string name) => new(client, name, _options);

    IDistributedLock IDistributedLockProvider.CreateLock(string name) => CreateLock(name);
}

/// <summary>
/// One named distributed lock on Keel: <see cref="IDistributedLock"/> whose handles are
/// <see cref="KeelDistributedLockHandle"/>s carrying the fencing token. A wait for the lock holds a contender key on
/// its own lease and is served in arrival order by the server (etcd's v3lock semantics).
/// </summary>
public sealed class KeelDistributedLock : IDistributedLock
{
    private readonly KeelClient _client;
    private readonly KeelDistributedLockOptions _options;

    internal KeelDistributedLock(KeelClient client, string name, KeelDistributedLockOptions options)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (options.LeaseTtl < TimeSpan.FromSeconds(1)) throw new ArgumentException($"KeelDistributedLockOptions.LeaseTtl: {options.LeaseTtl} is under 1 s", nameof(options));
        _client = client;
        _options = options;
        Name = name;
        Key = options.KeyPrefix + name;
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>The Keel key of the lock; holders and waiters create keys under <c>{Key}/</c>.</summary>
    public string Key { get; }

    /// <summary>
    /// Tries to take the lock within <paramref name="timeout"/>; null when it is held by someone else all that time.
    /// With a zero timeout it answers null at once when a holder is visible, and otherwise makes one attempt bounded by
    /// the client's command timeout (the lock can be taken by a racing contender in between).
    /// </summary>
    public async ValueTask<KeelDistributedLockHandle?> TryAcquireAsync(TimeSpan timeout = default, CancellationToken cancellationToken = default)
    {
        if (timeout < TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan) throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "must be zero or more, or infinite");
        if (timeout == TimeSpan.Zero)
        {
            var holders = await _client.GetPrefixAsync(Key + "/", new ReadOptions { KeysOnly = true, Limit = 1 }, cancellationToken).ConfigureAwait(false);
            if (holders.Count > 0) return null;
            timeout = _client.Options.CommandTimeout;
        }
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeout != Timeout.InfiniteTimeSpan) bound.CancelAfter(timeout);
        try
        {
            var held = await _client.LockAsync(Key, _options.LeaseTtl, bound.Token).ConfigureAwait(false);
            return new KeelDistributedLockHandle(held);
        }
        catch (OperationCanceledException) when (bound.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>Takes the lock, waiting at most <paramref name="timeout"/> (null: as long as it takes).</summary>
    /// <exception cref="TimeoutException">The lock stayed held by someone else for the whole timeout.</exception>
    public async ValueTask<KeelDistributedLockHandle> AcquireAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        await TryAcquireAsync(timeout ?? Timeout.InfiniteTimeSpan, cancellationToken).ConfigureAwait(false)
        ?? throw new TimeoutException($"keel: lock '{Name}' was not acquired within {timeout}");

    /// <inheritdoc cref="TryAcquireAsync" />
    public KeelDistributedLockHandle? TryAcquire(TimeSpan timeout = default, CancellationToken cancellationToken = default) =>
        TryAcquireAsync(timeout, cancellationToken).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc cref="AcquireAsync" />
    public KeelDistributedLockHandle Acquire(TimeSpan? timeout = null, CancellationToken cancellationToken = default) =>
        AcquireAsync(timeout, cancellationToken).AsTask().GetAwaiter().GetResult();

    IDistributedSynchronizationHandle? IDistributedLock.TryAcquire(TimeSpan timeout, CancellationToken cancellationToken) => TryAcquire(timeout, cancellationToken);

    IDistributedSynchronizationHandle IDistributedLock.Acquire(TimeSpan? timeout, CancellationToken cancellationToken) => Acquire(timeout, cancellationToken);

    async ValueTask<IDistributedSynchronizationHandle?> IDistributedLock.TryAcquireAsync(TimeSpan timeout, CancellationToken cancellationToken) =>
        await TryAcquireAsync(timeout, cancellationToken).ConfigureAwait(false);

    async ValueTask<IDistributedSynchronizationHandle> IDistributedLock.AcquireAsync(TimeSpan? timeout, CancellationToken cancellationToken) =>
        await AcquireAsync(timeout, cancellationToken).ConfigureAwait(false);
}

/// <summary>
/// A held Keel lock. <see cref="FencingToken"/> only increases from one holder to the next: pass it to the resource
/// you protect (or fence a Keel write with <c>TxnCompare.CreateRevision(handle.Key, CompareOp.Equal, handle.FencingToken)</c>)
/// so a holder that paused past its lease cannot overwrite its successor's work. <see cref="HandleLostToken"/> is
/// cancelled when the lock's lease is lost. Disposing releases the lock.
/// </summary>
public sealed class KeelDistributedLockHandle : IDistributedSynchronizationHandle
{
    private readonly KeelLock _held;

    internal KeelDistributedLockHandle(KeelLock held) => _held = held;

    /// <summary>The fencing token: the creation revision of <see cref="Key"/>.</summary>
    public long FencingToken => _held.FencingToken;

    /// <summary>The key that holds the lock.</summary>
    public string Key => _held.Key;

    /// <summary>The id of the lease the lock lives on.</summary>
    public long LeaseId => _held.Lease.Id;

    /// <summary>Cancelled when the lock's lease is lost (the lock may already be someone else's); never by disposing.</summary>
    public CancellationToken HandleLostToken => _held.Lost;

    /// <summary>Releases the lock.</summary>
    public ValueTask DisposeAsync() => _held.DisposeAsync();

    /// <summary>Releases the lock (blocking).</summary>
    public void Dispose() => _held.DisposeAsync().AsTask().GetAwaiter().GetResult();
}
