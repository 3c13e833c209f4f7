using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using Keel.Protocol;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Protocol.V1;

namespace Keel.Client;

/// <summary>
/// A typed async client for a Keel cluster (and, without Keel's extensions, for etcd v3). One instance is meant to be
/// shared by the whole process: it keeps one connection per member, spreads calls over the members round-robin, and
/// moves on from a member that is down, has no leader or times out, within <see cref="KeelClientOptions.RetryLimit"/>
/// retries. Writes are exactly-once by default: each Put, Delete, Txn and lease grant carries an idempotency key the
/// client generates once and reuses on every retry, so the server applies it once however often it is sent.
/// </summary>
public sealed partial class KeelClient : IAsyncDisposable
{
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(1);
    private readonly Endpoints _endpoints;
    private readonly CancellationTokenSource _disposed = new();
    private long _retries;
    private long _ambiguousRetries;
    private long _reconnects;

    /// <summary>Creates a client; nothing is dialled until the first call.</summary>
    /// <exception cref="ArgumentException">The options are invalid (the message lists every problem).</exception>
    public KeelClient(KeelClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var problems = KeelClientOptionsValidator.Problems(options).ToList();
        if (problems.Count > 0) throw new ArgumentException(string.Join("; ", problems), nameof(options));
        Options = options;
        _endpoints = new Endpoints(options);
    }

    /// <summary>Creates a client for the given member URLs with default timeouts.</summary>
    public KeelClient(params string[] endpoints) : this(new KeelClientOptions { Endpoints = endpoints }) { }

    /// <summary>Attempts retried (on another member) since the client was created, for metrics.</summary>
    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>
    /// Retried writes whose failed attempt may have been applied (timed out, or the connection broke after sending):
    /// without the idempotency key each of these could have applied twice; with it, none does.
    /// </summary>
    public long AmbiguousRetries => Interlocked.Read(ref _ambiguousRetries);

    /// <summary>Times a watch or an election observer reconnected to another member after its stream broke, for metrics.</summary>
    public long Reconnects => Interlocked.Read(ref _reconnects);

    internal void CountReconnect() => Interlocked.Increment(ref _reconnects);

    /// <summary>The options the client runs with.</summary>
    public KeelClientOptions Options { get; }

    // ---- KV -------------------------------------------------------------------------------------------------------

    /// <summary>The value of <paramref name="key"/>, or null when it does not exist (at the revision or time asked for).</summary>
    public async Task<KeyValue?> GetAsync(string key, ReadOptions? options = null, CancellationToken cancellationToken = default)
    {
        var result = await RangeAsync(Keys.Of(key), ByteString.Empty, options ?? new ReadOptions(), cancellationToken).ConfigureAwait(false);
        return result.Kvs.Count == 0 ? null : result.Kvs[0];
    }

    /// <summary>Every key that starts with <paramref name="prefix"/>, in key order.</summary>
    public Task<RangeResult> GetPrefixAsync(string prefix, ReadOptions? options = null, CancellationToken cancellationToken = default) =>
        RangeAsync(Keys.Of(prefix), Keys.PrefixEnd(prefix), options ?? new ReadOptions(), cancellationToken);

    /// <summary>Every key in [<paramref name="fromKey"/>, <paramref name="toKeyExclusive"/>), in key order.</summary>
    public Task<RangeResult> GetRangeAsync(string fromKey, string toKeyExclusive, ReadOptions? options = null, CancellationToken cancellationToken = default) =>
        RangeAsync(Keys.Of(fromKey), Keys.Of(toKeyExclusive), options ?? new ReadOptions(), cancellationToken);

    private async Task<RangeResult> RangeAsync(ByteString key, ByteString rangeEnd, ReadOptions options, CancellationToken cancellationToken)
    {
        if (options.AsOf is { } asOf)
        {
            if (options.Revision != 0) throw new ArgumentException("ReadOptions: give Revision or AsOf, not both", nameof(options));
            var request = new ReadAtRequest
            {
                Key = key, RangeEnd = rangeEnd, AtUnixMs = asOf.ToUnixTimeMilliseconds(), Limit = options.Limit,
                KeysOnly = options.KeysOnly, Serializable = options.Serializable,
            };
            var (at, _) = await CallAsync("ReadAt", (invoker, call) => new KeelService.KeelServiceClient(invoker).ReadAtAsync(request, call),
                safeToRepeat: true, idempotencyKey: null, cancellationToken).ConfigureAwait(false);
            return new RangeResult(at.Kvs.Select(KeyValue.From).ToArray(), at.ResolvedRevision, at.More, at.Count);
        }
        var range = new RangeRequest
        {
            Key = key, RangeEnd = rangeEnd, Revision = options.Revision, Limit = options.Limit,
            KeysOnly = options.KeysOnly, Serializable = options.Serializable,
        };
        var (response, _) = await CallAsync("Range", (invoker, call) => new KV.KVClient(invoker).RangeAsync(range, call),
            safeToRepeat: true, idempotencyKey: null, cancellationToken).ConfigureAwait(false);
        return new RangeResult(response.Kvs.Select(KeyValue.From).ToArray(), response.Header.Revision, response.More, response.Count);
    }

    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/> (UTF-8), optionally attached to a lease.</summary>
    public Task<PutResult> PutAsync(string key, string value, long leaseId = 0, CancellationToken cancellationToken = default) =>
        PutAsync(key, System.Text.Encoding.UTF8.GetBytes(value), leaseId, cancellationToken);

