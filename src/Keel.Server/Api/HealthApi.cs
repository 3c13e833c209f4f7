using Grpc.Core;
using Keel.Protocol.Health;
using Keel.Server.Hosting;

namespace Keel.Server.Api;

/// <summary>
/// The standard gRPC health service (<c>grpc.health.v1.Health</c>), which etcd also registers: SERVING while this
/// member knows a leader (it can serve linearizable requests), NOT_SERVING otherwise.
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
        host.Status.Leader != 0 ? HealthCheckResponse.Types.ServingStatus.Serving : HealthCheckResponse.Types.ServingStatus.NotServing;
}
