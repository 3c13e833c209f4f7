using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Keel.Server.Tests;

/// <summary>
/// In-process TCP forwarders in front of the members' peer ports that can blackhole a member the way
/// <c>iptables -j DROP</c> does: connections stay open but no byte moves in either direction, on connections to the
/// member and on the ones it opened (recognised by the sender id in the peer hello).
/// </summary>
/// <remarks>
/// A user-space proxy acknowledges bytes itself, so the senders' kernels never enter retransmission backoff; to
/// reproduce what a real DROP does to a connection that carried data during the partition, a connection held by the
/// blackhole resumes only at the next retransmission of Linux's schedule after the heal (RTO 200 ms, doubling, from
/// the first held byte), and one opened during the partition at the next SYN retry (1 s, doubling). Nothing is lost:
/// TCP would deliver everything once a retransmission gets through.
/// </remarks>
public sealed class BlackholeNetwork : IAsyncDisposable
{
    private readonly List<Proxy> _proxies = [];
    private readonly HashSet<ulong> _blackholed = [];
    private readonly Lock _lock = new();

    /// <summary>Starts a forwarder to <paramref name="target"/> on a free loopback port.</summary>
    public Proxy Add(IPEndPoint target)
    {
        var proxy = new Proxy(this, target);
        _proxies.Add(proxy);
        return proxy;
    }

    /// <summary>Stops forwarding every byte to and from <paramref name="memberId"/>.</summary>
    public void Blackhole(ulong memberId)
    {
        lock (_lock) _blackholed.Add(memberId);
    }

    /// <summary>Lets bytes flow again (held connections resume at their next modelled retransmission).</summary>
    public void Heal()
    {
        lock (_lock) _blackholed.Clear();
    }

    private bool IsBlocked(ulong target, ulong from)
    {
        lock (_lock) return _blackholed.Contains(target) || _blackholed.Contains(from);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var proxy in _proxies) await proxy.DisposeAsync();
    }

    /// <summary>One forwarder; <see cref="TargetId"/> names the member behind it once known.</summary>
    public sealed class Proxy : IAsyncDisposable
    {
        private const int HelloBytes = 21;
        private readonly BlackholeNetwork _network;
        private readonly IPEndPoint _target;
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stopping = new();
        private readonly List<Socket> _sockets = [];
        private readonly List<Task> _tasks = [];
        private readonly Task _accepting;

        internal Proxy(BlackholeNetwork network, IPEndPoint target)
        {
            _network = network;
            _target = target;
            _listener.Start();
            Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            _accepting = Task.Run(AcceptLoop);
        }

        public int Port { get; }

        public ulong TargetId { get; set; }

        private async Task AcceptLoop()
        {
            while (true)
            {
                Socket client;
                try
                {
                    client = await _listener.AcceptSocketAsync(_stopping.Token);
                }
                catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
                {
                    return;
                }
                lock (_sockets)
                {
                    _sockets.Add(client);
                    _tasks.Add(Task.Run(() => Forward(client)));
                }
            }
        }

        private async Task Forward(Socket client)
        {
            var upstream = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            lock (_sockets) _sockets.Add(upstream);
            try
            {
                var acceptedAt = DateTime.UtcNow;
                var hello = new byte[HelloBytes];
                var read = 0;
                while (read < hello.Length)
                {
                    var n = await client.ReceiveAsync(hello.AsMemory(read), _stopping.Token);
                    if (n == 0) break;
                    read += n;
                }
                var from = read == HelloBytes ? BinaryPrimitives.ReadUInt64LittleEndian(hello.AsSpan(13)) : 0;
                var direction = new Held();
                if (_network.IsBlocked(TargetId, from)) direction.Since = acceptedAt; // the SYN is being dropped
                await WaitOpen(direction, from, TimeSpan.FromSeconds(1));
                await upstream.ConnectAsync(_target, _stopping.Token);
                if (read > 0) await upstream.SendAsync(hello.AsMemory(0, read), _stopping.Token);
                if (read < HelloBytes) return;
                await Task.WhenAny(Pump(client, upstream, from), Pump(upstream, client, from));
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
            }
            finally
            {
                client.Dispose();
                upstream.Dispose();
            }
        }

        private async Task Pump(Socket source, Socket destination, ulong from)
        {
            var buffer = new byte[64 * 1024];
            var held = new Held();
            try
            {
                while (true)
                {
                    await WaitOpen(held, from, TimeSpan.FromMilliseconds(200));
                    var n = await source.ReceiveAsync(buffer, _stopping.Token);
                    if (n == 0) return;
                    await WaitOpen(held, from, TimeSpan.FromMilliseconds(200));
                    await destination.SendAsync(buffer.AsMemory(0, n), _stopping.Token);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
            }
        }

        private sealed class Held
        {
            public DateTime? Since;
        }

        // Returns once bytes may move: at once when not blackholed and nothing was held; else after the heal, at the
        // next retransmission of a schedule starting at firstTimeout and doubling, counted from when holding began.
        private async Task WaitOpen(Held held, ulong from, TimeSpan firstTimeout)
        {
            while (_network.IsBlocked(TargetId, from))
            {
                held.Since ??= DateTime.UtcNow;
                await Task.Delay(5, _stopping.Token);
            }
            if (held.Since is not { } since) return;
            var retransmit = since + firstTimeout;
            var timeout = firstTimeout;
            while (retransmit < DateTime.UtcNow)
            {
                timeout *= 2;
                retransmit += timeout;
            }
            held.Since = null;
            var wait = retransmit - DateTime.UtcNow;
            if (wait > TimeSpan.Zero) await Task.Delay(wait, _stopping.Token);
        }

        public async ValueTask DisposeAsync()
        {
            await _stopping.CancelAsync();
            _listener.Stop();
            Task[] tasks;
            lock (_sockets)
            {
                foreach (var socket in _sockets) socket.Dispose();
                tasks = [.. _tasks, _accepting];
            }
            await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(5));
            _stopping.Dispose();
        }
    }
}
