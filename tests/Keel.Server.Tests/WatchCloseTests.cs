using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Server.Tests;

/// <summary>
/// A watch whose client goes away — half-closing the call and then cancelling it (a disposed dotnet-etcd watch),
/// or half-closing the TCP connection (a client process that ends) — is closed cleanly: no warning or error in the
/// member's log, no watcher left in the <c>WatchHub</c>, and the connection ends with a FIN, not a reset.
/// </summary>
public class WatchCloseTests
{
    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static async Task<WatchResponse> Next(AsyncDuplexStreamingCall<WatchRequest, WatchResponse> call)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Assert.True(await call.ResponseStream.MoveNext(timeout.Token), "the watch stream ended");
        return call.ResponseStream.Current;
    }

    private static Task<int> Watchers(LoopbackCluster cluster) => cluster.Servers[0]!.Host.InvokeAsync(_ => cluster.Servers[0]!.Host.Watches.Count);

    private static async Task WaitForWatchers(LoopbackCluster cluster, int expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        int count;
        while ((count = await Watchers(cluster)) != expected)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{count} watchers, expected {expected}");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task A_half_closed_watch_keeps_its_events_until_the_client_cancels_then_closes_cleanly()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1);
        var kv = new KV.KVClient(cluster.Channel(0));
        using (var call = new Watch.WatchClient(cluster.Channel(0)).Watch())
        {
            await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("hc") } });
            Assert.True((await Next(call)).Created);
            await WaitForWatchers(cluster, 1);
            // Half-close: etcd keeps serving the watches of a stream whose client stopped sending.
            await call.RequestStream.CompleteAsync();
            var revision = (await kv.PutAsync(new PutRequest { Key = B("hc"), Value = B("1") })).Header.Revision;
            Assert.Equal(revision, Assert.Single((await Next(call)).Events).Kv.ModRevision);
            Assert.Equal(1, await Watchers(cluster));
        }
        // Disposing the call resets the stream (CANCEL), as disposing a dotnet-etcd watch does.
        await WaitForWatchers(cluster, 0);
        await kv.PutAsync(new PutRequest { Key = B("hc"), Value = B("2") });
        // Only the start-up notice that loopback test peers are not authenticated (no peer TLS or secret) is expected.
        Assert.DoesNotContain(cluster.Warnings, w => !w.Contains("peers are not authenticated", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_client_that_half_closes_its_connection_gets_a_FIN_not_a_reset_and_leaves_no_watcher()
    {
        await using var cluster = await LoopbackCluster.StartAsync(1);
        Socket? socket = null;
        var observed = new ObservedStream.Outcome();
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellation) =>
            {
                socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(context.DnsEndPoint, cancellation);
                return new ObservedStream(new NetworkStream(socket, ownsSocket: true), observed);
            },
        };
        using var channel = GrpcChannel.ForAddress(cluster.Options[0].ListenClientUrls[0], new GrpcChannelOptions { HttpHandler = handler });
        using var call = new Watch.WatchClient(channel).Watch();
        await call.RequestStream.WriteAsync(new WatchRequest { CreateRequest = new WatchCreateRequest { Key = B("fin") } });
        Assert.True((await Next(call)).Created);
        await WaitForWatchers(cluster, 1);

        // The client process ends its side of the TCP connection (shutdown(SHUT_WR)) and keeps reading.
        socket!.Shutdown(SocketShutdown.Send);
        await WaitForWatchers(cluster, 0);
        await Assert.ThrowsAnyAsync<Exception>(() => Next(call));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!observed.Ended)
        {
            Assert.True(DateTime.UtcNow < deadline, "the server did not close the connection");
            await Task.Delay(20);
        }
        Assert.True(observed.Reset is null, $"the server reset the connection: {observed.Reset}");
        Assert.DoesNotContain(cluster.Warnings, w => !w.Contains("peers are not authenticated", StringComparison.Ordinal));
    }

    /// <summary>A stream that records how the server ended the connection: end of stream (FIN) or a reset.</summary>
    private sealed class ObservedStream(Stream inner, ObservedStream.Outcome outcome) : Stream
    {
        public sealed class Outcome
        {
            public volatile bool Ended;
            public volatile Exception? Reset;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                var read = await inner.ReadAsync(buffer, cancellationToken);
                if (read == 0 && buffer.Length > 0) outcome.Ended = true;
                return read;
            }
            catch (IOException error) when (error.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
            {
                outcome.Reset = error;
                outcome.Ended = true;
                throw;
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.WriteAsync(buffer, offset, count, cancellationToken);

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        protected override void Dispose(bool disposing)
        {
            // The client drops a connection that got GOAWAY and has no calls left, possibly before reading its end.
            outcome.Ended = true;
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
