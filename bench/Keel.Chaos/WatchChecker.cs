using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Chaos;

/// <summary>
/// One watch per member on the unique-write prefix, from the revision the scenario starts at. A broken stream is
/// re-created (after 100 ms) from the last revision seen + 1, as etcd's clients do. Checks: revisions strictly increase
/// on each member's watch across reconnects (in order, no duplicate), and at the end every acknowledged unique write
/// arrives on every member's watch (no gap), waited for with a deadline.
/// </summary>
public sealed class WatchChecker(ChaosCluster cluster)
{
    private readonly Dictionary<string, string>[] _seen = cluster.Members.Select(_ => new Dictionary<string, string>(StringComparer.Ordinal)).ToArray();
    private readonly List<string> _disorder = [];

    /// <summary>Descriptions of out-of-order or duplicate events.</summary>
    public IReadOnlyList<string> Disorder => _disorder;

    /// <summary>Watches until <paramref name="stop"/> is cancelled.</summary>
    public Task RunAsync(CancellationToken stop) => Task.WhenAll(cluster.Members.Select(m => WatchAsync(m, stop)));

    private async Task WatchAsync(ChaosMember member, CancellationToken stop)
    {
        long last = 0;
        var seen = _seen[member.Index];
        var watch = new Watch.WatchClient(member.Channel!);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var call = watch.Watch(cancellationToken: stop);
                await call.RequestStream.WriteAsync(new WatchRequest
                {
                    CreateRequest = new WatchCreateRequest
                    {
                        Key = ByteString.CopyFromUtf8(Workload.UniquePrefix),
                        RangeEnd = ByteString.CopyFromUtf8("chaos/v"),
                        StartRevision = last + 1,
                    },
                }, stop).ConfigureAwait(false);
                await foreach (var response in call.ResponseStream.ReadAllAsync(stop).ConfigureAwait(false))
                {
                    if (response.CompactRevision != 0 || response.Canceled)
                    {
                        lock (_disorder) _disorder.Add($"{member.Name}: watch canceled ({response.CancelReason}, compact revision {response.CompactRevision})");
                        break;
                    }
                    foreach (var e in response.Events)
                    {
                        var revision = e.Kv.ModRevision;
                        if (revision <= last)
                            lock (_disorder) _disorder.Add(string.Create(CultureInfo.InvariantCulture, $"{member.Name}: revision {revision} after {last} ({e.Kv.Key.ToStringUtf8()})"));
                        last = Math.Max(last, revision);
                        lock (seen) seen[e.Kv.Key.ToStringUtf8()] = e.Kv.Value.ToStringUtf8();
                    }
                }
            }
            catch (RpcException) { }
            catch (OperationCanceledException) { break; }
            try { await Task.Delay(100, stop).ConfigureAwait(false); }
            catch (OperationCanceledException) { break; }
        }
    }

    /// <summary>
    /// Waits (up to <paramref name="timeout"/>) until each member's watch has delivered every acknowledged write; returns
    /// the largest number still missing on a member.
    /// </summary>
    public async Task<(int Gaps, List<string> Problems)> AwaitAllAsync(IReadOnlyDictionary<string, string> acknowledged, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var missing = _seen.Select(seen =>
            {
                lock (seen) return acknowledged.Keys.Where(k => !seen.ContainsKey(k)).ToList();
            }).ToArray();
            if (missing.All(m => m.Count == 0) || clock.Elapsed > timeout)
            {
                var problems = missing.Select((m, i) => (m, i)).Where(x => x.m.Count > 0)
                    .Select(x => $"watch on n{x.i + 1} never delivered {x.m.Count} acknowledged writes, e.g. {string.Join(", ", x.m.Take(3))}").ToList();
                lock (_disorder) problems.AddRange(_disorder.Take(5).Select(d => "watch order: " + d));
                return (missing.Max(m => m.Count), problems);
            }
            await Task.Delay(100).ConfigureAwait(false);
        }
    }
}
