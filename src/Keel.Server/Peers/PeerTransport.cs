using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Keel.Raft;
using Microsoft.Extensions.Logging;

namespace Keel.Server.Peers;

/// <summary>
/// Carries Raft messages between Keel nodes over plain TCP: one outbound connection per peer, each a stream of
/// length-prefixed frames (<c>u32 length | <see cref="RaftMessageCodec"/> bytes</c>) after a hello frame naming the
/// cluster and the sender. Why not gRPC or HTTP as etcd's rafthttp: Raft already tolerates loss, duplication and
/// reordering, so the transport needs no request/response pairing, retries or per-message headers; one framed TCP
/// stream per peer gives ordered batches with one syscall per flush and no HTTP/2 flow-control windows between the
/// leader and a follower (docs/server.md has the measurements and the trade-offs).
/// </summary>
/// <remarks>
/// Sending never blocks the node loop: a message goes into the peer's bounded queue, and when the queue is full or
/// the peer is unreachable it is dropped, exactly what Raft expects from an unreliable network (it retries by
/// heartbeats and probes). A frame from another cluster, a malformed frame, or one addressed to another member closes
/// the connection; nothing malformed reaches Raft.
/// </remarks>
public sealed class PeerTransport : IAsyncDisposable
{
    /// <summary>The largest frame accepted (a snapshot chunk or an append batch is far smaller).</summary>
    public const int MaxFrameBytes = 64 * 1024 * 1024;

    private const uint HelloMagic = 0x4B45454C; // "KEEL"
    private const byte HelloVersion = 1;
    private const int QueueCapacity = 16_384;

    private readonly ulong _selfId;
    private ulong _clusterId;
    private readonly IReadOnlyList<Uri> _listenUrls;
    private readonly Action<Message> _onMessage;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<ulong, PeerConnection> _peers = new();
    private readonly List<TcpListener> _listeners = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _tasks = [];
    private long _framesReceived;
    private long _framesRejected;

    /// <summary>Creates a transport; <see cref="Start"/> begins listening.</summary>
    /// <param name="selfId">This member's id; frames addressed to anyone else are refused.</param>
    /// <param name="clusterId">Frames from another cluster are refused; 0 for a member that joins an existing cluster
    /// and learns the id from the first peer that connects (<see cref="ClusterIdLearned"/>).</param>
    /// <param name="listenUrls">Where to accept peers.</param>
    /// <param name="onMessage">Called (from I/O threads) with each decoded message for this member.</param>
    /// <param name="logger">Connection problems are logged here.</param>
    public PeerTransport(ulong selfId, ulong clusterId, IReadOnlyList<Uri> listenUrls, Action<Message> onMessage, ILogger logger)
    {
        _selfId = selfId;
        _clusterId = clusterId;
        _listenUrls = listenUrls;
        _onMessage = onMessage;
        _logger = logger;
    }

    /// <summary>The cluster id this transport checks and sends (0 until a joining member learned it).</summary>
    public ulong ClusterId => Interlocked.Read(ref _clusterId);

    /// <summary>Raised once, from an I/O thread, when a joining member learns its cluster's id from a peer's hello.</summary>
    public event Action<ulong>? ClusterIdLearned;

    /// <summary>Frames accepted from peers so far.</summary>
    public long FramesReceived => Interlocked.Read(ref _framesReceived);

    /// <summary>Connections closed for a bad hello or frame.</summary>
    public long FramesRejected => Interlocked.Read(ref _framesRejected);

    /// <summary>Binds every listen URL and starts accepting peers.</summary>
    /// <exception cref="SocketException">A listen address is in use or not local.</exception>
    public void Start()
    {
        foreach (var url in _listenUrls)
        {
            var listener = new TcpListener(ResolveListenAddress(url), url.Port);
            listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            listener.Start(backlog: 64);
            _listeners.Add(listener);
            _tasks.Add(Task.Run(() => AcceptLoop(listener)));
        }
    }

