using Keel.Server.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Keel.Server.Observability;

/// <summary>
/// etcd 3.5's HTTP health endpoints, usable as load-balancer checks and Kubernetes probes: <c>/health</c> answers
/// <c>{"health":"true"}</c> (or "false" with a reason and status 503), <c>/livez</c> says whether the process and its
/// node loop are alive, <c>/readyz</c> whether the member can serve: a leader is known, no alarm is active and the loop
/// is not stalled.
/// </summary>
public static class HttpHealth
{
    /// <summary>Why this member is not ready, or null when it is.</summary>
    public static string? NotReadyReason(NodeHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        if (host.IsLoopStalled) return "the node loop is stalled";
        if (host.Status.Leader == 0) return "no leader";
        if (host.Status.Alarms.Count > 0) return "alarm " + string.Join(", ", host.Status.Alarms.Select(a => $"{a.Alarm.ToString().ToUpperInvariant()} on {a.MemberId:x16}"));
        return null;
    }

    /// <summary>Maps <c>/health</c>, <c>/livez</c> and <c>/readyz</c>.</summary>
    public static void Map(IEndpointRouteBuilder endpoints, NodeHost host)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapGet("/health", (HttpContext context) =>
        {
            var reason = NotReadyReason(host);
            context.Response.StatusCode = reason is null ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
            return Results.Json(reason is null ? new HealthBody("true", "") : new HealthBody("false", reason), statusCode: context.Response.StatusCode);
        });
        endpoints.MapGet("/livez", () => host.IsLoopStalled
            ? Results.Text("livez check failed: the node loop is stalled\n", statusCode: StatusCodes.Status503ServiceUnavailable)
            : Results.Text("ok\n"));
        endpoints.MapGet("/readyz", () => NotReadyReason(host) is { } reason
            ? Results.Text($"readyz check failed: {reason}\n", statusCode: StatusCodes.Status503ServiceUnavailable)
            : Results.Text("ok\n"));
    }

    private sealed record HealthBody(string health, string reason);
}
