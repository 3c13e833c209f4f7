using System.Runtime.CompilerServices;
using Grpc.Core;
using Keel.Protocol.Etcd.Etcdserverpb;
using Proto = Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Client;

public sealed partial class KeelClient
{
    /// <summary>
    /// The changes to <paramref name="key"/> (or under it, with <see cref="WatchOptions.Prefix"/>) as they commit, in
    /// revision order. When the member serving the watch goes away, the watch reconnects to the next member and
    /// resumes from the revision after the last event it delivered, so no change is missed or repeated; it gives up after
    /// <see cref="KeelClientOptions.RetryLimit"/> failed reconnects in a row, and throws
    /// <see cref="KeelWatchCompactedException"/> if the history it needs was compacted meanwhile. Ends when
    /// <paramref name="cancellationToken"/> is cancelled (with <see cref="OperationCanceledException"/>).
    /// </summary>
    public async IAsyncEnumerable<WatchEvent> WatchAsync(string key, WatchOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        options ??= new WatchOptions();
        var nextRevision = options.StartRevision;
        var failuresInARow = 0;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _disposed.Token);
        var token = linked.Token;
        while (true)
        {
            var member = _endpoints.Pick();
            // etcd's require-leader metadata: a member cut off from its leader ends the watch instead of going quiet.
            using var call = new Proto.Watch.WatchClient(_endpoints.Invoker(member))
                .Watch(new CallOptions(new Metadata { { "hasleader", "true" } }, cancellationToken: token));
            var create = new WatchCreateRequest
            {
                Key = Keys.Of(key), RangeEnd = options.Prefix ? Keys.PrefixEnd(key) : Google.Protobuf.ByteString.Empty,
                StartRevision = nextRevision, PrevKv = options.PrevKv,
            };
            var failure = await SendAsync(call, new WatchRequest { CreateRequest = create }, token).ConfigureAwait(false);
            while (failure is null)
            {
                var (response, readFailure) = await NextAsync(call.ResponseStream, token).ConfigureAwait(false);
                if (response is null)
                {
                    failure = readFailure ?? new RpcException(new Status(StatusCode.Unavailable, "watch stream ended"));
                    break;
                }
                if (response.CompactRevision != 0) throw new KeelWatchCompactedException(response.CompactRevision, nextRevision);
                if (response.Canceled)
                {
                    // A member that lost its leader cancels require-leader watches: resume elsewhere.
                    failure = new RpcException(new Status(StatusCode.Unavailable, $"watch cancelled: {response.CancelReason}"));
                    if (!response.CancelReason.Contains("leader", StringComparison.Ordinal))
                        throw new KeelClientException("Watch", failure, _endpoints.Url(member), failuresInARow + 1);
                    break;
                }
                if (response.Created)
                {
                    failuresInARow = 0;
                    _endpoints.Succeeded(member);
                    // "From now" becomes a concrete revision, so a resume neither misses nor repeats anything.
                    if (nextRevision == 0) nextRevision = response.Header.Revision + 1;
                }
                foreach (var e in response.Events)
                {
                    nextRevision = e.Kv.ModRevision + 1;
                    yield return WatchEvent.From(e);
                }
            }
            token.ThrowIfCancellationRequested();
            failuresInARow++;
            if (failuresInARow > Options.RetryLimit) throw new KeelClientException("Watch", failure!, _endpoints.Url(member), failuresInARow);
            _endpoints.Failed(member);
            CountReconnect();
            await Task.Delay(Backoff(failuresInARow), token).ConfigureAwait(false);
        }
    }

    private static async Task<RpcException?> SendAsync(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call, WatchRequest request, CancellationToken token)
    {
        try
        {
            await call.RequestStream.WriteAsync(request, token).ConfigureAwait(false);
            return null;
        }
        catch (RpcException failure) when (!token.IsCancellationRequested)
        {
            return failure;
        }
        catch (RpcException cancelled) when (token.IsCancellationRequested)
        {
            throw new OperationCanceledException("keel: watch cancelled", cancelled, token);
        }
        catch (InvalidOperationException closed) when (!token.IsCancellationRequested)
        {
            // The call already ended (the member went away before the request was written).
            return new RpcException(new Status(StatusCode.Unavailable, closed.Message));
        }
    }

    private static async Task<(T? Response, RpcException? Failure)> NextAsync<T>(IAsyncStreamReader<T> stream, CancellationToken token) where T : class
    {
        try
        {
            return await stream.MoveNext(token).ConfigureAwait(false) ? (stream.Current, null) : (null, null);
        }
        catch (RpcException failure) when (!token.IsCancellationRequested)
        {
            return (null, failure);
        }
        catch (RpcException) when (token.IsCancellationRequested)
        {
            throw new OperationCanceledException(token);
        }
    }
}