    /// <summary>Sets <paramref name="key"/> to <paramref name="value"/>, optionally attached to a lease; exactly once, however often it is retried.</summary>
    public async Task<PutResult> PutAsync(string key, ReadOnlyMemory<byte> value, long leaseId = 0, CancellationToken cancellationToken = default)
    {
        var request = new PutRequest { Key = Keys.Of(key), Value = ByteString.CopyFrom(value.Span), Lease = leaseId, PrevKv = true };
        var (response, _) = await CallAsync("Put", (invoker, call) => new KV.KVClient(invoker).PutAsync(request, call),
            safeToRepeat: Options.IdempotentWrites, NewIdempotencyKey(), cancellationToken).ConfigureAwait(false);
        return new PutResult(response.Header.Revision, KeyValue.FromOrNull(response.PrevKv));
    }

    /// <summary>Deletes <paramref name="key"/>; exactly once.</summary>
    public Task<DeleteResult> DeleteAsync(string key, CancellationToken cancellationToken = default) =>
        DeleteRangeAsync(Keys.Of(key), ByteString.Empty, cancellationToken);

    /// <summary>Deletes every key that starts with <paramref name="prefix"/>; exactly once.</summary>
    public Task<DeleteResult> DeletePrefixAsync(string prefix, CancellationToken cancellationToken = default) =>
        DeleteRangeAsync(Keys.Of(prefix), Keys.PrefixEnd(prefix), cancellationToken);

    private async Task<DeleteResult> DeleteRangeAsync(ByteString key, ByteString rangeEnd, CancellationToken cancellationToken)
    {
        var request = new DeleteRangeRequest { Key = key, RangeEnd = rangeEnd, PrevKv = true };
        var (response, _) = await CallAsync("DeleteRange", (invoker, call) => new KV.KVClient(invoker).DeleteRangeAsync(request, call),
            safeToRepeat: Options.IdempotentWrites, NewIdempotencyKey(), cancellationToken).ConfigureAwait(false);
        return new DeleteResult(response.Header.Revision, response.Deleted, response.PrevKvs.Select(KeyValue.From).ToArray());
    }

    /// <summary>Starts a transaction: <c>client.Txn().If(...).Then(...).Else(...).CommitAsync()</c>.</summary>
    public TxnBuilder Txn() => new(this);

    internal async Task<TxnResult> CommitAsync(TxnRequest request, CancellationToken cancellationToken)
    {
        var (response, _) = await CallAsync("Txn", (invoker, call) => new KV.KVClient(invoker).TxnAsync(request, call),
            safeToRepeat: Options.IdempotentWrites, NewIdempotencyKey(), cancellationToken).ConfigureAwait(false);
        return TxnResult.From(response);
    }

    // ---- keel.v1: time ----------------------------------------------------------------------------------------------

    /// <summary>The revision that was current at <paramref name="at"/> (0 before the first write). Keel only.</summary>
    public async Task<long> RevisionAtAsync(DateTimeOffset at, CancellationToken cancellationToken = default)
    {
        var request = new RevisionAtRequest { AtUnixMs = at.ToUnixTimeMilliseconds() };
        var (response, _) = await CallAsync("RevisionAt", (invoker, call) => new KeelService.KeelServiceClient(invoker).RevisionAtAsync(request, call),
            safeToRepeat: true, idempotencyKey: null, cancellationToken).ConfigureAwait(false);
        return response.Revision;
    }

    // ---- keel.v1: membership -----------------------------------------------------------------------------------------

    /// <summary>
    /// Every member the answering server knows, servers and gossip agents, with its gossip state and phi-accrual health
    /// as that server sees them (<c>keel.v1.Members</c>). Keel only.
    /// </summary>
    public async Task<IReadOnlyList<ClusterMember>> MembersAsync(CancellationToken cancellationToken = default)
    {
        var request = new MembersRequest();
        var (response, _) = await CallAsync("Members", (invoker, call) => new KeelService.KeelServiceClient(invoker).MembersAsync(request, call),
            safeToRepeat: true, idempotencyKey: null, cancellationToken).ConfigureAwait(false);
        return response.Members.Select(m => new ClusterMember(m.Id, m.Name, m.Role, m.IsRaftMember, m.IsLeader, m.GossipAddress, m.GossipState,
            m.Health, m.Zone, m.Phi)).ToArray();
    }

