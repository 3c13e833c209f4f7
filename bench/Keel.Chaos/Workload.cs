using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using Keel.Linearizability;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.Chaos;

/// <summary>
/// One client call: which member, when (ms since the scenario's clock started), whether it succeeded, and if not, what
/// kind of failure (<see cref="Workload.ErrorKind"/>: "no leader", "leader changed", "deadline", ...).
/// </summary>
public readonly record struct CallRecord(int Member, long StartMs, long EndMs, bool Ok, string? Error = null);

/// <summary>
/// The bounded workload: <c>clientsPerMember</c> clients per member, each bound to its member, issuing linearizable gets,
/// puts of unique values and compare-and-swaps on a few register keys (recorded in a linearizability
/// <see cref="History{TInput,TOutput}"/>: a write that fails with anything but a definite refusal is pending: it may or
/// may not have taken effect), and puts of unique keys (every acknowledged one must be readable at the end). Each
/// call has a deadline; clients stop when the token is cancelled or the hard bound passes.
/// </summary>
public sealed class Workload
{
    private const string RegisterPrefix = "chaos/r/";
    /// <summary>The prefix of the unique-write keys.</summary>
    public const string UniquePrefix = "chaos/u/";
    private readonly ChaosCluster _cluster;
    private readonly Stopwatch _clock;
    private readonly History<KvInput, KvOutput> _history = new();
    private readonly ConcurrentQueue<CallRecord> _calls = new();
    private readonly ConcurrentDictionary<string, string> _acknowledged = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _lastSeen = new(StringComparer.Ordinal);
    private int _nextClientId;

    /// <summary>A workload over <paramref name="cluster"/>; times are read from <paramref name="clock"/>.</summary>
    public Workload(ChaosCluster cluster, Stopwatch clock)
    {
        _cluster = cluster;
        _clock = clock;
    }

    /// <summary>Clients per member.</summary>
    public int ClientsPerMember { get; init; } = 2;

    /// <summary>Register keys.</summary>
    public int Keys { get; init; } = 3;

