using System.Globalization;
using System.Text;
using Keel.HybridClock;
using Keel.Mvcc;
using Keel.Node;
using Keel.Server.Api;
using Keel.Server.Hosting;
using Keel.Server.Observability;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Keel.Server.Dashboard;

/// <summary>
/// The dashboard every member serves at <c>/ui</c>: static assets embedded in this assembly (no CDN: it works offline)
/// and a JSON API under <c>/ui/api/</c>. Every read of node state runs on the node loop (<see cref="NodeHost.InvokeAsync{T}"/>)
/// and is serializable: each member shows its own view, so the page still answers on a member that lost its leader.
/// </summary>
/// <remarks>
/// Keys and values are arbitrary bytes: the API sends them as display text (printable ASCII as is, other bytes as
/// <c>\xNN</c>) plus base64 for round trips, and the page only ever sets <c>textContent</c>, never HTML.
/// </remarks>
public static class DashboardEndpoints
{
    private const int MaxKeys = 500;
    private const int MaxHistory = 200;
    private const int MaxLeases = 200;
    private const int MaxValueChars = 200;

    /// <summary>Maps <c>/ui</c>, its assets and <c>/ui/api/*</c>.</summary>
    public static void Map(IEndpointRouteBuilder endpoints, NodeHost host, GossipHost gossip, ServerTelemetry telemetry)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(gossip);
        ArgumentNullException.ThrowIfNull(telemetry);
        // Routing ignores a trailing slash: this serves both /ui and /ui/ (the page links its assets absolutely).
        endpoints.MapGet("/ui", () => Asset("index.html"));
        endpoints.MapGet("/ui/{file}", (string file) => Asset(file));
        endpoints.MapGet("/ui/api/overview", () => OverviewAsync(host, gossip, telemetry));
        endpoints.MapGet("/ui/api/samples", () => Results.Json(telemetry.Samples()));
        endpoints.MapGet("/ui/api/leases", () => LeasesAsync(host));
        endpoints.MapGet("/ui/api/keys", (string? prefix, long? at, int? limit) => KeysAsync(host, prefix, at, limit));
        endpoints.MapGet("/ui/api/history", (string? key) => HistoryAsync(host, key));
    }

    private static IResult Asset(string file)
    {
        var stream = typeof(DashboardEndpoints).Assembly.GetManifestResourceStream("Keel.Dashboard." + file);
        if (stream is null) return Results.NotFound();
        var type = Path.GetExtension(file) switch
        {
            ".html" => "text/html; charset=utf-8",
            ".js" => "text/javascript; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            ".svg" => "image/svg+xml",
            _ => "application/octet-stream",
        };
        return Results.Stream(stream, type);
    }

    private static string Hex(ulong id) => id.ToString("x16", CultureInfo.InvariantCulture);

    private static async Task<IResult> OverviewAsync(NodeHost host, GossipHost gossip, ServerTelemetry telemetry)
    {
        var status = host.Status;
        NodeSample sample;
        try
        {
            sample = await host.InvokeAsync(NodeSample.Take).WaitAsync(TimeSpan.FromSeconds(2));
        }
        catch (Exception exception) when (exception is TimeoutException or Grpc.Core.RpcException)
        {
            // A stalled loop: show the last sample rather than nothing.
            sample = telemetry.Latest;
        }
        var progress = sample.Followers.ToDictionary(f => f.Id);
        var gossiped = gossip.Agent?.Members ?? [];
        var members = sample.Members.Select(m =>
        {
            progress.TryGetValue(m.Id, out var p);
            var endpoints = m.PeerUrls.Select(u => Uri.TryCreate(u, UriKind.Absolute, out var url) ? GossipHost.TryEndpointOf(url) : null).ToArray();
            var seen = gossiped.FirstOrDefault(g => endpoints.Any(e => e is not null && e.Equals(g.Endpoint)));
            return new MemberView(Hex(m.Id), m.Name, m.PeerUrls, m.ClientUrls, m.IsLearner, m.Id == status.Leader, m.Id == host.MemberId,
                p?.Match, p is null ? null : (long)status.CommitIndex - (long)p.Match, p?.State, p?.RecentActive,
                seen.Endpoint is null ? null : seen.Status.ToString().ToLowerInvariant());
        }).ToArray();
        var gossip_ = gossiped.OrderBy(g => g.Endpoint.ToString(), StringComparer.Ordinal).Select(g => new GossipView(
            Hex(g.Id), g.Endpoint.ToString(), g.Status.ToString().ToLowerInvariant(), g.Health.ToString().ToLowerInvariant(),
            double.IsFinite(g.Phi) ? Math.Round(g.Phi, 2) : null, g.Zone, g.Incarnation, g.Tags?.Role ?? "")).ToArray();
        var reason = HttpHealth.NotReadyReason(host);
        return Results.Json(new Overview(Hex(host.MemberId), host.Options.Name, Hex(host.ClusterId), Hex(status.Leader), status.Leader == host.MemberId,
            status.Term, status.Revision, status.CompactRevision, status.CommitIndex, status.AppliedIndex, sample.LastIndex,
            status.StoreSizeBytes, status.KeyCount, reason is null, reason, gossip.Agent is not null, members, gossip_,
            DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
    }

    private static async Task<IResult> LeasesAsync(NodeHost host)
    {
        var leases = await host.InvokeAsync(node =>
        {
            var ids = node.Leases();
            return ids.Take(MaxLeases).Select(id =>
            {
                var answer = node.LeaseTimeToLive(id, includeKeys: true);
                return new LeaseView(id.ToString("x", CultureInfo.InvariantCulture), answer.TtlSeconds, answer.GrantedTtlSeconds, answer.FencingToken,
                    answer.Keys.Take(50).Select(k => KeyView.Of(k)).ToArray(), answer.Keys.Count);
            }).ToArray();
        });
        return Results.Json(leases);
    }

    private static async Task<IResult> KeysAsync(NodeHost host, string? prefix64, long? atUnixMs, int? limit)
    {
        byte[] prefix;
        try
        {
            prefix = string.IsNullOrEmpty(prefix64) ? [] : Convert.FromBase64String(prefix64);
        }
        catch (FormatException)
        {
            return Results.BadRequest(new ErrorView("prefix must be base64"));
        }
        var max = Math.Clamp(limit ?? 100, 1, MaxKeys);
        return await host.InvokeAsync(node =>
        {
            var store = node.Store;
            var revision = store.CurrentRevision;
            if (atUnixMs is { } at)
            {
                try
                {
                    revision = store.RevisionAt((long)new HybridTimestamp(Math.Max(0, at), HybridTimestamp.MaxLogical).Raw);
                }
                catch (MvccException)
                {
                    return Results.BadRequest(new ErrorView($"that time is before the compaction point (revision {store.CompactRevision}): its history is gone"));
                }
            }
            var oldest = Math.Max(2, store.CompactRevision);
            var oldestMs = store.CurrentRevision >= oldest ? store.TimestampPhysicalMsOrZero(oldest) : 0;
            if (revision <= 1)
                return Results.Json(new KeysView(revision, store.CurrentRevision, oldestMs, 0, [], false, 0));
            var range = store.Range(new RangeRequest
            {
                Key = prefix.Length == 0 ? [0] : prefix,
                RangeEnd = prefix.Length == 0 ? [0] : KeyRanges.PrefixEnd(prefix),
                Revision = revision,
                Limit = max,
            });
            var kvs = range.Kvs.Select(kv => new KeyValueView(KeyView.Of(kv.Key), Display(kv.Value, MaxValueChars), kv.ValueLength,
                kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease.ToString("x", CultureInfo.InvariantCulture), Time(store, kv.ModRevision))).ToArray();
            return Results.Json(new KeysView(revision, store.CurrentRevision, oldestMs, store.TimestampPhysicalMsOrZero(revision), kvs, range.More, range.Count));
        });
    }

    private static async Task<IResult> HistoryAsync(NodeHost host, string? key64)
    {
        byte[] key;
        try
        {
            key = Convert.FromBase64String(key64 ?? "");
        }
        catch (FormatException)
        {
            return Results.BadRequest(new ErrorView("key must be base64"));
        }
        if (key.Length == 0) return Results.BadRequest(new ErrorView("key is required"));
        return await host.InvokeAsync(node =>
        {
            var store = node.Store;
            var from = Math.Max(2, store.CompactRevision);
            var events = store.CurrentRevision < from ? [] : store.Events(from, key, [], store.CurrentRevision);
            var changes = events.Reverse().Take(MaxHistory).Select(e => new ChangeView(
                e.Type == EventType.Put ? "put" : "delete", e.Kv.ModRevision, e.Type == EventType.Put ? e.Kv.Version : 0,
                e.Type == EventType.Put ? Display(e.Kv.Value, MaxValueChars) : "", e.Kv.Lease.ToString("x", CultureInfo.InvariantCulture),
                Time(store, e.Kv.ModRevision))).ToArray();
            return Results.Json(new HistoryView(KeyView.Of(key), store.CompactRevision, changes, events.Count > MaxHistory));
        });
    }

    private static TimeView? Time(MvccStore store, long revision)
    {
        if (revision < 2) return null;
        try
        {
            var timestamp = HybridTimestamp.FromRaw((ulong)store.TimestampOf(revision));
            return new TimeView(timestamp.PhysicalMs, timestamp.Logical);
        }
        catch (MvccException)
        {
            return null;
        }
    }

    /// <summary>Printable ASCII as is, other bytes as \xNN (valid UTF-8 text beyond ASCII is shown as text too).</summary>
    internal static string Display(ReadOnlySpan<byte> bytes, int maxChars = int.MaxValue)
    {
        var text = new StringBuilder();
        string? decoded = null;
        try
        {
            decoded = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
        }
        if (decoded is not null)
        {
            foreach (var rune in decoded.EnumerateRunes())
            {
                if (text.Length >= maxChars) return text.Append('…').ToString();
                if (Rune.IsControl(rune) || rune.Value == '\\') AppendEscaped(text, rune);
                else text.Append(rune.ToString());
            }
            return text.ToString();
        }
        foreach (var b in bytes)
        {
            if (text.Length >= maxChars) return text.Append('…').ToString();
            if (b is >= 0x20 and < 0x7f && b != (byte)'\\') text.Append((char)b);
            else text.Append("\\x").Append(b.ToString("x2", CultureInfo.InvariantCulture));
        }
        return text.ToString();
    }

    private static void AppendEscaped(StringBuilder text, Rune rune)
    {
        Span<byte> utf8 = stackalloc byte[4];
        var length = rune.EncodeToUtf8(utf8);
        foreach (var b in utf8[..length]) text.Append("\\x").Append(b.ToString("x2", CultureInfo.InvariantCulture));
    }

    private sealed record Overview(string Id, string Name, string ClusterId, string Leader, bool IsLeader, ulong Term, long Revision,
        long CompactRevision, ulong CommitIndex, ulong AppliedIndex, ulong LastIndex, long StoreSizeBytes, int KeyCount, bool Ready,
        string? NotReadyReason, bool GossipJoined, MemberView[] Members, GossipView[] Gossip, long ServerUnixMs);

    private sealed record MemberView(string Id, string Name, IReadOnlyList<string> PeerUrls, IReadOnlyList<string> ClientUrls, bool IsLearner,
        bool IsLeader, bool IsSelf, ulong? Match, long? Lag, string? Progress, bool? Active, string? GossipState);

    private sealed record GossipView(string Id, string Address, string State, string Health, double? Phi, string Zone, long Incarnation, string Role);

    private sealed record LeaseView(string Id, long Ttl, long GrantedTtl, ulong FencingToken, KeyView[] Keys, int KeyCount);

    private sealed record KeysView(long Revision, long CurrentRevision, long OldestUnixMs, long RevisionUnixMs, KeyValueView[] Kvs, bool More, long Count);

    private sealed record KeyValueView(KeyView Key, string Value, int ValueBytes, long CreateRevision, long ModRevision, long Version, string Lease, TimeView? Time);

    private sealed record HistoryView(KeyView Key, long CompactRevision, ChangeView[] Changes, bool More);

    private sealed record ChangeView(string Type, long Revision, long Version, string Value, string Lease, TimeView? Time);

    private sealed record TimeView(long UnixMs, int Logical);

    private sealed record ErrorView(string Error);

    private sealed record KeyView(string Text, string Base64)
    {
        public static KeyView Of(byte[] key) => new(Display(key), Convert.ToBase64String(key));
    }
}
