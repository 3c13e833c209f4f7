using Grpc.Core;

namespace Keel.Protocol;

/// <summary>
/// One etcd server error: the gRPC status code and the exact message text etcd sends. Clients such as etcdctl and
/// the Go clientv3 turn errors back into typed values by comparing the message string
/// (etcd-io/etcd api/v3rpc/rpctypes/error.go, <c>errStringToError</c>), so the text must match byte for byte.
/// </summary>
/// <param name="Code">The gRPC status code etcd uses for this error.</param>
/// <param name="Message">The exact status message, including the <c>etcdserver: </c> prefix.</param>
public sealed record EtcdError(StatusCode Code, string Message)
{
    /// <summary>The gRPC status carrying this error.</summary>
    public Status ToStatus() => new(Code, Message);

    /// <summary>An exception that a gRPC server method throws to send this error to the client.</summary>
    public RpcException ToRpcException() => new(ToStatus());

    /// <summary>True when <paramref name="status"/> is this error (same code and same text).</summary>
    public bool Matches(Status status) => status.StatusCode == Code && string.Equals(status.Detail, Message, StringComparison.Ordinal);

    /// <inheritdoc />
    public override string ToString() => $"{Code}: {Message}";
}
