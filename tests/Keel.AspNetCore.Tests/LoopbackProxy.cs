using System.Net;
using System.Net.Sockets;

namespace Keel.AspNetCore.Tests;

/// <summary>
/// A loopback TCP forwarder in front of one member, to partition an app instance from the cluster: while cut, every
/// connection (open or new) is held open and its bytes dropped, as a network partition looks to the client (calls
/// time out rather than being refused); healing drops the held connections and forwards new ones again.
/// </summary>
internal sealed class LoopbackProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Uri _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly List<TcpClient> _connections = [];
    private readonly Task _accepting;
    private volatile bool _cut;

    public LoopbackProxy(string targetUrl)
    {
        _target = new Uri(targetUrl);
        _listener.Start();
        Url = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _accepting = Task.Run(AcceptLoopAsync);
    }

    public string Url { get; }

    public void Cut()
    {
        _cut = true;
        CloseAll();
    }

    public void Heal()
    {
        CloseAll();
        _cut = false;
    }

    private void CloseAll()
    {
        lock (_gate)
        {
            foreach (var c in _connections) c.Dispose();
            _connections.Clear();
        }
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient inbound;
            try
            {
                inbound = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            lock (_gate) _connections.Add(inbound);
            _ = Task.Run(() => ServeAsync(inbound));
        }
    }

    private async Task ServeAsync(TcpClient inbound)
    {
        try
        {
            if (_cut)
            {
                await DrainAsync(inbound.GetStream());
                return;
            }
            using var outbound = new TcpClient();
            await outbound.ConnectAsync(_target.Host, _target.Port, _stop.Token);
            lock (_gate) _connections.Add(outbound);
            var a = inbound.GetStream();
            var b = outbound.GetStream();
            await Task.WhenAny(PumpAsync(a, b), PumpAsync(b, a));
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
        }
        finally
        {
            inbound.Dispose();
        }
    }

    private async Task PumpAsync(NetworkStream from, NetworkStream to)
    {
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await from.ReadAsync(buffer, _stop.Token)) > 0)
        {
            // A cut drops bytes already in flight too; the connection is closed by Cut() a moment later.
            if (_cut) continue;
            await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
        }
    }

    private async Task DrainAsync(NetworkStream stream)
    {
        var buffer = new byte[16 * 1024];
        while (await stream.ReadAsync(buffer, _stop.Token) > 0)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        CloseAll();
        await _accepting;
    }
}