    /// <summary>Sets (or replaces) where peer <paramref name="id"/> is reached.</summary>
    public void SetPeer(ulong id, IReadOnlyList<Uri> urls)
    {
        if (id == _selfId || urls.Count == 0) return;
        var existing = _peers.GetOrAdd(id, _ => new PeerConnection(this, id, urls));
        existing.Urls = urls;
    }

    /// <summary>Forgets a removed peer and closes its connection.</summary>
    public void RemovePeer(ulong id)
    {
        if (_peers.TryRemove(id, out var peer)) peer.Close();
    }

    /// <summary>Queues <paramref name="message"/> for its recipient; drops it if the recipient is unknown or backed up.</summary>
    public void Send(Message message)
    {
        if (_peers.TryGetValue(message.To, out var peer)) peer.Enqueue(message);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        foreach (var listener in _listeners) listener.Stop();
        foreach (var peer in _peers.Values) peer.Close();
        try
        {
            await Task.WhenAll(_tasks.Concat(_peers.Values.Select(p => p.Completion))).WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception exception) when (exception is OperationCanceledException or TimeoutException or SocketException or IOException or ObjectDisposedException)
        {
            // Shutting down: connections ending with errors is expected.
        }
        _stopping.Dispose();
    }

    internal static IPAddress ResolveListenAddress(Uri url)
    {
        if (IPAddress.TryParse(url.Host.Trim('[', ']'), out var address)) return address;
        if (string.Equals(url.Host, "localhost", StringComparison.OrdinalIgnoreCase)) return IPAddress.Loopback;
        var addresses = Dns.GetHostAddresses(url.Host);
        return addresses.Length > 0 ? addresses[0] : throw new ArgumentException($"cannot resolve listen host '{url.Host}'");
    }

    private async Task AcceptLoop(TcpListener listener)
    {
        while (!_stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync(_stopping.Token);
            }
            catch (Exception exception) when (exception is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            socket.NoDelay = true;
            _ = Task.Run(() => ReceiveLoop(socket));
        }
    }

