using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Chaos;

/// <summary>
/// Leases must never expire early, also when one member's wall clock jumps: about once a second a lease with a short
/// TTL is granted (through the members in turn) and a key attached to it; linearizable gets then poll the key. A key
/// found missing by a get that returned before the grant call started + TTL is an early expiry (a violation); a key
/// still present long after its TTL (a leader change legitimately extends leases by up to a TTL) is counted as late.
/// </summary>
public sealed class LeaseChecker(ChaosCluster cluster, Stopwatch clock)
{
    private const int TtlSeconds = 3;
    private static readonly TimeSpan LateBound = TimeSpan.FromSeconds(TtlSeconds * 2 + 10);
    private readonly List<string> _early = [];
    private int _checked;
    private int _late;

    /// <summary>Leases whose expiry was observed (or found late).</summary>
    public int Checked => _checked;

    /// <summary>Descriptions of early expiries.</summary>
    public IReadOnlyList<string> Early => _early;

    /// <summary>Leases still alive after TTL + slack.</summary>
    public int Late => _late;

    /// <summary>Grants and watches leases until <paramref name="stop"/> is cancelled; each lease is followed to its end.</summary>
    public async Task RunAsync(CancellationToken stop)
    {
        var followers = new List<Task>();
        for (var n = 0; !stop.IsCancellationRequested; n++)
        {
            followers.Add(OneAsync(n, stop));
            try { await Task.Delay(1000, stop).ConfigureAwait(false); }
            catch (OperationCanceledException) { break; }
        }
        await Task.WhenAll(followers).ConfigureAwait(false);
    }

    private async Task OneAsync(int n, CancellationToken stop)
    {
        var member = cluster.Members[n % cluster.Members.Count];
        var key = ByteString.CopyFromUtf8("chaos/lease/" + n.ToString(CultureInfo.InvariantCulture));
        var grantStart = clock.Elapsed;
        try
        {
            var lease = await member.Lease.LeaseGrantAsync(new LeaseGrantRequest { TTL = TtlSeconds }, deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: stop).ConfigureAwait(false);
            await member.Kv.PutAsync(new PutRequest { Key = key, Value = ByteString.CopyFromUtf8("x"), Lease = lease.ID }, deadline: DateTime.UtcNow.AddSeconds(1), cancellationToken: stop).ConfigureAwait(false);
        }
        catch (RpcException)
        {
            return; // not granted, or the key's attachment is unknown: nothing to check
        }
        // Follow the lease to its end even after the workload stops (bounded by LateBound).
        while (clock.Elapsed - grantStart < LateBound)
        {
            foreach (var reader in cluster.Members)
            {
                try
                {
                    var range = await reader.Kv.RangeAsync(new RangeRequest { Key = key }, deadline: DateTime.UtcNow.AddSeconds(1)).ConfigureAwait(false);
                    var returned = clock.Elapsed;
                    if (range.Kvs.Count == 0)
                    {
                        var lived = returned - grantStart;
                        Interlocked.Increment(ref _checked);
                        if (lived < TimeSpan.FromSeconds(TtlSeconds))
                            lock (_early) _early.Add(string.Create(CultureInfo.InvariantCulture, $"lease {n} (TTL {TtlSeconds} s) gone after {lived.TotalMilliseconds:F0} ms (read via {reader.Name})"));
                        return;
                    }
                    break;
                }
                catch (RpcException)
                {
                    // try the next member
                }
            }
            await Task.Delay(100).ConfigureAwait(false);
        }
        Interlocked.Increment(ref _checked);
        Interlocked.Increment(ref _late);
    }
}