    /// <summary>Deadline of each call.</summary>
    public TimeSpan CallTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Share of calls (percent) that are register gets; the rest of the mix keeps its proportions (puts, compare-and-swaps,
    /// unique writes 20:20:25). The planted stale-read self-test raises it so a cut-off member, whose writes can only
    /// time out, is certain to serve reads during the fault.
    /// </summary>
    public int ReadPercent { get; init; } = 35;

    /// <summary>Pause between a client's calls.</summary>
    public TimeSpan Think { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Planted bug for the harness's self-test: gets are serializable (served from the member's local state), so a
    /// member cut off from the leader returns stale values and the checker must find a violation.
    /// </summary>
    public bool SerializableReads { get; set; }

    /// <summary>The register history.</summary>
    public History<KvInput, KvOutput> History => _history;

    /// <summary>Every call.</summary>
    public IReadOnlyCollection<CallRecord> Calls => _calls;

    /// <summary>Acknowledged unique writes: key to value.</summary>
    public IReadOnlyDictionary<string, string> Acknowledged => _acknowledged;

    /// <summary>Runs every client until <paramref name="stop"/> is cancelled or <paramref name="hardBound"/> passes.</summary>
    public Task RunAsync(TimeSpan hardBound, CancellationToken stop)
    {
        var bounded = CancellationTokenSource.CreateLinkedTokenSource(stop);
        bounded.CancelAfter(hardBound);
        var clients = _cluster.Members.SelectMany(m => Enumerable.Range(0, ClientsPerMember).Select(c => ClientAsync(m, c, bounded.Token))).ToArray();
        return Task.WhenAll(clients).ContinueWith(_ => bounded.Dispose(), TaskScheduler.Default);
    }

    private int NewClientId() => Interlocked.Increment(ref _nextClientId);

    private async Task ClientAsync(ChaosMember member, int seed, CancellationToken stop)
    {
        await Task.Yield();
        var random = new Random(member.Index * 100 + seed);
        var clientId = NewClientId();
        var sequence = 0;
        while (!stop.IsCancellationRequested)
        {
            var key = RegisterPrefix + random.Next(Keys).ToString(CultureInfo.InvariantCulture);
            var value = $"c{clientId}-{++sequence}";
            // Writes split 20:20:25 (put, compare-and-swap, unique write) of whatever the gets leave.
            var writeRoll = random.Next(65);
            KvInput? input = random.Next(100) < ReadPercent ? KvInput.Get(key) : writeRoll switch
            {
                < 20 => KvInput.Put(key, value),
                < 40 => KvInput.Cas(key, _lastSeen.GetValueOrDefault(key, "none"), value),
                _ => null,
            };
            var start = _clock.ElapsedMilliseconds;
            var ok = false;
            string? error = null;
            try
            {
                var deadline = DateTime.UtcNow + CallTimeout;
                if (input is not { } op)
                {
                    var uniqueKey = $"{UniquePrefix}{member.Name}/{clientId}/{sequence}";
                    await member.Kv.PutAsync(new PutRequest { Key = ByteString.CopyFromUtf8(uniqueKey), Value = ByteString.CopyFromUtf8(value) }, deadline: deadline, cancellationToken: stop).ConfigureAwait(false);
                    _acknowledged[uniqueKey] = value;
                }
                else
                {
                    var output = await ExecuteAsync(member, op, deadline, SerializableReads, stop).ConfigureAwait(false);
                    var end = _clock.ElapsedMilliseconds + 1;
                    lock (_history) _history.AddCompleted(clientId, op, start, output, end);
                    if (output.Value is { } seen) _lastSeen[key] = seen;
                    if (op.Kind == KvOperationKind.Put || (op.Kind == KvOperationKind.CompareAndSwap && output.Succeeded)) _lastSeen[key] = op.Value!;
                }
                ok = true;
            }
            catch (RpcException e)
            {
                error = ErrorKind(e);
                if (input is { Kind: not KvOperationKind.Get } write && !IsDefiniteRefusal(e))
                {
                    // Unknown outcome: pending forever in the history; this client continues under a new id.
                    lock (_history) _history.AddPending(clientId, write, start);
                    clientId = NewClientId();
                }
            }
            _calls.Enqueue(new CallRecord(member.Index, start, _clock.ElapsedMilliseconds, ok, error));
            if (stop.IsCancellationRequested) break;
            try
            {
                await Task.Delay(ok ? Think : TimeSpan.FromMilliseconds(50), stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>
    /// A short name for a failed call's cause, for the per-error breakdown: etcd's error text without its
    /// "etcdserver: " prefix when the server sent one, otherwise the gRPC status (a deadline the client gave up on,
    /// an unreachable member).
    /// </summary>
    public static string ErrorKind(RpcException e)
    {
        var detail = e.Status.Detail ?? "";
        if (detail.StartsWith("etcdserver: ", StringComparison.Ordinal)) return detail["etcdserver: ".Length..];
        return e.StatusCode switch
        {
            StatusCode.DeadlineExceeded => "deadline",
            StatusCode.Unavailable => "unavailable",
            StatusCode.Cancelled => "cancelled",
            _ => e.StatusCode.ToString(),
        };
    }

    /// <summary>A refusal given before anything was proposed: "no leader" (etcd's ErrNoLeader), or a call cancelled
    /// before it was sent is not one; everything else (deadline, unavailable, leader changed, timeout) is unknown.</summary>
    private static bool IsDefiniteRefusal(RpcException e) =>
        e.Status.Detail.Contains("no leader", StringComparison.Ordinal);

    private static async Task<KvOutput> ExecuteAsync(ChaosMember member, KvInput op, DateTime deadline, bool serializable, CancellationToken stop)
    {
        var key = ByteString.CopyFromUtf8(op.Key);
        switch (op.Kind)
        {
            case KvOperationKind.Get:
                var range = await member.Kv.RangeAsync(new RangeRequest { Key = key, Serializable = serializable }, deadline: deadline, cancellationToken: stop).ConfigureAwait(false);
                return range.Kvs.Count == 0 ? KvOutput.NotFound : KvOutput.Found(range.Kvs[0].Value.ToStringUtf8());
            case KvOperationKind.Put:
                await member.Kv.PutAsync(new PutRequest { Key = key, Value = ByteString.CopyFromUtf8(op.Value!) }, deadline: deadline, cancellationToken: stop).ConfigureAwait(false);
                return KvOutput.Ok;
            default:
                var txn = new TxnRequest();
                txn.Compare.Add(new Compare { Key = key, Target = Compare.Types.CompareTarget.Value, Result = Compare.Types.CompareResult.Equal, Value = ByteString.CopyFromUtf8(op.Expected!) });
                txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = key, Value = ByteString.CopyFromUtf8(op.Value!) } });
                var response = await member.Kv.TxnAsync(txn, deadline: deadline, cancellationToken: stop).ConfigureAwait(false);
                return KvOutput.Cas(response.Succeeded);
        }
    }

    /// <summary>
    /// Reads every unique key back through each member with a linearizable range (retried until
    /// <paramref name="timeout"/>); returns the acknowledged writes missing or different, per member, and the members
    /// that never answered.
    /// </summary>
    public async Task<(int Lost, List<string> Problems)> VerifyAcknowledgedAsync(TimeSpan timeout)
    {
        var problems = new List<string>();
        var lost = 0;
        foreach (var member in _cluster.Members)
        {
            var clock = Stopwatch.StartNew();
            RangeResponse? range = null;
            while (range is null && clock.Elapsed < timeout)
            {
                try
                {
                    range = await member.Kv.RangeAsync(new RangeRequest { Key = ByteString.CopyFromUtf8(UniquePrefix), RangeEnd = ByteString.CopyFromUtf8("chaos/v") },
                        deadline: DateTime.UtcNow.AddSeconds(5)).ConfigureAwait(false);
                }
                catch (RpcException)
                {
                    await Task.Delay(100).ConfigureAwait(false);
                }
            }
            if (range is null)
            {
                problems.Add($"{member.Name} never answered the read-back");
                continue;
            }
            var present = range.Kvs.ToDictionary(kv => kv.Key.ToStringUtf8(), kv => kv.Value.ToStringUtf8(), StringComparer.Ordinal);
            var missing = _acknowledged.Where(a => !present.TryGetValue(a.Key, out var v) || v != a.Value).Select(a => a.Key).ToList();
            if (missing.Count > 0)
            {
                lost = Math.Max(lost, missing.Count);
                problems.Add($"{member.Name} lacks {missing.Count} acknowledged writes, e.g. {string.Join(", ", missing.Take(5))}");
            }
        }
        return (lost, problems);
    }
}
