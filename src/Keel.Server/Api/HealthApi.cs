using Grpc.Core;
using Keel.Protocol.Health;
using Keel.Server.Hosting;

namespace Keel.Server.Api;

/// <summary>
/// The standard gRPC health service (<c>grpc.health.v1.Health</c>), which etcd also registers: SERVING while this
/// member knows a leader (it can serve linearizable requests) and its node loop is moving, NOT_SERVING otherwise (no
/// leader, or work queued with no batch finished for <see cref="ServerOptions.LoopStallMs"/>).
/// </summary>
internal sealed class HealthApi(NodeHost host) : Health.HealthBase
{
    public override Task<HealthCheckResponse> Check(HealthCheckRequest request, ServerCallContext context) =>
        Task.FromResult(new HealthCheckResponse { Status = Current() });

    public override async Task Watch(HealthCheckRequest request, IServerStreamWriter<HealthCheckResponse> responseStream, ServerCallContext context)
    {
        HealthCheckResponse.Types.ServingStatus? last = null;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
        try
        {
            do
            {
                var status = Current();
                if (status != last) await responseStream.WriteAsync(new HealthCheckResponse { Status = status }, context.CancellationToken);
                last = status;
            }
            while (await timer.WaitForNextTickAsync(context.CancellationToken));
        }
        catch (OperationCanceledException)
        {
        }
    }

    private HealthCheckResponse.Types.ServingStatus Current() =>
        host.Status.Leader != 0 && !host.IsLoopStalled ? HealthCheckResponse.Types.ServingStatus.Serving : HealthCheckResponse.Types.ServingStatus.NotServing;
}
