using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.ComponentModel;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Threading.Channels;
using Keel.Raft;
using Keel.Server.Security;
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
/// the connection; a well-framed message that fails <see cref="MessageValidator"/> is dropped and counted; nothing
/// malformed reaches Raft.
/// <para>
/// Liveness (why: a connection stuck in TCP retransmission backoff after a partition heals only at the next
/// retransmission, seconds later, while etcd's rafthttp replaces it within about a second): the sender pings every
/// <see cref="PeerTransportOptions.PingIntervalMs"/> (a frame of length 0 carrying its timestamp) and the receiver
/// answers each with an 8-byte pong on the same socket. No pong for <see cref="PeerTransportOptions.LivenessTimeoutMs"/>,
/// or a write that does not complete within <see cref="PeerTransportOptions.WriteTimeoutMs"/>, closes the connection,
/// and the sender reconnects at once with a short, capped backoff and a short connect timeout, so the first SYN after
/// a heal goes out within a few hundred milliseconds. The pongs also measure the round-trip time per peer.
/// </para>
/// <para>
/// Authentication (<see cref="PeerSecurity"/>, docs/security.md): on an <c>https</c> peer URL the connection is TLS
/// (<see cref="SslStream"/>) before the first byte of the hello, and with <c>--peer-client-cert-auth</c> the dialer
/// must present a certificate signed by the peer CA (and with the allowed CN); otherwise the handshake fails and not a
/// single frame is read. After the hello the listener sends a random challenge and the dialer answers with an HMAC of
/// it under the cluster secret (<c>--peer-secret-file</c>); a listener that has a secret closes a connection whose
/// answer is wrong. Every refusal is counted by reason (<see cref="ConnectionsRefusedByReason"/>) and logged.
/// </para>
/// <para>
/// What the listener writes back, besides pongs (each an <c>i64</c>; a pong is a positive timestamp, so a dialer of an
/// older build skips the others): a removal notice (<c>i64 long.MinValue | u64 index</c>) to a member the cluster
/// removed (<see cref="SetRemovedMembers"/>), after which it closes; and answers (<c>i64 long.MinValue+1 | u32 length |
/// frame</c>) to a member this one has no address for, over the connection that member opened
/// (<see cref="AnswersOverInboundConnections"/>), so a joiner can answer a leader its member table does not list yet.
/// </para>
/// </remarks>
public sealed class PeerTransport : IAsyncDisposable
{
    /// <summary>The largest frame accepted (a snapshot chunk or an append batch is far smaller).</summary>
    public const int MaxFrameBytes = 64 * 1024 * 1024;

    /// <summary>Bytes of the hello that opens every connection: <c>u32 magic | u8 version | u64 cluster | u64 from</c>.</summary>
    public const int HelloBytes = 4 + 1 + 8 + 8;

    private const uint HelloMagic = 0x4B45454C; // "KEEL"
    // 2: frames of length 0 are pings, and the receiver writes pongs back (version 1 receivers refuse length 0).
    // 3: after the hello the receiver sends a challenge and the sender answers with its proof of the cluster secret.
    private const byte HelloVersion = 3;
    private const int QueueCapacity = 16_384;
    private const int PingBytes = 4 + 8;
    private const int PongBytes = 8;
    // Written in place of a pong to a member the cluster removed, followed by the index of the removing entry: a pong is
    // a positive timestamp, so a dialer of an older build ignores it as not an echo of its own.
    private const long RemovedNoticeMarker = long.MinValue;
    // How long a listener that told a removed member so keeps reading until that member closes (see TellRemoved).
    private const int RemovedNoticeLingerMs = 1_000;
    // Written in place of a pong before a Raft message answered over the connection that brought the question
    // (`i64 AnswerMarker | u32 length | RaftMessageCodec bytes`), to a member this one has no address for.
    private const long AnswerMarker = long.MinValue + 1;
    private const int InboundAnswerQueueCapacity = 4_096;
    private const int InitialBufferBytes = 64 * 1024;
    // A buffer grown for one large frame or burst is given back afterwards: a snapshot transfer must not pin its
    // largest chunk per peer for the life of the process.
    private const int ShrinkAboveBytes = 1024 * 1024;

    private readonly ulong _selfId;
    private ulong _clusterId;
    private readonly IReadOnlyList<Uri> _listenUrls;
    private readonly Action<Message> _onMessage;
    private readonly ILogger _logger;
    private readonly PeerTransportOptions _options;
    private readonly PeerSecurity _security;
    private readonly ConcurrentDictionary<string, long> _refusals = new(StringComparer.Ordinal);
    private long _refusalsLogged;
    private readonly ConcurrentDictionary<ulong, PeerConnection> _peers = new();
    private volatile FrozenDictionary<ulong, ulong> _removedMembers = FrozenDictionary<ulong, ulong>.Empty;
    // The newest accepted connection from each member: where an answer goes to a member this one has no address for.
    private readonly ConcurrentDictionary<ulong, InboundConnection> _inbound = new();
    private long _answersOverInbound;
    private long _removalNoticesSent;
    private readonly ConcurrentDictionary<string, long> _rejections = new(StringComparer.Ordinal);
    private readonly List<TcpListener> _listeners = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _tasks = [];
    private long _framesReceived;
    private long _framesRejected;
    private long _messagesInvalid;

