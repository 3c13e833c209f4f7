using System.Diagnostics;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace Keel.Server.Observability;

/// <summary>
/// Counts every RPC as go-grpc-prometheus does for etcd (<c>grpc_server_started_total</c>,
/// <c>grpc_server_handled_total</c> with <c>grpc_type</c>, <c>grpc_service</c>, <c>grpc_method</c>, <c>grpc_code</c>),
/// times Puts for the dashboard, and opens a trace span per RPC when tracing is on.
/// </summary>
internal sealed class GrpcMetricsInterceptor(ServerTelemetry telemetry) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context,
        UnaryServerMethod<TRequest, TResponse> continuation)
    {
        var call = Begin("unary", context);
        try
        {
            var response = await continuation(request, context).ConfigureAwait(false);
            End(call, StatusCode.OK);
            return response;
        }
        catch (Exception exception)
        {
            End(call, CodeOf(exception));
            throw;
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var call = Begin("client_stream", context);
        try
        {
            var response = await continuation(requestStream, context).ConfigureAwait(false);
            End(call, StatusCode.OK);
            return response;
        }
        catch (Exception exception)
        {
            End(call, CodeOf(exception));
            throw;
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var call = Begin("server_stream", context);
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
            End(call, StatusCode.OK);
        }
        catch (Exception exception)
        {
            End(call, CodeOf(exception));
            throw;
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream,
        IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        var call = Begin("bidi_stream", context);
        try
        {
            await continuation(requestStream, responseStream, context).ConfigureAwait(false);
            End(call, StatusCode.OK);
        }
        catch (Exception exception)
        {
            End(call, CodeOf(exception));
            throw;
        }
    }

    private readonly record struct Call(string Type, string Service, string Method, long StartedAt, Activity? Activity);

    private Call Begin(string type, ServerCallContext context)
    {
        // "/etcdserverpb.KV/Put" → service "etcdserverpb.KV", method "Put".
        var full = context.Method.AsSpan().TrimStart('/');
        var slash = full.LastIndexOf('/');
        var service = slash < 0 ? "unknown" : full[..slash].ToString();
        var method = slash < 0 ? full.ToString() : full[(slash + 1)..].ToString();
        telemetry.RpcStarted(type, service, method);
        var activity = ServerTelemetry.Tracing.StartActivity(service + "/" + method, ActivityKind.Server);
        activity?.SetTag("rpc.system", "grpc");
        activity?.SetTag("rpc.service", service);
        activity?.SetTag("rpc.method", method);
        return new Call(type, service, method, Stopwatch.GetTimestamp(), activity);
    }

    private void End(Call call, StatusCode code)
    {
        var name = CodeName(code);
        telemetry.RpcHandled(call.Type, call.Service, call.Method, name, Stopwatch.GetElapsedTime(call.StartedAt).TotalSeconds);
        if (call.Activity is { } activity)
        {
            activity.SetTag("rpc.grpc.status_code", (int)code);
            if (code != StatusCode.OK) activity.SetStatus(ActivityStatusCode.Error, name);
            activity.Dispose();
        }
    }

    private static StatusCode CodeOf(Exception exception) => exception switch
    {
        RpcException rpc => rpc.StatusCode,
        OperationCanceledException => StatusCode.Cancelled,
        _ => StatusCode.Unknown,
    };

    /// <summary>Go's names of the codes (grpc-go codes.Code.String), which etcd dashboards match on.</summary>
    internal static string CodeName(StatusCode code) => code switch
    {
        StatusCode.Cancelled => "Canceled",
        _ => code.ToString(),
    };
}