    private async Task ReceiveLoop(Socket socket)
    {
        using var _ = socket;
        await using var stream = new BufferedStream(new NetworkStream(socket, ownsSocket: false), 64 * 1024);
        var header = new byte[4];
        byte[] buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            var hello = new byte[4 + 1 + 8 + 8];
            await stream.ReadExactlyAsync(hello, _stopping.Token);
            var magic = BinaryPrimitives.ReadUInt32LittleEndian(hello);
            var version = hello[4];
            var clusterId = BinaryPrimitives.ReadUInt64LittleEndian(hello.AsSpan(5));
            var from = BinaryPrimitives.ReadUInt64LittleEndian(hello.AsSpan(13));
            var ours = ClusterId;
            if (ours == 0 && clusterId != 0 && Interlocked.CompareExchange(ref _clusterId, clusterId, 0) == 0)
            {
                // A member joining an existing cluster does not know the cluster's id from its flags: it takes it from
                // the first member that connects to it (the leader, once the member was added), as etcd's joining
                // member takes it from the cluster it contacts.
                ours = clusterId;
                ClusterIdLearned?.Invoke(clusterId);
            }
            // A joining member (0) may connect before it knows the id; everyone else must match.
            if (magic != HelloMagic || version != HelloVersion || (clusterId != ours && clusterId != 0))
            {
                Interlocked.Increment(ref _framesRejected);
                _logger.LogWarning("peer connection from {Remote} refused: hello magic {Magic:x8} version {Version} cluster {Cluster:x16} (ours {Ours:x16})",
                    socket.RemoteEndPoint, magic, version, clusterId, ours);
                return;
            }
            while (!_stopping.IsCancellationRequested)
            {
                await stream.ReadExactlyAsync(header, _stopping.Token);
                var length = BinaryPrimitives.ReadInt32LittleEndian(header);
                if (length <= 0 || length > MaxFrameBytes)
                {
                    Interlocked.Increment(ref _framesRejected);
                    _logger.LogWarning("peer {From:x16}: frame length {Length} out of range; closing", from, length);
                    return;
                }
                if (buffer.Length < length)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = ArrayPool<byte>.Shared.Rent(length);
                }
                await stream.ReadExactlyAsync(buffer.AsMemory(0, length), _stopping.Token);
                Message message;
                try
                {
                    message = RaftMessageCodec.Decode(buffer.AsSpan(0, length));
                }
                catch (FormatException exception)
                {
                    Interlocked.Increment(ref _framesRejected);
                    _logger.LogWarning("peer {From:x16}: malformed frame ({Error}); closing", from, exception.Message);
                    return;
                }
                if (message.To != _selfId || message.From != from)
                {
                    Interlocked.Increment(ref _framesRejected);
                    _logger.LogWarning("peer {From:x16}: frame {Message} not for this member {Self:x16}; closing", from, message, _selfId);
                    return;
                }
                Interlocked.Increment(ref _framesReceived);
                _onMessage(message);
            }
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException or SocketException or EndOfStreamException or ObjectDisposedException)
        {
            // The peer went away or we are stopping; it reconnects on its own.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private sealed class PeerConnection
    {
        private readonly PeerTransport _owner;
        private readonly ulong _id;
        private readonly Channel<Message> _queue = Channel.CreateBounded<Message>(new BoundedChannelOptions(QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.DropWrite,
        });
        private readonly CancellationTokenSource _closed = new();

        public PeerConnection(PeerTransport owner, ulong id, IReadOnlyList<Uri> urls)
        {
            _owner = owner;
            _id = id;
            Urls = urls;
            Completion = Task.Run(SendLoop);
        }

        public IReadOnlyList<Uri> Urls { get; set; }

        public Task Completion { get; }

        public void Enqueue(Message message) => _queue.Writer.TryWrite(message);

        public void Close()
        {
            _queue.Writer.TryComplete();
            try
            {
                _closed.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        private async Task SendLoop()
        {
            var token = CancellationTokenSource.CreateLinkedTokenSource(_closed.Token, _owner._stopping.Token).Token;
            var attempt = 0;
            var buffer = new byte[64 * 1024];
            while (!token.IsCancellationRequested)
            {
                var url = Urls[attempt % Urls.Count];
                try
                {
                    using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(token))
                    {
                        connectTimeout.CancelAfter(TimeSpan.FromSeconds(1));
                        await socket.ConnectAsync(ResolveListenAddress(url), url.Port, connectTimeout.Token);
                    }
                    attempt = 0;
                    await using var stream = new NetworkStream(socket, ownsSocket: false);
                    var hello = new byte[4 + 1 + 8 + 8];
                    BinaryPrimitives.WriteUInt32LittleEndian(hello, HelloMagic);
                    hello[4] = HelloVersion;
                    BinaryPrimitives.WriteUInt64LittleEndian(hello.AsSpan(5), _owner.ClusterId);
                    BinaryPrimitives.WriteUInt64LittleEndian(hello.AsSpan(13), _owner._selfId);
                    await stream.WriteAsync(hello, token);
                    var used = 0;
                    while (await _queue.Reader.WaitToReadAsync(token))
                    {
                        // Batch every queued message into one write: one syscall per burst, as etcd's pipeline does.
                        while (_queue.Reader.TryRead(out var message))
                        {
                            var size = RaftMessageCodec.EncodedSize(message);
                            if (used + 4 + size > buffer.Length && used > 0)
                            {
                                await stream.WriteAsync(buffer.AsMemory(0, used), token);
                                used = 0;
                            }
                            if (4 + size > buffer.Length) buffer = new byte[4 + size];
                            BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(used), size);
                            RaftMessageCodec.Encode(message, buffer.AsSpan(used + 4, size));
                            used += 4 + size;
                        }
                        if (used > 0)
                        {
                            await stream.WriteAsync(buffer.AsMemory(0, used), token);
                            used = 0;
                        }
                    }
                    return;
                }
                catch (Exception exception) when (exception is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
                {
                    if (token.IsCancellationRequested) return;
                    attempt++;
                    // While the peer is down its messages are stale by the time it returns: drop them (Raft resends).
                    while (_queue.Reader.TryRead(out _))
                    {
                    }
                    try
                    {
                        await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(50 * attempt, 500)), token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                }
            }
        }
    }
}
