using System.Net;
using System.Net.Sockets;

namespace Keel.TestCluster;

/// <summary>
/// Finds free loopback ports by binding port 0. The ports are released before the server binds them, so another
/// process can take one in between: <see cref="TestCluster"/> detects that (the member exits at startup) and retries
/// with fresh ports.
/// </summary>
public static class FreePorts
{
    /// <summary>Returns <paramref name="count"/> distinct ports that were free on 127.0.0.1 a moment ago.</summary>
    public static int[] Reserve(int count)
    {
        var listeners = new List<TcpListener>(count);
        try
        {
            for (var i = 0; i < count; i++)
            {
                var listener = new TcpListener(IPAddress.Loopback, 0);
                // Holding every listener until all are bound keeps the ports distinct.
                listener.Start();
                listeners.Add(listener);
            }
            return listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        }
        finally
        {
            foreach (var listener in listeners) listener.Stop();
        }
    }
}
