using Grpc.Core;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Server.Hosting;

namespace Keel.Server.Api;

/// <summary>
/// etcd's Watch service (<c>etcdserver/api/v3rpc/watch.go</c>): one bidirectional stream carries many watches. Creates,
/// cancels and progress requests are handed to the <see cref="WatchHub"/> on the node loop; a writer task drains the
/// stream's queue to the client in order, so a watch's created reply always precedes its events.
/// </summary>
internal sealed class WatchApi(NodeHost host, Auth.AuthGate gate) : Watch.WatchBase
{
    /// <summary>
    /// Watches one stream may hold at once; a create past it is refused (created and canceled at once, etcd's answer to
    /// an invalid watch request) so one client cannot make the member track an unbounded number of watchers.
    /// </summary>
    public const int MaxWatchesPerStream = 10_000;

    private bool IsWatchPermitted(ServerCallContext context, WatchCreateRequest create)
    {
        try
        {
            gate.CheckRead(context, create.Key.ToByteArray(), create.RangeEnd.ToByteArray());
            return true;
        }
        catch (RpcException refused) when (refused.StatusCode != StatusCode.Unauthenticated)
        {
            return false;
        }
    }

    public override async Task Watch(IAsyncStreamReader<WatchRequest> requestStream, IServerStreamWriter<WatchResponse> responseStream, ServerCallContext context)
    {
        var stream = new WatchStream();
        // The call ends when the client cancels it or goes away, and also when the connection is closing (a client that
        // half-closed its TCP connection, a server shutdown): ending it then lets the connection close with a FIN.
        using var ending = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken,
            context.GetHttpContext().Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionLifetimeNotificationFeature>()?.ConnectionClosedRequested ?? CancellationToken.None);
        var cancellation = ending.Token;
        var writer = Task.Run(async () =>
        {
            await foreach (var response in stream.Reader.ReadAllAsync(cancellation))
            {
                await responseStream.WriteAsync(response, cancellation);
                stream.OnSent();
            }
        }, cancellation);
        var nextWatchId = 0L;
        var usedIds = new HashSet<long>();
        try
        {
            await foreach (var request in requestStream.ReadAllAsync(cancellation))
            {
                switch (request.RequestUnionCase)
                {
                    case WatchRequest.RequestUnionOneofCase.CreateRequest:
                        var create = request.CreateRequest;
                        long watchId;
                        if (create.WatchId != 0)
                        {
                            watchId = create.WatchId;
                        }
                        else
                        {
                            while (usedIds.Contains(nextWatchId)) nextWatchId++;
                            watchId = nextWatchId++;
                        }
                        if (usedIds.Count >= MaxWatchesPerStream || create.Filters.Any(f => !Enum.IsDefined(f)) ||
                            !usedIds.Add(watchId) || create.StartRevision < 0)
                        {
                            // etcd answers a duplicate id (or a bad revision) with created = false and canceled = true.
                            var header = host.Header(host.Status.Revision);
                            stream.Enqueue(new WatchResponse { Header = header, WatchId = watchId, Created = true, Canceled = true, CancelReason = "etcdserver: invalid watch request" });
                            break;
                        }
                        if (!IsWatchPermitted(context, create))
                        {
                            // etcd's answer to a watch on keys the caller may not read: created and canceled at once.
                            usedIds.Remove(watchId);
                            stream.Enqueue(new WatchResponse
                            {
                                Header = host.Header(host.Status.Revision), WatchId = watchId, Created = true, Canceled = true,
                                CancelReason = "rpc error: code = PermissionDenied desc = etcdserver: permission denied",
                            });
                            break;
                        }
                        var watcher = new Watcher
                        {
                            Stream = stream,
                            WatchId = watchId,
                            Key = create.Key.ToByteArray(),
                            RangeEnd = create.RangeEnd.ToByteArray(),
                            NextRevision = create.StartRevision,
                            PrevKv = create.PrevKv,
                            NoPut = create.Filters.Contains(WatchCreateRequest.Types.FilterType.Noput),
                            NoDelete = create.Filters.Contains(WatchCreateRequest.Types.FilterType.Nodelete),
                            ProgressNotify = create.ProgressNotify,
                        };
                        host.Post(() => host.Watches.Add(watcher));
                        break;
                    case WatchRequest.RequestUnionOneofCase.CancelRequest:
                        var cancelId = request.CancelRequest.WatchId;
                        usedIds.Remove(cancelId);
                        host.Post(() =>
                        {
                            if (host.Watches.Remove(stream, cancelId))
                                stream.Enqueue(new WatchResponse { Header = host.Header(host.Node.Store.CurrentRevision), WatchId = cancelId, Canceled = true });
                        });
                        break;
                    case WatchRequest.RequestUnionOneofCase.ProgressRequest:
                        host.Post(() => host.Watches.RequestProgress(stream));
                        break;
                }
            }
            // The client closed its side: etcd keeps sending until the call ends.
            await Task.Delay(Timeout.Infinite, cancellation);
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException)
        {
        }
        finally
        {
            try
            {
                host.Post(() => host.Watches.RemoveAll(stream));
            }
            catch (ObjectDisposedException)
            {
            }
            stream.Complete();
            try
            {
                await writer;
            }
            catch (Exception exception) when (exception is OperationCanceledException or IOException or InvalidOperationException)
            {
            }
        }
    }
}
