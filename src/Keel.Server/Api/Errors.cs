using Grpc.Core;
using Keel.Node;

namespace Keel.Server;

/// <summary>Turns the node's typed errors into gRPC statuses with etcd's exact texts (etcd-api.md, "Error strings").</summary>
internal static class Errors
{
    public static RpcException ToRpc(KeelError error) =>
        new(new Status(Enum.TryParse<StatusCode>(error.GrpcStatusCode, ignoreCase: false, out var code) ? code : StatusCode.Unknown, error.Message));

    /// <summary>The result's error as an exception, or nothing when it succeeded.</summary>
    public static void ThrowIfFailed(KvResult result)
    {
        if (result.Error is { } error) throw ToRpc(error);
    }

    public static RpcException InvalidArgument(string message) => new(new Status(StatusCode.InvalidArgument, message));
}