    /// <summary>Creates a transport; <see cref="Start"/> begins listening.</summary>
    /// <param name="selfId">This member's id; frames addressed to anyone else are refused.</param>
    /// <param name="clusterId">Frames from another cluster are refused; 0 for a member that joins an existing cluster
    /// and learns the id from the first peer that connects (<see cref="ClusterIdLearned"/>).</param>
    /// <param name="listenUrls">Where to accept peers.</param>
    /// <param name="onMessage">Called (from I/O threads) with each decoded, validated message for this member.</param>
    /// <param name="logger">Connection problems are logged here.</param>
    /// <param name="options">Timeouts; the defaults suit a 100 ms heartbeat.</param>
    /// <param name="security">Peer TLS and the cluster secret; null for neither (any process reaching the port can talk Raft).</param>
    public PeerTransport(ulong selfId, ulong clusterId, IReadOnlyList<Uri> listenUrls, Action<Message> onMessage, ILogger logger,
        PeerTransportOptions? options = null, PeerSecurity? security = null)
    {
        _security = security ?? PeerSecurity.None;
        foreach (var url in listenUrls)
        {
            if (url.Scheme == Uri.UriSchemeHttps && _security.Tls is null)
                throw new ArgumentException($"--listen-peer-urls {url} is https but no --peer-cert-file/--peer-key-file or --peer-auto-tls is given");
        }
        _selfId = selfId;
        _clusterId = clusterId;
        _listenUrls = listenUrls;
        _onMessage = onMessage;
        _logger = logger;
        _options = options ?? new PeerTransportOptions();
    }

    /// <summary>The cluster id this transport checks and sends (0 until a joining member learned it).</summary>
    public ulong ClusterId => Interlocked.Read(ref _clusterId);

    /// <summary>Raised once, from an I/O thread, when a joining member learns its cluster's id from a peer's hello.</summary>
    public event Action<ulong>? ClusterIdLearned;

    /// <summary>
    /// Raised (from an I/O thread) when a peer answered this member's connection with a removal notice: its replicated
    /// state says this member was removed by the entry at the given index (etcd's rafthttp answers a removed member
    /// the same way). Arguments: the peer, the index. The node decides whether the removal is of this incarnation.
    /// </summary>
    public event Action<ulong, ulong>? RemovedByPeer;

    /// <summary>Removal notices written to removed members that connected or sent a frame.</summary>
    public long RemovalNoticesSent => Interlocked.Read(ref _removalNoticesSent);

    /// <summary>
    /// The members to answer with a removal notice, by id, with the index of the entry that removed each (from
    /// <c>KeelNode.RemovedMembersToNotify</c>); replaces the previous set. A connection from one of them, or a frame on a
    /// connection already open, gets the notice and is closed; nothing it sends reaches Raft.
    /// </summary>
    public void SetRemovedMembers(IReadOnlyDictionary<ulong, ulong> removed)
    {
        ArgumentNullException.ThrowIfNull(removed);
        var current = _removedMembers;
        if (current.Count == removed.Count && removed.All(pair => current.TryGetValue(pair.Key, out var index) && index == pair.Value)) return;
        _removedMembers = removed.ToFrozenDictionary();
    }

    /// <summary>Frames accepted from peers so far (pings not counted).</summary>
    public long FramesReceived => Interlocked.Read(ref _framesReceived);

    /// <summary>Connections closed for a bad hello or frame, or a handshake or idle timeout.</summary>
    public long FramesRejected => Interlocked.Read(ref _framesRejected);

    /// <summary>Connections closed per reason (<c>hello</c>, <c>handshake-timeout</c>, <c>idle-timeout</c>, <c>frame-length</c>, <c>malformed</c>, <c>misaddressed</c>).</summary>
    public IReadOnlyDictionary<string, long> FramesRejectedByReason => new Dictionary<string, long>(_rejections, StringComparer.Ordinal);

    /// <summary>
    /// Peer connections refused before any Raft message was read, per reason: <c>tls-handshake</c> (plaintext on a TLS
    /// port, no common protocol or cipher), <c>no-certificate</c>, <c>untrusted-certificate</c>, <c>cn-not-allowed</c>,
    /// <c>secret</c> (wrong or missing proof of the cluster secret), <c>removed-member</c> (a member the cluster removed,
    /// told so; counted also when its connection was already open).
    /// </summary>
    public IReadOnlyDictionary<string, long> ConnectionsRefusedByReason => new Dictionary<string, long>(_refusals, StringComparer.Ordinal);

    /// <summary>Well-framed messages dropped because <see cref="MessageValidator"/> refused them.</summary>
    public long MessagesDroppedInvalid => Interlocked.Read(ref _messagesInvalid);

    /// <summary>Outbound connections re-established after one was lost, over all peers.</summary>
    public long Reconnects => _peers.Values.Sum(p => p.Reconnects);

    /// <summary>The last round-trip time measured to <paramref name="peerId"/> by ping and pong; null before the first pong.</summary>
    public TimeSpan? RoundTripTime(ulong peerId) => _peers.TryGetValue(peerId, out var peer) ? peer.RoundTripTime : null;