    /// <summary>
    /// The change feed: every change under <paramref name="prefix"/> committed in [<paramref name="from"/>,
    /// <paramref name="to"/>) wall-clock time, with each revision's time, paged through to the end. Keel only.
    /// </summary>
    public async IAsyncEnumerable<TimedChange> ChangesBetweenAsync(string prefix, DateTimeOffset from, DateTimeOffset to,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var request = new ChangesBetweenRequest
        {
            Key = Keys.Of(prefix), RangeEnd = Keys.PrefixEnd(prefix), FromUnixMs = from.ToUnixTimeMilliseconds(),
            ToUnixMs = to.ToUnixTimeMilliseconds(), PrevKv = true, Limit = 1000,
        };
        var afterRevision = 0L;
        while (true)
        {
            var current = request;
            var (response, _) = await CallAsync("ChangesBetween", (invoker, call) => new KeelService.KeelServiceClient(invoker).ChangesBetweenAsync(current, call),
                safeToRepeat: true, idempotencyKey: null, cancellationToken).ConfigureAwait(false);
            var delivered = 0;
            var lastWallMs = request.FromUnixMs;
            foreach (var timed in response.Events)
            {
                // A page starts at the millisecond the previous one ended in: changes already delivered are skipped.
                if (timed.Event.Kv.ModRevision <= afterRevision) continue;
                afterRevision = timed.Event.Kv.ModRevision;
                lastWallMs = timed.Timestamp.WallTimeUnixMs;
                delivered++;
                yield return new TimedChange(WatchEvent.From(timed.Event), DateTimeOffset.FromUnixTimeMilliseconds(lastWallMs));
            }
            if (!response.More) yield break;
            if (delivered == 0)
                throw new KeelClientException($"keel: more than {request.Limit} changes share the millisecond {request.FromUnixMs}; the change feed cannot page past them");
            request = request.Clone();
            request.FromUnixMs = lastWallMs;
        }
    }

    // ---- the call loop ----------------------------------------------------------------------------------------------

    /// <summary>A fresh idempotency key for one logical write (reused by all its retries), or null when turned off.</summary>
    private string? NewIdempotencyKey() => Options.IdempotentWrites ? "kc-" + Guid.NewGuid().ToString("N") : null;

    /// <summary>
    /// Runs one unary call with failover: each attempt goes to the next member in turn with its own deadline; a failure
    /// that another member may not have (down, no leader, overloaded, timed out) is retried there when
    /// <paramref name="safeToRepeat"/> (or when the server certainly did not act), up to the retry limit, with a growing
    /// pause. Every attempt of one call carries the same <paramref name="idempotencyKey"/>.
    /// </summary>
    internal async Task<(T Response, Metadata Trailers)> CallAsync<T>(string operation, Func<CallInvoker, CallOptions, AsyncUnaryCall<T>> start,
        bool safeToRepeat, string? idempotencyKey, CancellationToken cancellationToken, bool blocking = false)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        Metadata? headers = idempotencyKey is null ? null : new Metadata { { KeelMetadata.IdempotencyKey, idempotencyKey } };
        for (var attempt = 1; ; attempt++)
        {
            var member = _endpoints.Pick();
            DateTime? deadline = blocking ? null : DateTime.UtcNow + Options.CommandTimeout;
            try
            {
                using var call = start(_endpoints.Invoker(member), new CallOptions(headers, deadline, cancellationToken));
                var response = await call.ResponseAsync.ConfigureAwait(false);
                _endpoints.Succeeded(member);
                return (response, call.GetTrailers());
            }
            catch (RpcException failure) when (!cancellationToken.IsCancellationRequested)
            {
                var retry = Failures.Classify(failure, safeToRepeat);
                if (retry == Retry.Never || attempt > Options.RetryLimit)
                    throw new KeelClientException(operation, failure, _endpoints.Url(member), attempt);
                if (failure.Status.Detail == Failures.InvalidAuthToken) _endpoints.InvalidateToken(member);
                else _endpoints.Failed(member);
                Interlocked.Increment(ref _retries);
                if (idempotencyKey is not null && !Failures.CertainlyNotApplied(failure)) Interlocked.Increment(ref _ambiguousRetries);
                await Task.Delay(Backoff(attempt), cancellationToken).ConfigureAwait(false);
            }
            catch (RpcException cancelled) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException($"keel: {operation} cancelled", cancelled, cancellationToken);
            }
        }
    }

    /// <summary>Pause before retry number <paramref name="attempt"/>: 50 ms doubling to at most 1 s, jittered so clients do not retry in step.</summary>
    internal static TimeSpan Backoff(int attempt)
    {
        var ceiling = Math.Min(MaxBackoff.TotalMilliseconds, 50 * Math.Pow(2, Math.Min(attempt - 1, 10)));
        return TimeSpan.FromMilliseconds(ceiling * (0.5 + Random.Shared.NextDouble() / 2));
    }

    internal static long ParseFencingToken(Metadata trailers) =>
        trailers.GetValue(KeelMetadata.FencingToken) is { } text && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var token) ? token : 0;

    internal Endpoints Members => _endpoints;

    internal CancellationToken DisposedToken => _disposed.Token;

    /// <summary>Stops lease keep-alives and watches started by this client and closes every connection.</summary>
    public ValueTask DisposeAsync()
    {
        if (_disposed.IsCancellationRequested) return ValueTask.CompletedTask;
        _disposed.Cancel();
        _endpoints.Dispose();
        return ValueTask.CompletedTask;
    }
}
