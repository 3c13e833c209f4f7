using System.Buffers.Binary;
using System.Diagnostics;
using Google.Protobuf;
using Grpc.Core;
using HdrHistogram;
using Keel.Protocol.Etcd.Etcdserverpb;

namespace Keel.LoadBench;

/// <summary>
/// Runs one <see cref="LoadSpec"/>: a closed loop per client (send, await the answer, send the next), as etcd's
/// benchmark clients do, until the request budget is spent or the time limit passes. Every request takes a sequence
/// number from one shared counter and writes its latency into its own slot of a preallocated array, so the hot path
/// takes no lock and the histogram is built once at the end.
/// </summary>
public static class LoadRunner
{
    private const long NotCompleted = -1;

    /// <summary>Runs the row against <paramref name="endpoints"/> (already resolved to the leader when targeted).</summary>
    public static async Task<RowResult> RunAsync(LoadSpec spec, IReadOnlyList<string> endpoints, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.Clients, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.Connections, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.Total, 1);
        using var pool = await ConnectionPool.OpenAsync(endpoints, spec.Connections, cancellationToken);
        var value = ByteString.CopyFrom(DeterministicBytes(spec.ValueSizeBytes));
        var keySpace = spec.KeySpace > 0 ? spec.KeySpace : long.MaxValue;
        var rangeKey = ByteString.CopyFromUtf8(spec.RangeKey);
        var isPut = spec.Operation == LoadOperation.Put;

