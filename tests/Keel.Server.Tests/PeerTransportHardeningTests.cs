using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Keel.Raft;
using Keel.Server.Peers;
using Keel.TestCluster;
using Microsoft.Extensions.Logging.Abstractions;

namespace Keel.Server.Tests;

/// <summary>
/// The receiving side of <see cref="PeerTransport"/> against hostile or broken peers: a bad hello teaches a joining
/// member nothing, an absurd length header costs no allocation, a silent connection is closed, an invalid message is
/// dropped and counted while the connection and the transport carry on; and the ping/pong measures a round trip.
/// </summary>
public sealed class PeerTransportHardeningTests
{
    private const ulong Self = 0xA1, Peer = 0xB2, Cluster = 0xC3;

    private static byte[] Hello(ulong cluster, ulong from, uint magic = 0x4B45454C, byte version = 3)
    {
        // The hello, then a proof of the cluster secret (zeros: the harness has no secret, so any answer is accepted).
        var hello = new byte[PeerTransport.HelloBytes + 32];
        BinaryPrimitives.WriteUInt32LittleEndian(hello, magic);
        hello[4] = version;
        BinaryPrimitives.WriteUInt64LittleEndian(hello.AsSpan(5), cluster);
        BinaryPrimitives.WriteUInt64LittleEndian(hello.AsSpan(13), from);
        return hello;
    }

    private static byte[] Frame(Message message)
    {
        var body = RaftMessageCodec.Encode(message);
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteInt32LittleEndian(frame, body.Length);
        body.CopyTo(frame, 4);
        return frame;
    }

    private sealed class Harness : IAsyncDisposable
    {
        private readonly List<Socket> _sockets = [];

        public Harness(ulong clusterId, PeerTransportOptions? options = null, int port = 0)
        {
            Port = port == 0 ? FreePorts.Reserve(1)[0] : port;
            Transport = new PeerTransport(Self, clusterId, [new Uri($"http://127.0.0.1:{Port}")], Received.Enqueue, NullLogger.Instance, options);
            Transport.Start();
        }

        public int Port { get; }

        public PeerTransport Transport { get; }

        public ConcurrentQueue<Message> Received { get; } = new();

