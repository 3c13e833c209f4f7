using Grpc.Core;
using Grpc.Net.Client;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.LoadBench;

/// <summary>What Maintenance.Status says about a cluster: which endpoint is the leader, and the server version.</summary>
/// <param name="LeaderEndpoint">The endpoint whose member id is the leader every endpoint reports.</param>
/// <param name="Version">The version string the leader reports.</param>
public sealed record ClusterStatus(string LeaderEndpoint, string Version);

/// <summary>
/// Finds the leader as etcd's benchmark does for --target-leader (tools/benchmark/cmd/util.go,
/// mustFindLeaderEndpoints): ask every endpoint for Maintenance.Status and pick the one whose own member id equals
/// the leader id it reports. Also serves as the readiness check of the script: ready means every endpoint answers
/// and all agree on one leader.
/// </summary>
public static class ClusterProbe
{
    /// <summary>One probe: the status if every endpoint answered and all named the same leader, else null.</summary>
    public static async Task<ClusterStatus?> TryGetStatusAsync(IReadOnlyList<string> endpoints, CancellationToken cancellationToken)
    {
        string? leaderEndpoint = null, version = null;
        ulong? leaderId = null;
        foreach (var endpoint in endpoints)
        {
            using var channel = ConnectionPool.CreateChannel(endpoint);
            var maintenance = new Maintenance.MaintenanceClient(channel);
            StatusResponse status;
            try
            {
                status = await maintenance.StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(2),
                    cancellationToken: cancellationToken);
            }
            catch (RpcException)
            {
                return null;
            }
            if (status.Leader == 0) return null;
            if (leaderId is { } agreed && agreed != status.Leader) return null;
            leaderId = status.Leader;
            if (status.Header.MemberId == status.Leader)
            {
                leaderEndpoint = endpoint;
                version = status.Version;
            }
        }
        return leaderEndpoint is null ? null : new ClusterStatus(leaderEndpoint, version ?? "");
    }

    /// <summary>Probes until the cluster is ready or the timeout passes.</summary>
    public static async Task<ClusterStatus?> WaitReadyAsync(IReadOnlyList<string> endpoints, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            while (true)
            {
                var status = await TryGetStatusAsync(endpoints, limit.Token);
                if (status is not null) return status;
                await Task.Delay(200, limit.Token);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }
}
