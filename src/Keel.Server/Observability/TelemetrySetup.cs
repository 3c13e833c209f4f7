using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Keel.Server.Observability;

/// <summary>Wires a server's <see cref="ServerTelemetry"/> into OpenTelemetry: the Prometheus scrape endpoint and, when asked, traces.</summary>
public static class TelemetrySetup
{
    /// <summary>
    /// The environment variable that turns tracing on: <c>console</c> writes spans to stdout, <c>otlp</c> sends them
    /// with OTLP to <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> (default http://localhost:4317). Off when unset: spans cost
    /// nothing while no listener samples them.
    /// </summary>
    public const string TracingEnvironmentVariable = "KEEL_TRACING";

    /// <summary>Registers this server's meter provider (and tracer provider if enabled) in its own service container.</summary>
    public static void AddTo(IServiceCollection services, ServerTelemetry telemetry, string memberName)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(telemetry);
        services.AddSingleton(telemetry);
        var otel = services.AddOpenTelemetry().ConfigureResource(r => r.AddService("keel", serviceInstanceId: memberName));
        otel.WithMetrics(metrics => metrics
            .AddMeter(telemetry.MeterName)
            .AddPrometheusExporter(o =>
            {
                // Names exactly as etcd's: the instruments already carry etcd's full names (with _total, _seconds), so
                // the exporter must not append unit or type suffixes, nor add scope labels or a target_info family.
                o.TranslationStrategy = PrometheusAspNetCoreTranslationStrategy.UnderscoreEscapingWithoutSuffixes;
                o.ScopeInfoEnabled = false;
                o.TargetInfoEnabled = false;
                // Scrapes see current values (the default caches a response for 300 ms).
                o.ScrapeResponseCacheDurationMilliseconds = 0;
            }));
        var tracing = Environment.GetEnvironmentVariable(TracingEnvironmentVariable)?.Trim().ToLowerInvariant();
        if (tracing is "console" or "otlp")
        {
            otel.WithTracing(traces =>
            {
                // ASP.NET Core's request span is the parent of each RPC span; sampling everything is what the operator
                // asked for by turning tracing on (the default parent-based sampler would drop RPC spans whose
                // unsampled parent nobody listens to).
                traces.AddSource(ServerTelemetry.Tracing.Name, "Microsoft.AspNetCore");
                traces.SetSampler(new AlwaysOnSampler());
                if (tracing == "console") traces.AddConsoleExporter();
                else traces.AddOtlpExporter();
            });
        }
    }

    /// <summary>Maps <c>/metrics</c> (Prometheus text format) on every listener.</summary>
    public static void MapMetrics(IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        endpoints.MapPrometheusScrapingEndpoint("/metrics");
    }
}