    /// <summary>A snapshot of every peer's connection statistics (for metrics).</summary>
    public IReadOnlyList<PeerStats> PeerStatistics() =>
        _peers.Values.Select(p => new PeerStats(p.Id, p.Connected, p.RoundTripTime, p.Reconnects, p.MessagesDropped)).ToArray();

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
            var tls = url.Scheme == Uri.UriSchemeHttps;
            _tasks.Add(Task.Run(() => AcceptLoop(listener, tls)));
        }
    }

    /// <summary>Sets (or replaces) where peer <paramref name="id"/> is reached.</summary>
    public void SetPeer(ulong id, IReadOnlyList<Uri> urls)
    {
        if (id == _selfId || urls.Count == 0) return;
        var existing = _peers.GetOrAdd(id, _ => new PeerConnection(this, id, urls));
        existing.Urls = urls;
    }

    /// <summary>The peers this transport sends to.</summary>
    public IReadOnlyList<ulong> PeerIds => _peers.Keys.ToArray();

    /// <summary>
    /// Forgets a removed peer. Its connection first sends what is already queued for it (for a removed member, the
    /// commit of its own removal, which is how it learns to stop), then closes; at most <see cref="RemovedPeerDrainMs"/>
    /// later it closes regardless.
    /// </summary>
    public void RemovePeer(ulong id)
    {
        if (!_peers.TryRemove(id, out var peer)) return;
        peer.Close(RemovedPeerDrainMs);
        _ = peer.Completion.ContinueWith(_ => _logger.LogInformation("removed peer {Peer:x16}: connection closed", id),
            CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
    }

    /// <summary>How long a removed peer's connection may take to send what was queued for it before it closes.</summary>
    public const int RemovedPeerDrainMs = 2_000;

    /// <summary>Queues <paramref name="message"/> for its recipient; drops it if the recipient is unknown or backed up.</summary>
    public void Send(Message message)
    {
        if (_peers.TryGetValue(message.To, out var peer)) peer.Enqueue(message);
        // No address for it (a leader added after the snapshot a joiner or a lagging member restored, so not in its
        // member table yet): answer over the connection it opened to us, as long as that is open.
        else if (_inbound.TryGetValue(message.To, out var inbound) && inbound.TryEnqueue(message)) Interlocked.Increment(ref _answersOverInbound);
    }

    /// <summary>Messages sent over a connection the recipient opened, because this member had no address for it.</summary>
    public long AnswersOverInboundConnections => Interlocked.Read(ref _answersOverInbound);

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
        if (TryLiteralAddress(url.Host, out var address)) return address;
        // A name with no address yet (a StatefulSet pod not yet published) fails like an unknown host: the dial loop
        // retries it with backoff.
        var addresses = Dns.GetHostAddresses(url.Host);
        return addresses.Length > 0 ? addresses[0] : throw new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.HostNotFound);
    }

    /// <summary>An IP literal (brackets allowed) or "localhost": an address without a DNS lookup.</summary>
    internal static bool TryLiteralAddress(string host, out IPAddress address)
    {
        if (IPAddress.TryParse(host.Trim('[', ']'), out address!)) return true;
        address = IPAddress.Loopback;
        return string.Equals(host, "localhost", StringComparison.OrdinalIgnoreCase);
    }

    // Defence in depth under the ping/pong liveness check: the kernel gives up on a connection whose sent data stays
    // unacknowledged (TCP_USER_TIMEOUT) or whose peer stops answering keepalive probes.
    private void ConfigureSocket(Socket socket)
    {
        socket.NoDelay = true;
        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, 1);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 1);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, 3);
            if (OperatingSystem.IsLinux())
            {
                const SocketOptionName TcpUserTimeout = (SocketOptionName)18;
                socket.SetSocketOption(SocketOptionLevel.Tcp, TcpUserTimeout, Math.Max(_options.WriteTimeoutMs, _options.LivenessTimeoutMs) * 2);
            }
        }
        catch (Exception exception) when (exception is SocketException or PlatformNotSupportedException)
        {
            // Not every platform has every option; the application-level checks still apply.
        }
    }

    private void Reject(string reason)
    {
        Interlocked.Increment(ref _framesRejected);
        _rejections.AddOrUpdate(reason, 1, static (_, count) => count + 1);
    }

    private void Refuse(string reason, string detail, EndPoint? remote)
    {
        _refusals.AddOrUpdate(reason, 1, static (_, count) => count + 1);
        // Logged, but not without bound: a process hammering the port must not fill the disk with warnings.
        var logged = Interlocked.Increment(ref _refusalsLogged);
        if (logged <= 20 || (logged & (logged - 1)) == 0)
            _logger.LogWarning("peer connection from {Remote} refused ({Reason}): {Detail} ({Count} refused so far)", remote, reason, detail, logged);
    }

    private async Task AcceptLoop(TcpListener listener, bool tls)
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
            ConfigureSocket(socket);
            _ = Task.Run(() => ReceiveLoop(socket, tls));
        }
    }

    private async Task ReceiveLoop(Socket socket, bool tls)
    {
        using var _ = socket;
        // One deadline for reads (handshake, then idle) and one for pong writes; either firing closes the socket, which
        // aborts whatever operation is pending, on every platform.
        using var reads = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        using var writes = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        using var closeOnRead = reads.Token.Register(static s => ((Socket)s!).Dispose(), socket);
        using var closeOnWrite = writes.Token.Register(static s => ((Socket)s!).Dispose(), socket);
        var remote = socket.RemoteEndPoint;
        Stream network = new NetworkStream(socket, ownsSocket: false);
        var header = new byte[4];
        var pong = new byte[PongBytes];
        byte[] buffer = ArrayPool<byte>.Shared.Rent(InitialBufferBytes);
        ulong from = 0;
        var stage = "handshake-timeout";
        BufferedStream? stream = null;
        InboundConnection? inbound = null;
        try
        {
            reads.CancelAfter(_options.HandshakeTimeoutMs);
            if (tls)
            {
                var ssl = new SslStream(network, leaveInnerStreamOpen: false);
                network = ssl;
                string? refusal = null;
                try
                {
                    await ssl.AuthenticateAsServerAsync(_security.Tls!.ServerOptions(null, (reason, _) => refusal = reason), reads.Token);
                }
                catch (Exception exception) when (exception is AuthenticationException or IOException or Win32Exception)
                {
                    Refuse(refusal ?? "tls-handshake", exception.Message, remote);
                    return;
                }
            }
            stream = new BufferedStream(network, InitialBufferBytes);
            var hello = new byte[HelloBytes];
            await stream.ReadExactlyAsync(hello, reads.Token);
            if (!AcceptHello(hello, remote, out from)) return;
            var helloClusterId = BinaryPrimitives.ReadUInt64LittleEndian(hello.AsSpan(5));
            var challenge = RandomNumberGenerator.GetBytes(PeerSecret.ChallengeBytes);
            writes.CancelAfter(_options.WriteTimeoutMs);
            await network.WriteAsync(challenge, writes.Token);
            writes.CancelAfter(Timeout.Infinite);
            var proof = new byte[PeerSecret.ProofBytes];
            await stream.ReadExactlyAsync(proof, reads.Token);
            if (_security.Secret is { } secret && !secret.Verify(challenge, helloClusterId, from, _selfId, proof))
            {
                Refuse("secret", $"member {from:x16} did not prove the cluster secret (--peer-secret-file differs or is missing)", remote);
                return;
            }
            if (_removedMembers.TryGetValue(from, out var removedAt))
            {
                await TellRemoved(socket, network, stream, from, removedAt, remote, writes);
                return;
            }
            inbound = new InboundConnection(this, from, network, socket);
            _inbound[from] = inbound;
            stage = "idle-timeout";
            while (!_stopping.IsCancellationRequested)
            {
                reads.CancelAfter(_options.IdleTimeoutMs);
                await stream.ReadExactlyAsync(header, reads.Token);
                var length = BinaryPrimitives.ReadInt32LittleEndian(header);
                if (length == 0)
                {
                    // A ping: echo its timestamp so the sender measures the round trip and knows we are alive.
                    await stream.ReadExactlyAsync(pong, reads.Token);
                    // Answers may be written on this connection too: one writer at a time.
                    await inbound!.WriteLock.WaitAsync(_stopping.Token);
                    try
                    {
                        writes.CancelAfter(_options.WriteTimeoutMs);
                        await network.WriteAsync(pong, writes.Token);
                        writes.CancelAfter(Timeout.Infinite);
                    }
                    finally
                    {
                        inbound.WriteLock.Release();
                    }
                    continue;
                }
                if (length < 0 || length > MaxFrameBytes)
                {
                    Reject("frame-length");
                    _logger.LogWarning("peer {From:x16}: frame length {Length} out of range; closing", from, length);
                    return;
                }
                buffer = await ReadFrame(stream, buffer, length, reads, _options.IdleTimeoutMs);
                Message message;
                try
                {
                    message = RaftMessageCodec.Decode(buffer.AsSpan(0, length));
                }
                catch (FormatException exception)
                {
                    Reject("malformed");
                    _logger.LogWarning("peer {From:x16}: malformed frame ({Error}); closing", from, exception.Message);
                    return;
                }
                if (buffer.Length > ShrinkAboveBytes)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = ArrayPool<byte>.Shared.Rent(InitialBufferBytes);
                }
                if (message.To != _selfId || message.From != from)
                {
                    Reject("misaddressed");
                    _logger.LogWarning("peer {From:x16}: frame {Message} not for this member {Self:x16}; closing", from, message, _selfId);
                    return;
                }
                if (_removedMembers.TryGetValue(from, out var removedAtIndex))
                {
                    // Removed while this connection was open (it was cut off from the commit of its removal).
                    Unregister(from, inbound!);
                    await inbound!.WriteLock.WaitAsync(_stopping.Token);
                    try
                    {
                        await TellRemoved(socket, network, stream, from, removedAtIndex, remote, writes);
                    }
                    finally
                    {
                        inbound.WriteLock.Release();
                    }
                    return;
                }
                Interlocked.Increment(ref _framesReceived);
                if (MessageValidator.Validate(message, _selfId) is { } reason)
                {
                    // The framing is intact, so the stream stays usable: drop just this message, as a lossy network would.
                    var dropped = Interlocked.Increment(ref _messagesInvalid);
                    if (dropped <= 10 || (dropped & (dropped - 1)) == 0)
                        _logger.LogWarning("peer {From:x16}: dropped invalid message {Message}: {Reason} ({Dropped} so far)", from, message, reason, dropped);
                    continue;
                }
                _onMessage(message);
            }
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException or SocketException or EndOfStreamException or ObjectDisposedException)
        {
            // The peer went away, a deadline passed, or we are stopping; the peer reconnects on its own.
            if (reads.IsCancellationRequested && !_stopping.IsCancellationRequested)
            {
                Reject(stage);
                _logger.LogDebug("peer {From:x16} connection from {Remote}: {Stage}; closing", from, socket.RemoteEndPoint, stage);
            }
        }
        finally
        {
            if (inbound is not null) Unregister(from, inbound);
            ArrayPool<byte>.Shared.Return(buffer);
            if (stream is not null) await stream.DisposeAsync();
            else await network.DisposeAsync();
        }
    }

    private void Unregister(ulong from, InboundConnection inbound)
    {
        _inbound.TryRemove(KeyValuePair.Create(from, inbound));
        inbound.Close();
    }

    /// <summary>
    /// The writing side of a connection another member opened to us: pongs (written by the receive loop) and answers to
    /// a member we have no address for, one writer at a time. Answers are batched per write, at most
    /// <see cref="InboundAnswerQueueCapacity"/> queued (more are dropped, as a lossy network would).
    /// </summary>
    private sealed class InboundConnection
    {
        private readonly PeerTransport _owner;
        private readonly ulong _peer;
        private readonly Stream _network;
        private readonly Socket _socket;
        private readonly Channel<Message> _queue = Channel.CreateBounded<Message>(new BoundedChannelOptions(InboundAnswerQueueCapacity)
        {
            FullMode = BoundedChannelFullMode.DropWrite,
            SingleReader = true,
        });

        public InboundConnection(PeerTransport owner, ulong peer, Stream network, Socket socket)
        {
            _owner = owner;
            _peer = peer;
            _network = network;
            _socket = socket;
            // Waits for the first answer without a thread: most inbound connections never carry one.
            _ = WriteLoop();
        }

        public SemaphoreSlim WriteLock { get; } = new(1, 1);

        public bool TryEnqueue(Message message) => _queue.Writer.TryWrite(message);

        public void Close() => _queue.Writer.TryComplete();

        private async Task WriteLoop()
        {
            var buffer = new byte[InitialBufferBytes];
            try
            {
                while (await _queue.Reader.WaitToReadAsync(_owner._stopping.Token))
                {
                    var used = 0;
                    while (_queue.Reader.TryRead(out var message))
                    {
                        var size = RaftMessageCodec.EncodedSize(message);
                        var needed = PongBytes + 4 + size;
                        if (used + needed > buffer.Length && used > 0)
                        {
                            await WriteAsync(buffer.AsMemory(0, used));
                            used = 0;
                        }
                        if (needed > buffer.Length) buffer = new byte[needed];
                        BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(used), AnswerMarker);
                        BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(used + PongBytes), size);
                        RaftMessageCodec.Encode(message, buffer.AsSpan(used + PongBytes + 4, size));
                        used += needed;
                    }
                    if (used > 0) await WriteAsync(buffer.AsMemory(0, used));
                    if (buffer.Length > ShrinkAboveBytes) buffer = new byte[InitialBufferBytes];
                }
            }
            catch (Exception exception) when (exception is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // The connection closed or stalled (its socket is closed then): the member dials again, and Raft resends.
                _owner._logger.LogDebug("answers to peer {Peer:x16} over its connection stopped: {Error}", _peer, exception.Message);
                _queue.Writer.TryComplete();
            }
        }

        private async Task WriteAsync(ReadOnlyMemory<byte> bytes)
        {
            await WriteLock.WaitAsync(_owner._stopping.Token);
            try
            {
                // A write that does not finish in time closes the socket, which ends the receive loop too.
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_owner._stopping.Token);
                deadline.CancelAfter(_owner._options.WriteTimeoutMs);
                using var close = deadline.Token.Register(static s => ((Socket)s!).Dispose(), _socket);
                await _network.WriteAsync(bytes, deadline.Token);
            }
            finally
            {
                WriteLock.Release();
            }
        }
    }

    // Answers a removed member with the notice (in place of a pong), half-closes, and reads until it closes: closing with
    // its frames unread would reset the connection, and a reset can discard the notice before the member reads it.
    private async Task TellRemoved(Socket socket, Stream network, Stream reader, ulong from, ulong removedAtIndex, EndPoint? remote,
        CancellationTokenSource writes)
    {
        Refuse("removed-member", $"member {from:x16} was removed from the cluster by the entry at index {removedAtIndex}; it is told so", remote);
        Interlocked.Increment(ref _removalNoticesSent);
        var notice = new byte[PongBytes * 2];
        BinaryPrimitives.WriteInt64LittleEndian(notice, RemovedNoticeMarker);
        BinaryPrimitives.WriteUInt64LittleEndian(notice.AsSpan(PongBytes), removedAtIndex);
        writes.CancelAfter(_options.WriteTimeoutMs);
        await network.WriteAsync(notice, writes.Token);
        await network.FlushAsync(writes.Token);
        if (network is SslStream ssl) await ssl.ShutdownAsync();
        writes.CancelAfter(Timeout.Infinite);
        using var linger = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        linger.CancelAfter(RemovedNoticeLingerMs);
        var discard = new byte[4096];
        try
        {
            socket.Shutdown(SocketShutdown.Send);
            while (await reader.ReadAsync(discard, linger.Token) > 0)
            {
            }
        }
        catch (Exception exception) when (exception is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // It did not close within the linger time, or it reset: either way the notice was written.
        }
    }

    private bool AcceptHello(byte[] hello, EndPoint? remote, out ulong from)
    {
        var magic = BinaryPrimitives.ReadUInt32LittleEndian(hello);
        var version = hello[4];
        var clusterId = BinaryPrimitives.ReadUInt64LittleEndian(hello.AsSpan(5));
        from = BinaryPrimitives.ReadUInt64LittleEndian(hello.AsSpan(13));
        var ours = ClusterId;
        // Magic, version and sender first: a stray or foreign connection must never get to teach a joining member
        // its cluster id (that id is written into the data directory for good).
        if (magic != HelloMagic || version != HelloVersion || from == 0 || from == _selfId)
        {
            Reject("hello");
            _logger.LogWarning("peer connection from {Remote} refused: hello magic {Magic:x8} version {Version} from {From:x16}",
                remote, magic, version, from);
            return false;
        }
        if (ours == 0 && clusterId != 0 && Interlocked.CompareExchange(ref _clusterId, clusterId, 0) == 0)
        {
            // A member joining an existing cluster does not know the cluster's id from its flags: it takes it from
            // the first member that connects to it (the leader, once the member was added), as etcd's joining
            // member takes it from the cluster it contacts.
            ours = clusterId;
            ClusterIdLearned?.Invoke(clusterId);
        }
        // A joining member (0) may connect before it knows the id; everyone else must match.
        if (clusterId != ours && clusterId != 0)
        {
            Reject("hello");
            _logger.LogWarning("peer connection from {Remote} refused: cluster {Cluster:x16} (ours {Ours:x16})", remote, clusterId, ours);
            return false;
        }
        return true;
    }

    // Reads a frame of a length already checked against MaxFrameBytes, growing the buffer as bytes actually arrive:
    // a header that announces 64 MiB and then stalls costs nothing beyond the buffer we already had.
    // Both ends read frames this way (the listener its peer's frames, the dialer answers written back to it); the
    // listener's idle deadline moves on with every chunk that arrives (extendMs), the dialer's connection has none.
    private static async Task<byte[]> ReadFrame(Stream stream, byte[] buffer, int length, CancellationTokenSource reads, int extendMs)
    {
        // The caller's buffer goes back to the pool only once the frame is read: on a failure the caller still holds it
        // (and returns it), and only a buffer grown here is returned here. Returning it twice would let the pool hand
        // one array to two readers.
        var original = buffer;
        try
        {
            var received = 0;
            while (received < length)
            {
                if (received == buffer.Length)
                {
                    var grown = ArrayPool<byte>.Shared.Rent((int)Math.Min(length, 2L * buffer.Length));
                    buffer.AsSpan(0, received).CopyTo(grown);
                    if (buffer != original) ArrayPool<byte>.Shared.Return(buffer);
                    buffer = grown;
                }
                var read = await stream.ReadAsync(buffer.AsMemory(received, Math.Min(length, buffer.Length) - received), reads.Token);
                if (read == 0) throw new EndOfStreamException();
                received += read;
                if (extendMs > 0) reads.CancelAfter(extendMs);
            }
        }
        catch
        {
            if (buffer != original) ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
        if (buffer != original) ArrayPool<byte>.Shared.Return(original);
        return buffer;
    }

    private sealed class PeerConnection
    {
        private readonly PeerTransport _owner;
        private readonly Channel<Message> _queue = Channel.CreateBounded<Message>(new BoundedChannelOptions(QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.DropWrite,
        });
        private readonly CancellationTokenSource _closed = new();
        private long _reconnects;
        private long _dropped;
        private long _rttTicks = -1;
        private long _lastPongTimestamp;
        private volatile bool _connected;

        public PeerConnection(PeerTransport owner, ulong id, IReadOnlyList<Uri> urls)
        {
            _owner = owner;
            Id = id;
            Urls = urls;
            Completion = Task.Run(SendLoop);
        }

        public ulong Id { get; }

        public IReadOnlyList<Uri> Urls { get; set; }

        public Task Completion { get; }

        public bool Connected => _connected;

        public long Reconnects => Interlocked.Read(ref _reconnects);

        public long MessagesDropped => Interlocked.Read(ref _dropped);

        public TimeSpan? RoundTripTime
        {
            get
            {
                var ticks = Interlocked.Read(ref _rttTicks);
                return ticks < 0 ? null : Stopwatch.GetElapsedTime(0, ticks);
            }
        }

        public void Enqueue(Message message)
        {
            if (!_queue.Writer.TryWrite(message)) Interlocked.Increment(ref _dropped);
        }

        public void Close(int drainMs = 0)
        {
            // A completed queue lets the send loop write what it holds and then return.
            _queue.Writer.TryComplete();
            try
            {
                if (drainMs > 0) _closed.CancelAfter(drainMs);
                else _closed.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        private async Task SendLoop()
        {
            var options = _owner._options;
            var token = CancellationTokenSource.CreateLinkedTokenSource(_closed.Token, _owner._stopping.Token).Token;
            var attempt = 0;
            var everConnected = false;
            var buffer = new byte[InitialBufferBytes];
            while (!token.IsCancellationRequested)
            {
                var url = Urls[attempt % Urls.Count];
                var wasLive = false;
                Task? pongs = null;
                // Cancelled (by a deadline, a dead pong reader or shutdown) it closes the socket, which aborts any
                // pending connect, write or read at once.
                using var connection = CancellationTokenSource.CreateLinkedTokenSource(token);
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    _owner.ConfigureSocket(socket);
                    using var close = connection.Token.Register(static s => ((Socket)s!).Dispose(), socket);
                    using (var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(connection.Token))
                    {
                        connectTimeout.CancelAfter(options.ConnectTimeoutMs);
                        await socket.ConnectAsync(ResolveListenAddress(url), url.Port, connectTimeout.Token);
                    }
                    Stream stream = new NetworkStream(socket, ownsSocket: false);
                    // TLS and the challenge get the handshake timeout (a TLS handshake on a busy machine takes longer
                    // than a connect), then the per-write deadlines take over.
                    connection.CancelAfter(options.HandshakeTimeoutMs);
                    if (url.Scheme == Uri.UriSchemeHttps)
                    {
                        var tls = _owner._security.Tls ?? throw new AuthenticationException(
                            $"peer URL {url} is https but this member has no peer certificate (--peer-cert-file or --peer-auto-tls)");
                        var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
                        stream = ssl;
                        await ssl.AuthenticateAsClientAsync(tls.ClientOptions(url.IdnHost), connection.Token);
                    }
                    var hello = new byte[HelloBytes];
                    BinaryPrimitives.WriteUInt32LittleEndian(hello, HelloMagic);
                    hello[4] = HelloVersion;
                    var clusterId = _owner.ClusterId;
                    BinaryPrimitives.WriteUInt64LittleEndian(hello.AsSpan(5), clusterId);
                    BinaryPrimitives.WriteUInt64LittleEndian(hello.AsSpan(13), _owner._selfId);
                    await stream.WriteAsync(hello, connection.Token);
                    var challenge = new byte[PeerSecret.ChallengeBytes];
                    await stream.ReadExactlyAsync(challenge, connection.Token);
                    var proof = new byte[PeerSecret.ProofBytes];
                    // Without a secret the answer is zeros: a listener with no secret ignores it, one with a secret refuses it.
                    _owner._security.Secret?.Prove(challenge, clusterId, _owner._selfId, Id, proof);
                    await stream.WriteAsync(proof, connection.Token);
                    connection.CancelAfter(Timeout.Infinite);
                    // Liveness runs from the connect: a peer that never answers a ping is as dead as one that stopped.
                    Interlocked.Exchange(ref _lastPongTimestamp, Stopwatch.GetTimestamp());
                    pongs = ReadPongs(stream, connection);
                    var ping = new byte[PingBytes];
                    var nextPing = 0L;
                    Task<bool>? waiting = null;
                    while (true)
                    {
                        var now = Stopwatch.GetTimestamp();
                        var silentMs = Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastPongTimestamp), now).TotalMilliseconds;
                        // A new connection gets the larger of the two to prove itself: under CPU starvation (a busy
                        // loop, a GC pause) a first pong can take longer than a connect, and replacing a slow but good
                        // connection over and over would cut the member off.
                        if (silentMs > (wasLive ? options.LivenessTimeoutMs : Math.Max(options.ConnectTimeoutMs, options.LivenessTimeoutMs)))
                            throw new IOException($"no pong from peer {Id:x16} for {silentMs:F0} ms");
                        if (now >= nextPing)
                        {
                            BinaryPrimitives.WriteInt32LittleEndian(ping, 0);
                            BinaryPrimitives.WriteInt64LittleEndian(ping.AsSpan(4), now);
                            await WriteWithin(stream, ping, connection);
                            nextPing = now + (long)(options.PingIntervalMs * (Stopwatch.Frequency / 1000.0));
                        }
                        if (!wasLive && _connectedPong)
                        {
                            // Up only once a pong came back: a connect alone proves little (a proxy or a half-open path accepts it).
                            wasLive = true;
                            _connected = true;
                            if (everConnected) Interlocked.Increment(ref _reconnects);
                            everConnected = true;
                            attempt = 0;
                        }
                        waiting ??= _queue.Reader.WaitToReadAsync(connection.Token).AsTask();
                        if (!waiting.IsCompleted)
                        {
                            var untilPing = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), nextPing);
                            if (untilPing > TimeSpan.Zero) await Task.WhenAny(waiting, Task.Delay(untilPing, connection.Token));
                            if (!waiting.IsCompleted) continue;
                        }
                        if (!await waiting) return; // closed: the peer was removed
                        waiting = null;
                        var used = 0;
                        // Batch every queued message into one write: one syscall per burst, as etcd's pipeline does.
                        while (_queue.Reader.TryRead(out var message))
                        {
                            var size = RaftMessageCodec.EncodedSize(message);
                            if (used + 4 + size > buffer.Length && used > 0)
                            {
                                await WriteWithin(stream, buffer.AsMemory(0, used), connection);
                                used = 0;
                            }
                            if (4 + size > buffer.Length) buffer = new byte[4 + size];
                            BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(used), size);
                            RaftMessageCodec.Encode(message, buffer.AsSpan(used + 4, size));
                            used += 4 + size;
                        }
                        if (used > 0) await WriteWithin(stream, buffer.AsMemory(0, used), connection);
                        if (buffer.Length > ShrinkAboveBytes) buffer = new byte[InitialBufferBytes];
                    }
                }
                catch (Exception exception) when (exception is SocketException or IOException or OperationCanceledException or ObjectDisposedException
                                                      or AuthenticationException or Win32Exception)
                {
                    if (token.IsCancellationRequested) return;
                    if (exception is AuthenticationException)
                        _owner._logger.LogWarning("peer {Peer:x16} at {Url}: TLS handshake failed: {Error}", Id, url, exception.Message);
                    if (wasLive)
                        _owner._logger.LogWarning("peer {Peer:x16} connection lost ({Error}); reconnecting", Id, exception.Message);
                    else
                        _owner._logger.LogDebug("peer {Peer:x16} at {Url}: {Error}", Id, url, exception.Message);
                }
                finally
                {
                    _connected = false;
                    _connectedPong = false;
                    await connection.CancelAsync();
                    socket.Dispose();
                    if (pongs is not null)
                    {
                        try
                        {
                            await pongs;
                        }
                        catch (Exception exception) when (exception is SocketException or IOException or OperationCanceledException or ObjectDisposedException or EndOfStreamException)
                        {
                        }
                    }
                }
                if (token.IsCancellationRequested) return;
                attempt++;
                // While the peer is down its messages are stale by the time it returns: drop them (Raft resends).
                while (_queue.Reader.TryRead(out _)) Interlocked.Increment(ref _dropped);
                try
                {
                    var backoff = Math.Min(options.ReconnectBackoffMaxMs, options.ReconnectBackoffMinMs << Math.Min(attempt - 1, 16));
                    await Task.Delay(backoff, token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }

        private volatile bool _connectedPong;

        // An answer the peer wrote on our connection because it has no address for us: checked as a frame it dialed
        // us with would be; a malformed or misaddressed one closes the connection.
        private async Task ReadAnswer(Stream stream, CancellationTokenSource connection)
        {
            var header = new byte[4];
            await stream.ReadExactlyAsync(header, connection.Token);
            var length = BinaryPrimitives.ReadInt32LittleEndian(header);
            if (length <= 0 || length > MaxFrameBytes) throw new IOException($"peer {Id:x16} answered with a frame of length {length}");
            // Grown as bytes arrive, as the listener reads frames: a header announcing 64 MiB costs nothing by itself.
            var frame = ArrayPool<byte>.Shared.Rent(Math.Min(length, InitialBufferBytes));
            Message message;
            try
            {
                frame = await ReadFrame(stream, frame, length, connection, extendMs: 0);
                message = RaftMessageCodec.Decode(frame.AsSpan(0, length));
            }
            catch (FormatException exception)
            {
                throw new IOException($"peer {Id:x16} answered with a malformed frame: {exception.Message}");
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(frame);
            }
            if (message.To != _owner._selfId || message.From != Id)
                throw new IOException($"peer {Id:x16} answered with a frame {message} not from it to this member");
            Interlocked.Increment(ref _owner._framesReceived);
            if (MessageValidator.Validate(message, _owner._selfId) is { } reason)
            {
                var dropped = Interlocked.Increment(ref _owner._messagesInvalid);
                if (dropped <= 10 || (dropped & (dropped - 1)) == 0)
                    _owner._logger.LogWarning("peer {From:x16}: dropped invalid message {Message}: {Reason} ({Dropped} so far)", Id, message, reason, dropped);
                return;
            }
            _owner._onMessage(message);
        }

        private async Task ReadPongs(Stream stream, CancellationTokenSource connection)
        {
            var pong = new byte[PongBytes];
            try
            {
                while (true)
                {
                    await stream.ReadExactlyAsync(pong, connection.Token);
                    var now = Stopwatch.GetTimestamp();
                    var sent = BinaryPrimitives.ReadInt64LittleEndian(pong);
                    if (sent == AnswerMarker)
                    {
                        await ReadAnswer(stream, connection);
                        continue;
                    }
                    if (sent == RemovedNoticeMarker)
                    {
                        await stream.ReadExactlyAsync(pong, connection.Token);
                        var removedAtIndex = BinaryPrimitives.ReadUInt64LittleEndian(pong);
                        _owner._logger.LogDebug("peer {Peer:x16} says this member was removed from the cluster by the entry at index {Index}", Id, removedAtIndex);
                        _owner.RemovedByPeer?.Invoke(Id, removedAtIndex);
                        return;
                    }
                    if (sent <= 0 || sent > now) continue; // not an echo of ours
                    Interlocked.Exchange(ref _rttTicks, now - sent);
                    Interlocked.Exchange(ref _lastPongTimestamp, now);
                    _connectedPong = true;
                }
            }
            finally
            {
                // The receiver closed or the stream broke: the connection is dead for sending too.
                await connection.CancelAsync();
            }
        }

        // The deadline is the connection's own: a write that does not finish in time cancels the connection, whose
        // registration closes the socket, so even a write stuck in the kernel's retransmission backoff returns at once.
        private async ValueTask WriteWithin(Stream stream, ReadOnlyMemory<byte> data, CancellationTokenSource connection)
        {
            connection.CancelAfter(_owner._options.WriteTimeoutMs);
            await stream.WriteAsync(data, connection.Token);
            connection.CancelAfter(Timeout.Infinite);
        }
    }
}

/// <summary>One peer's connection statistics (<see cref="PeerTransport.PeerStatistics"/>).</summary>
/// <param name="PeerId">The peer.</param>
/// <param name="Connected">True while the outbound connection is up and answering pings.</param>
/// <param name="RoundTripTime">The last ping round trip; null before the first pong.</param>
/// <param name="Reconnects">Times the outbound connection was re-established after being up.</param>
/// <param name="MessagesDropped">Messages dropped unsent (queue full, or discarded while the peer was unreachable).</param>
public readonly record struct PeerStats(ulong PeerId, bool Connected, TimeSpan? RoundTripTime, long Reconnects, long MessagesDropped);
