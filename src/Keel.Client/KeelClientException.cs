using Grpc.Core;

namespace Keel.Client;

/// <summary>
/// A call failed for good: the server refused it (a final answer such as an invalid argument or a failed guard), or
/// every allowed retry failed. <see cref="Exception.InnerException"/> is the last <see cref="RpcException"/>.
/// </summary>
public class KeelClientException : Exception
{
    /// <summary>Creates the exception for a final failure of <paramref name="operation"/>.</summary>
    public KeelClientException(string operation, RpcException last, string endpoint, int attempts)
        : base($"keel: {operation} failed on {endpoint} after {attempts} attempt(s): {last.StatusCode} {last.Status.Detail}", last)
    {
        StatusCode = last.StatusCode;
        Detail = last.Status.Detail;
        Endpoint = endpoint;
        Attempts = attempts;
    }

    /// <summary>Creates an exception that is not the result of a gRPC failure.</summary>
    public KeelClientException(string message) : base(message)
    {
        Detail = message;
        Endpoint = "";
    }

    /// <summary>The gRPC status of the last attempt (etcd's error text is in <see cref="Detail"/>).</summary>
    public StatusCode StatusCode { get; }

    /// <summary>The server's error text, e.g. <c>etcdserver: requested lease not found</c>.</summary>
    public string Detail { get; }

    /// <summary>The member that gave the last answer.</summary>
    public string Endpoint { get; }

    /// <summary>How many attempts were made.</summary>
    public int Attempts { get; }
}

/// <summary>A watch cannot resume: the revision it must resume from has been compacted away.</summary>
public sealed class KeelWatchCompactedException(long compactRevision, long requestedRevision)
    : KeelClientException($"keel: watch cannot resume from revision {requestedRevision}: history before {compactRevision} has been compacted; read the current state and watch again from there")
{
    /// <summary>The oldest revision still available.</summary>
    public long CompactRevision { get; } = compactRevision;
}