        // Warm-up: untimed, into a key range of its own so the measured puts still write new keys.
        var warmupPerClient = (spec.WarmupRequests + spec.Clients - 1) / spec.Clients;
        var warmupClock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, spec.Clients).Select(async client =>
        {
            var kv = pool.KvFor(client);
            for (var i = 0; i < warmupPerClient || warmupClock.Elapsed < spec.WarmupDuration; i++)
            {
                try
                {
                    await Issue(spec, kv, isPut ? Key(spec.KeySizeBytes, long.MaxValue - client) : rangeKey, value, cancellationToken);
                }
                catch (RpcException) when (!cancellationToken.IsCancellationRequested)
                {
                    // A warm-up failure shows again, counted, in the measured phase.
                }
            }
        }));

        var latencyMicros = new long[spec.Total];
        Array.Fill(latencyMicros, NotCompleted);
        var errorsByCode = new long[Enum.GetValues<StatusCode>().Max(code => (int)code) + 2];
        var firstErrorByCode = new string?[errorsByCode.Length];
        long issued = 0, cut = 0;
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var allocatedBefore = await ServerAllocations.SampleAsync(spec.ServerMetricsEndpoints, cancellationToken);
        var serverCpuBefore = ServerCpu.Sample(spec.ServerPids);
        var clock = Stopwatch.StartNew();
        limit.CancelAfter(spec.TimeLimit);
        await Task.WhenAll(Enumerable.Range(0, spec.Clients).Select(client => Task.Run(async () =>
        {
            var kv = pool.KvFor(client);
            while (!limit.IsCancellationRequested)
            {
                var sequence = Interlocked.Increment(ref issued) - 1;
                if (sequence >= spec.Total) return;
                var key = isPut ? Key(spec.KeySizeBytes, sequence % keySpace) : rangeKey;
                var started = Stopwatch.GetTimestamp();
                try
                {
                    await Issue(spec, kv, key, value, limit.Token);
                    latencyMicros[sequence] = (long)Stopwatch.GetElapsedTime(started).TotalMicroseconds;
                }
                catch (Exception) when (limit.IsCancellationRequested)
                {
                    Interlocked.Increment(ref cut);
                    return;
                }
                catch (RpcException failure)
                {
                    Interlocked.Increment(ref errorsByCode[(int)failure.StatusCode]);
                    Interlocked.CompareExchange(ref firstErrorByCode[(int)failure.StatusCode], failure.Status.Detail, null);
                }
                catch (Exception failure)
                {
                    Interlocked.Increment(ref errorsByCode[^1]);
                    Interlocked.CompareExchange(ref firstErrorByCode[^1], failure.GetType().Name + ": " + failure.Message, null);
                }
            }
        }, CancellationToken.None)));
        clock.Stop();
        var clientCpu = Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
        var serverCpuAfter = ServerCpu.Sample(spec.ServerPids);
        var serverCpu = serverCpuBefore is { } before && serverCpuAfter is { } after ? after - before : (TimeSpan?)null;
        var allocatedAfter = await ServerAllocations.SampleAsync(spec.ServerMetricsEndpoints, cancellationToken);
        var allocated = allocatedBefore is { } a0 && allocatedAfter is { } a1 && a1 >= a0 ? a1 - a0 : (double?)null;
        cancellationToken.ThrowIfCancellationRequested();
        return Summarize(spec, latencyMicros, errorsByCode, firstErrorByCode, cut, clock.Elapsed, clientCpu, serverCpu) is var row && allocated is { } bytes && row.Succeeded > 0
            ? row with { ServerAllocatedBytesPerCall = Math.Round(bytes / row.Succeeded) }
            : row;
    }

    private static async Task Issue(LoadSpec spec, KV.KVClient kv, ByteString key, ByteString value, CancellationToken cancellationToken)
    {
        // gRPC deadlines are absolute wall-clock instants; this is host code, not a sans-I/O core.
        var deadline = DateTime.UtcNow + spec.CallTimeout;
        if (spec.Operation == LoadOperation.Put)
        {
            using var call = kv.PutAsync(new PutRequest { Key = key, Value = value }, deadline: deadline, cancellationToken: cancellationToken);
            await call.ResponseAsync.ConfigureAwait(false);
        }
        else
        {
            var request = new RangeRequest { Key = key, Serializable = !spec.Linearizable };
            using var call = kv.RangeAsync(request, deadline: deadline, cancellationToken: cancellationToken);
            await call.ResponseAsync.ConfigureAwait(false);
        }
    }

    /// <summary>The key of index <paramref name="index"/>: its big-endian bytes, truncated or zero-padded on the left
    /// to <paramref name="keySizeBytes"/> (etcd writes a varint into a key-size buffer; the point is the same: short
    /// distinct keys of a fixed size).</summary>
    public static ByteString Key(int keySizeBytes, long index)
    {
        Span<byte> full = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(full, index);
        var key = new byte[keySizeBytes];
        var copied = Math.Min(8, keySizeBytes);
        full[(8 - copied)..].CopyTo(key.AsSpan(keySizeBytes - copied));
        return UnsafeByteOperations.UnsafeWrap(key);
    }

    /// <summary>A fixed pseudo-random value (xorshift from a constant seed): the same bytes for every system measured.</summary>
    public static byte[] DeterministicBytes(int length)
    {
        var bytes = new byte[length];
        ulong state = 0x9E3779B97F4A7C15UL;
        for (var i = 0; i < length; i++)
        {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes[i] = (byte)('a' + (int)(state % 26));
        }
        return bytes;
    }

    private static RowResult Summarize(LoadSpec spec, long[] latencyMicros, long[] errorsByCode, string?[] firstErrorByCode, long cut, TimeSpan elapsed, TimeSpan clientCpu, TimeSpan? serverCpu)
    {
        var histogram = new LongHistogram(highestTrackableValue: 3_600_000_000L, numberOfSignificantValueDigits: 3);
        foreach (var micros in latencyMicros)
        {
            if (micros != NotCompleted) histogram.RecordValue(Math.Max(1, micros));
        }
        var errors = new SortedDictionary<string, long>(StringComparer.Ordinal);
        var samples = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (var code = 0; code < errorsByCode.Length; code++)
        {
            if (errorsByCode[code] == 0) continue;
            var name = code == errorsByCode.Length - 1 ? "Transport" : ((StatusCode)code).ToString();
            errors[name] = errorsByCode[code];
            samples[name] = firstErrorByCode[code] ?? "";
        }
        var succeeded = histogram.TotalCount;
        static double Ms(double micros) => Math.Round(micros / 1000.0, 3);
        return new RowResult
        {
            Name = spec.Name,
            Operation = spec.Operation == LoadOperation.Put ? "put" : spec.Linearizable ? "range-l" : "range-s",
            Clients = spec.Clients,
            Connections = spec.Connections,
            TargetLeader = spec.TargetLeader,
            Total = spec.Total,
            Succeeded = succeeded,
            Errors = errors.Values.Sum(),
            CutByTimeLimit = cut,
            ErrorsByCode = errors,
            FirstErrorByCode = samples,
            ElapsedSeconds = Math.Round(elapsed.TotalSeconds, 3),
            ThroughputPerSecond = Math.Round(succeeded / elapsed.TotalSeconds, 1),
            MeanMs = succeeded == 0 ? 0 : Ms(histogram.GetMean()),
            P50Ms = succeeded == 0 ? 0 : Ms(histogram.GetValueAtPercentile(50)),
            P90Ms = succeeded == 0 ? 0 : Ms(histogram.GetValueAtPercentile(90)),
            P99Ms = succeeded == 0 ? 0 : Ms(histogram.GetValueAtPercentile(99)),
            P999Ms = succeeded == 0 ? 0 : Ms(histogram.GetValueAtPercentile(99.9)),
            MaxMs = succeeded == 0 ? 0 : Ms(histogram.GetMaxValue()),
            ClientCpuCores = Math.Round(clientCpu.TotalSeconds / elapsed.TotalSeconds, 2),
            ServerCpuCores = serverCpu is { } cpu ? Math.Round(cpu.TotalSeconds / elapsed.TotalSeconds, 2) : null,
            ServerCpuMicrosPerCall = serverCpu is { } perCall && succeeded > 0 ? Math.Round(perCall.TotalMicroseconds / succeeded, 1) : null,
        };
    }
}
