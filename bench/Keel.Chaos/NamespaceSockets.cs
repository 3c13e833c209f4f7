using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Keel.Chaos;

/// <summary>
/// Creates TCP sockets inside a network namespace from this (host-namespace) process: a dedicated thread joins the
/// namespace with setns(2) (the network namespace is per thread on Linux), and a socket belongs to the namespace of the
/// thread that created it for its whole life. The workload's gRPC channels dial through <see cref="ConnectAsync"/>.
/// </summary>
public sealed partial class NamespaceSockets : IDisposable
{
    private const int CloneNewNet = 0x40000000;
    private readonly BlockingCollection<TaskCompletionSource<Socket>> _requests = new();
    private readonly Thread _thread;
    private readonly TaskCompletionSource _joined = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Starts the thread and joins it to the namespace at <paramref name="handlePath"/>.</summary>
    /// <exception cref="InvalidOperationException">setns failed.</exception>
    public NamespaceSockets(string handlePath)
    {
        _thread = new Thread(() => Run(handlePath)) { IsBackground = true, Name = "netns-sockets" };
        _thread.Start();
        _joined.Task.GetAwaiter().GetResult();
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int setns(int fd, int nstype);

    private void Run(string handlePath)
    {
        try
        {
            using var handle = File.OpenHandle(handlePath, FileMode.Open, FileAccess.Read);
            if (setns((int)handle.DangerousGetHandle(), CloneNewNet) != 0)
                throw new InvalidOperationException($"setns({handlePath}) failed: errno {Marshal.GetLastPInvokeError()}");
            _joined.SetResult();
        }
        catch (Exception e)
        {
            _joined.TrySetException(e);
            return;
        }
        foreach (var request in _requests.GetConsumingEnumerable())
        {
            try
            {
                request.SetResult(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true });
            }
            catch (Exception e)
            {
                request.SetException(e);
            }
        }
    }

    /// <summary>A new TCP socket in the namespace, connected to <paramref name="endpoint"/>.</summary>
    public async Task<Socket> ConnectAsync(EndPoint endpoint, CancellationToken cancellationToken)
    {
        var request = new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously);
        _requests.Add(request, cancellationToken);
        var socket = await request.Task.ConfigureAwait(false);
        try
        {
            await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Stops the thread.</summary>
    public void Dispose()
    {
        _requests.CompleteAdding();
        _thread.Join(TimeSpan.FromSeconds(5));
        _requests.Dispose();
    }
}