        public async Task<Socket> ConnectAsync()
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            _sockets.Add(socket);
            await socket.ConnectAsync(IPAddress.Loopback, Port);
            return socket;
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var socket in _sockets) socket.Dispose();
            await Transport.DisposeAsync();
        }
    }

    // True once the transport closed the connection (a read returns end of stream or fails).
    private static async Task<bool> ClosedWithinAsync(Socket socket, TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        var buffer = new byte[64];
        try
        {
            while (true)
            {
                if (await socket.ReceiveAsync(buffer, timeout.Token) == 0) return true;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (SocketException)
        {
            return true;
        }
    }

    private static async Task PollAsync(Func<bool> condition, TimeSpan within, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > within) throw new TimeoutException($"not {what} within {within.TotalSeconds:F0} s");
            await Task.Delay(5);
        }
    }

    [Fact]
    public async Task HelloWithWrongMagicDoesNotPinAJoiningMembersClusterId()
    {
        await using var harness = new Harness(clusterId: 0);
        ulong learned = 0;
        harness.Transport.ClusterIdLearned += id => Volatile.Write(ref learned, id);
        var stray = await harness.ConnectAsync();
        await stray.SendAsync(Hello(Cluster, Peer, magic: 0x48545450 /* "HTTP" */));
        Assert.True(await ClosedWithinAsync(stray, TimeSpan.FromSeconds(5)));
        var oldVersion = await harness.ConnectAsync();
        await oldVersion.SendAsync(Hello(Cluster, Peer, version: 1));
        Assert.True(await ClosedWithinAsync(oldVersion, TimeSpan.FromSeconds(5)));
        Assert.Equal(0UL, harness.Transport.ClusterId);
        Assert.Equal(0UL, learned);
        Assert.Equal(2, harness.Transport.FramesRejectedByReason.GetValueOrDefault("hello"));

        // A real member's hello still teaches it.
        var member = await harness.ConnectAsync();
        await member.SendAsync(Hello(Cluster, Peer));
        // The id is stored before the event is raised, so wait for the event itself, not for the property.
        await PollAsync(() => Volatile.Read(ref learned) != 0, TimeSpan.FromSeconds(5), "cluster id learned");
        Assert.Equal(Cluster, Volatile.Read(ref learned));
        Assert.Equal(Cluster, harness.Transport.ClusterId);
    }

    [Fact]
    public async Task OversizedLengthHeaderClosesTheConnectionWithoutAllocating()
    {
        await using var harness = new Harness(Cluster);
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var socket = await harness.ConnectAsync();
        var header = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(header, PeerTransport.MaxFrameBytes + 1);
        await socket.SendAsync(Hello(Cluster, Peer).Concat(header).ToArray());
        Assert.True(await ClosedWithinAsync(socket, TimeSpan.FromSeconds(5)));
        Assert.Equal(1, harness.Transport.FramesRejectedByReason.GetValueOrDefault("frame-length"));

        // A length within bounds but never backed by bytes: the buffer grows only as data arrives.
        var liar = await harness.ConnectAsync();
        BinaryPrimitives.WriteInt32LittleEndian(header, PeerTransport.MaxFrameBytes);
        await liar.SendAsync(Hello(Cluster, Peer).Concat(header).Concat(new byte[100]).ToArray());
        liar.Shutdown(SocketShutdown.Send);
        Assert.True(await ClosedWithinAsync(liar, TimeSpan.FromSeconds(5)));
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.True(allocated < PeerTransport.MaxFrameBytes / 4, $"{allocated} bytes allocated for headers announcing {PeerTransport.MaxFrameBytes}");
    }

    [Fact]
    public async Task SilentConnectionsAreClosedAfterTheHandshakeOrIdleTimeout()
    {
        await using var harness = new Harness(Cluster, new PeerTransportOptions { HandshakeTimeoutMs = 300, IdleTimeoutMs = 300 });
        var mute = await harness.ConnectAsync();
        var helloOnly = await harness.ConnectAsync();
        await helloOnly.SendAsync(Hello(Cluster, Peer));
        Assert.True(await ClosedWithinAsync(mute, TimeSpan.FromSeconds(5)));
        Assert.True(await ClosedWithinAsync(helloOnly, TimeSpan.FromSeconds(5)));
        await PollAsync(() => harness.Transport.FramesRejectedByReason.GetValueOrDefault("handshake-timeout") == 1
                              && harness.Transport.FramesRejectedByReason.GetValueOrDefault("idle-timeout") == 1,
            TimeSpan.FromSeconds(5), "both timeouts counted");
    }

    [Fact]
    public async Task InvalidOrGarbageMessagesAreCountedAndKillNothing()
    {
        await using var harness = new Harness(Cluster);
        var socket = await harness.ConnectAsync();
        await socket.SendAsync(Hello(Cluster, Peer));
        // Well framed, but the entries do not follow index 4: dropped and counted, the connection stays.
        var gap = new Message
        {
            Type = MessageType.Append, From = Peer, To = Self, Term = 3, Index = 4, LogTerm = 2,
            Entries = [Entry.Normal(5, 3, new byte[] { 1 }), Entry.Normal(9, 3, new byte[] { 2 })],
        };
        var heartbeat = new Message { Type = MessageType.Heartbeat, From = Peer, To = Self, Term = 3, Commit = 1 };
        await socket.SendAsync(Frame(gap).Concat(Frame(heartbeat)).ToArray());
        await PollAsync(() => harness.Received.Count == 1, TimeSpan.FromSeconds(5), "the valid message delivered");
        Assert.Equal(1, harness.Transport.MessagesDroppedInvalid);
        Assert.Equal(MessageType.Heartbeat, Assert.Single(harness.Received).Type);

        // Garbage inside a frame: the connection is closed, nothing reaches Raft, the transport still accepts peers.
        var garbage = new byte[4 + 40];
        BinaryPrimitives.WriteInt32LittleEndian(garbage, 40);
        new Random(7).NextBytes(garbage.AsSpan(4));
        garbage[4] = RaftMessageCodec.Version;
        await socket.SendAsync(garbage);
        Assert.True(await ClosedWithinAsync(socket, TimeSpan.FromSeconds(5)));
        Assert.Equal(1, harness.Transport.FramesRejectedByReason.GetValueOrDefault("malformed"));
        var again = await harness.ConnectAsync();
        await again.SendAsync(Hello(Cluster, Peer).Concat(Frame(heartbeat)).ToArray());
        await PollAsync(() => harness.Received.Count == 2, TimeSpan.FromSeconds(5), "a new connection delivering");
    }

    [Fact]
    public async Task PingsMeasureTheRoundTripAndTheSenderReconnectsAfterThePeerRestarts()
    {
        var receiver = new Harness(Cluster);
        var port = receiver.Port;
        try
        {
            var senderPort = FreePorts.Reserve(1)[0];
            await using var sender = new PeerTransport(Peer, Cluster, [new Uri($"http://127.0.0.1:{senderPort}")], _ => { }, NullLogger.Instance);
            sender.SetPeer(Self, [new Uri($"http://127.0.0.1:{port}")]);
            await PollAsync(() => sender.RoundTripTime(Self) is not null && sender.PeerStatistics()[0].Connected, TimeSpan.FromSeconds(5), "a round trip measured");
            Assert.True(sender.RoundTripTime(Self) < TimeSpan.FromSeconds(1));
            sender.Send(new Message { Type = MessageType.Heartbeat, From = Peer, To = Self, Term = 1 });
            await PollAsync(() => receiver.Received.Count == 1, TimeSpan.FromSeconds(5), "a message delivered");

            await receiver.DisposeAsync();
            receiver = new Harness(Cluster, port: port);
            await PollAsync(() => sender.Reconnects >= 1 && sender.PeerStatistics()[0].Connected, TimeSpan.FromSeconds(10), "reconnected");
            sender.Send(new Message { Type = MessageType.Heartbeat, From = Peer, To = Self, Term = 1 });
            await PollAsync(() => receiver.Received.Count == 1, TimeSpan.FromSeconds(5), "a message delivered after the restart");
        }
        finally
        {
            await receiver.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_removed_peer_still_gets_what_was_queued_for_it_before_its_connection_closes()
    {
        // A member removed from the cluster learns it from the commit its peers send it in the turn that drops it: the
        // transport must write what is queued before it closes the connection, not cancel it mid-queue.
        await using var receiver = new Harness(Cluster);
        var senderPort = FreePorts.Reserve(1)[0];
        await using var sender = new PeerTransport(Peer, Cluster, [new Uri($"http://127.0.0.1:{senderPort}")], _ => { }, NullLogger.Instance);
        sender.SetPeer(Self, [new Uri($"http://127.0.0.1:{receiver.Port}")]);
        await PollAsync(() => sender.PeerStatistics().Count == 1 && sender.PeerStatistics()[0].Connected, TimeSpan.FromSeconds(5), "connected");

        const int queued = 500;
        for (var i = 1; i <= queued; i++)
            sender.Send(new Message { Type = MessageType.Append, From = Peer, To = Self, Term = 1, Index = (ulong)i, Commit = (ulong)i });
        sender.RemovePeer(Self);
        Assert.Empty(sender.PeerIds);
        sender.Send(new Message { Type = MessageType.Heartbeat, From = Peer, To = Self, Term = 1 });

        await PollAsync(() => receiver.Received.Count >= queued, TimeSpan.FromSeconds(5), "every queued message delivered");
        Assert.Equal(Enumerable.Range(1, queued).Select(i => (ulong)i), receiver.Received.Take(queued).Select(m => m.Index));
        Assert.DoesNotContain(receiver.Received, m => m.Type == MessageType.Heartbeat);
    }

    [Fact]
    public async Task A_removed_member_is_told_so_on_connecting_and_on_a_connection_already_open_and_nothing_it_sends_reaches_raft()
    {
        // etcd's peers answer a removed member "the member has been permanently removed from the cluster"; Keel's
        // transport answers it with a notice carrying the index of the removing entry, in place of a pong.
        await using var receiver = new Harness(Cluster);
        var senderPort = FreePorts.Reserve(1)[0];
        await using var sender = new PeerTransport(Peer, Cluster, [new Uri($"http://127.0.0.1:{senderPort}")], _ => { }, NullLogger.Instance);
        var notices = new ConcurrentQueue<(ulong Peer, ulong Index)>();
        sender.RemovedByPeer += (peer, index) => notices.Enqueue((peer, index));
        sender.SetPeer(Self, [new Uri($"http://127.0.0.1:{receiver.Port}")]);
        await PollAsync(() => sender.PeerStatistics().Count == 1 && sender.PeerStatistics()[0].Connected, TimeSpan.FromSeconds(5), "connected");
        sender.Send(new Message { Type = MessageType.Heartbeat, From = Peer, To = Self, Term = 1 });
        await PollAsync(() => receiver.Received.Count == 1, TimeSpan.FromSeconds(5), "a message of a member in good standing arrives");
        Assert.Empty(notices);

        // Removed while its connection is open: its next frame gets the notice, and the frame is not delivered.
        receiver.Transport.SetRemovedMembers(new Dictionary<ulong, ulong> { [Peer] = 42 });
        sender.Send(new Message { Type = MessageType.Heartbeat, From = Peer, To = Self, Term = 2 });
        await PollAsync(() => !notices.IsEmpty, TimeSpan.FromSeconds(5), "the removal notice on the open connection");
        Assert.Equal((Self, 42UL), notices.First());

        // Every connection it opens afterwards is told at once, before any frame is read.
        var before = notices.Count;
        await PollAsync(() => notices.Count > before, TimeSpan.FromSeconds(10), "the notice again on reconnecting");
        Assert.All(notices, notice => Assert.Equal((Self, 42UL), notice));
        for (var i = 0; i < 20; i++) sender.Send(new Message { Type = MessageType.Heartbeat, From = Peer, To = Self, Term = 3 });
        await PollAsync(() => receiver.Transport.RemovalNoticesSent >= 3, TimeSpan.FromSeconds(10), "a third notice");
        Assert.Single(receiver.Received);
        var sent = receiver.Transport.RemovalNoticesSent;
        Assert.True(receiver.Transport.ConnectionsRefusedByReason["removed-member"] >= sent);

        // Added again (no longer in the set): its messages are heard again.
        receiver.Transport.SetRemovedMembers(new Dictionary<ulong, ulong>());
        await PollAsync(() =>
        {
            sender.Send(new Message { Type = MessageType.Heartbeat, From = Peer, To = Self, Term = 4 });
            return receiver.Received.Any(m => m.Term == 4);
        }, TimeSpan.FromSeconds(10), "heard again once no longer removed");
    }

    [Fact]
    public async Task A_member_with_no_address_for_a_peer_answers_it_over_the_connection_that_peer_opened()
    {
        // A joiner (or a member back from a long absence) restored from a snapshot older than the leader's own
        // admission has no address for that leader until it applies the admission: it must still answer it.
        await using var receiver = new Harness(Cluster);
        var senderPort = FreePorts.Reserve(1)[0];
        var answers = new ConcurrentQueue<Message>();
        await using var sender = new PeerTransport(Peer, Cluster, [new Uri($"http://127.0.0.1:{senderPort}")], answers.Enqueue, NullLogger.Instance);
        sender.SetPeer(Self, [new Uri($"http://127.0.0.1:{receiver.Port}")]);
        Assert.Empty(receiver.Transport.PeerIds);

        // Before the peer connected there is nothing to answer on: dropped, as to any unknown member.
        receiver.Transport.Send(new Message { Type = MessageType.AppendResponse, From = Self, To = Peer, Term = 1, Index = 1 });
        Assert.Equal(0, receiver.Transport.AnswersOverInboundConnections);

        sender.Send(new Message { Type = MessageType.Append, From = Peer, To = Self, Term = 2, Index = 0, Commit = 0 });
        await PollAsync(() => receiver.Received.Count == 1, TimeSpan.FromSeconds(5), "the leader's append");
        for (ulong i = 1; i <= 100; i++)
            receiver.Transport.Send(new Message { Type = MessageType.AppendResponse, From = Self, To = Peer, Term = 2, Index = i });
        await PollAsync(() => answers.Count == 100, TimeSpan.FromSeconds(5), "every answer, over the leader's own connection");
        Assert.Equal(Enumerable.Range(1, 100).Select(i => (ulong)i), answers.Select(m => m.Index));
        Assert.All(answers, m => Assert.Equal((MessageType.AppendResponse, Self, Peer), (m.Type, m.From, m.To)));
        Assert.Equal(100, receiver.Transport.AnswersOverInboundConnections);

        // The connection stays healthy: pings and pongs still flow between the answers, and messages still arrive.
        sender.Send(new Message { Type = MessageType.Heartbeat, From = Peer, To = Self, Term = 2 });
        await PollAsync(() => receiver.Received.Count == 2, TimeSpan.FromSeconds(5), "a later heartbeat");
        Assert.True(sender.PeerStatistics().Single().Connected);
        Assert.Equal(0, sender.Reconnects);
    }
}
