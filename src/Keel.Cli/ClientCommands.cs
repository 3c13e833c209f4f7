using System.CommandLine;
using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Keel.Protocol;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Protocol.V1;

namespace Keel.Cli;

/// <summary>
/// The client side of Keel's extensions to etcd, for the things etcdctl cannot ask for:
/// <c>./keel put KEY VALUE --idempotency-key K</c> (a retry returns the first answer and changes nothing),
/// <c>./keel get KEY [--prefix] [--at-time TIME]</c> (a read as of a wall-clock time) and
/// <c>./keel changes --from TIME --to TIME [KEY --prefix]</c> (every change in a time window, with its time).
/// Output follows etcdctl's simple format (key line, value line).
/// </summary>
internal static class ClientCommands
{
    private static readonly Option<string> Endpoints = new("--endpoints")
    {
        Description = "Comma-separated endpoints (host:port or URL); the first that answers is used.",
        DefaultValueFactory = _ => "127.0.0.1:2379",
    };

    private static readonly CliConnection Security = new();

    private static readonly Option<string> WriteOut = new("--write-out", "-w")
    {
        Description = "Output format: simple (default), json (etcdctl's JSON: header fields, base64 keys and values) or table.",
        DefaultValueFactory = _ => "simple",
    };

    private static readonly Option<string> DialTimeout = new("--dial-timeout")
    {
        Description = "Timeout for connecting to an endpoint (Go duration, as etcdctl: 2s, 500ms).",
        DefaultValueFactory = _ => "2s",
    };

    private static readonly Option<string> CommandTimeout = new("--command-timeout")
    {
        Description = "Timeout for the command, excluding the dial (Go duration, as etcdctl: 5s).",
        DefaultValueFactory = _ => "5s",
    };

    public static IEnumerable<Command> Create()
    {
        yield return Put();
        yield return Get();
        yield return Changes();
    }

    private static Command Put()
    {
        var key = new Argument<string>("key");
        var value = new Argument<string>("value");
        var idempotencyKey = new Option<string?>("--idempotency-key") { Description = "A client-chosen key: a retry with it returns the first response instead of writing again." };
        var command = Security.AddTo(new Command("put", "Put a key (etcdctl put, plus --idempotency-key).") { key, value, idempotencyKey, Endpoints, WriteOut, DialTimeout, CommandTimeout });
        command.SetAction(async (parse, cancellation) => await Call(parse, cancellation, async (channel, cancellation) =>
        {
            var format = Format(parse);
            var headers = new Metadata();
            if (parse.GetValue(idempotencyKey) is { } idempotency) headers.Add(KeelMetadata.IdempotencyKey, idempotency);
            var response = await new KV.KVClient(channel).PutAsync(new PutRequest
            {
                Key = ByteString.CopyFromUtf8(parse.GetValue(key)!),
                Value = ByteString.CopyFromUtf8(parse.GetValue(value)!),
            }, headers, cancellationToken: cancellation);
            switch (format)
            {
                case "json":
                    Console.WriteLine(EtcdctlJson.Put(response));
                    break;
                case "table":
                    EtcdctlJson.WriteTable(["REVISION"], [[response.Header.Revision.ToString(CultureInfo.InvariantCulture)]]);
                    break;
                default:
                    Console.WriteLine("OK");
                    Console.Error.WriteLine($"revision {response.Header.Revision}");
                    break;
            }
        }));
        return command;
    }

    private static Command Get()
    {
        var key = new Argument<string>("key");
        var prefix = new Option<bool>("--prefix") { Description = "Get every key with this prefix." };
        var atTime = new Option<string?>("--at-time") { Description = "Read as of this wall-clock time (ISO 8601, e.g. 2026-11-26T14:00:00Z, or Unix milliseconds)." };
        var command = Security.AddTo(new Command("get", "Get keys (etcdctl get, plus --at-time).") { key, prefix, atTime, Endpoints, WriteOut, DialTimeout, CommandTimeout });
        command.SetAction(async (parse, cancellation) => await Call(parse, cancellation, async (channel, cancellation) =>
        {
            var format = Format(parse);
            var keyBytes = ByteString.CopyFromUtf8(parse.GetValue(key)!);
            var rangeEnd = parse.GetValue(prefix) ? ByteString.CopyFrom(PrefixEnd(keyBytes.ToByteArray())) : ByteString.Empty;
            if (parse.GetValue(atTime) is { } text)
            {
                var at = ParseTime(text);
                var response = await new KeelService.KeelServiceClient(channel).ReadAtAsync(
                    new ReadAtRequest { Key = keyBytes, RangeEnd = rangeEnd, AtUnixMs = at }, cancellationToken: cancellation);
                Console.Error.WriteLine($"as of {DateTimeOffset.FromUnixTimeMilliseconds(at):O}: revision {response.ResolvedRevision}");
                Print(format, response.Header, response.Kvs, response.Count, response.More);
                return;
            }
            var range = await new KV.KVClient(channel).RangeAsync(new RangeRequest { Key = keyBytes, RangeEnd = rangeEnd }, cancellationToken: cancellation);
            Print(format, range.Header, range.Kvs, range.Count, range.More);
        }));
        return command;
    }

    private static Command Changes()
    {
        var key = new Argument<string>("key") { Arity = ArgumentArity.ZeroOrOne, Description = "Key or prefix (default: every key)." };
        var prefix = new Option<bool>("--prefix") { Description = "Every key with this prefix." };
        var from = new Option<string>("--from") { Required = true, Description = "Start of the window (ISO 8601 or Unix ms)." };
        var to = new Option<string>("--to") { Required = true, Description = "End of the window (ISO 8601 or Unix ms)." };
        var command = Security.AddTo(new Command("changes", "List every change between two wall-clock times, with the time of each.") { key, prefix, from, to, Endpoints, DialTimeout, CommandTimeout });
        command.SetAction(async (parse, cancellation) => await Call(parse, cancellation, async (channel, cancellation) =>
        {
            var name = parse.GetValue(key);
            var keyBytes = name is null ? ByteString.CopyFrom(0) : ByteString.CopyFromUtf8(name);
            var rangeEnd = name is null ? ByteString.CopyFrom(0) : parse.GetValue(prefix) ? ByteString.CopyFrom(PrefixEnd(keyBytes.ToByteArray())) : ByteString.Empty;
            var response = await new KeelService.KeelServiceClient(channel).ChangesBetweenAsync(new ChangesBetweenRequest
            {
                Key = keyBytes,
                RangeEnd = rangeEnd,
                FromUnixMs = ParseTime(parse.GetValue(from)!),
                ToUnixMs = ParseTime(parse.GetValue(to)!),
            }, cancellationToken: cancellation);
            foreach (var change in response.Events)
            {
                var time = DateTimeOffset.FromUnixTimeMilliseconds(change.Timestamp.WallTimeUnixMs).ToString("O", CultureInfo.InvariantCulture);
                Console.WriteLine($"{time} rev {change.Event.Kv.ModRevision} {change.Event.Type.ToString().ToUpperInvariant()} {change.Event.Kv.Key.ToStringUtf8()} {change.Event.Kv.Value.ToStringUtf8()}");
            }
            if (response.CompactRevision != 0) Console.Error.WriteLine($"history before revision {response.CompactRevision} was compacted; the list may be incomplete");
        }));
        return command;
    }

    private static string Format(ParseResult parse)
    {
        var format = parse.GetValue(WriteOut)!.ToLowerInvariant();
        return format is "simple" or "json" or "table" ? format : throw new ArgumentException($"unknown output format '{format}' (simple, json or table)");
    }

    private static void Print(string format, ResponseHeader header, IReadOnlyCollection<Keel.Protocol.Etcd.Mvccpb.KeyValue> kvs, long count, bool more)
    {
        switch (format)
        {
            case "json":
                Console.WriteLine(EtcdctlJson.Range(header, kvs, count, more));
                break;
            case "table":
                EtcdctlJson.WriteTable(["KEY", "VALUE"], kvs.Select(kv => new[] { kv.Key.ToStringUtf8(), kv.Value.ToStringUtf8() }).ToList());
                break;
            default:
                foreach (var kv in kvs)
                {
                    Console.WriteLine(kv.Key.ToStringUtf8());
                    Console.WriteLine(kv.Value.ToStringUtf8());
                }
                break;
        }
    }

    /// <summary>Parses a Go duration as etcdctl's flags take it (<c>2s</c>, <c>500ms</c>, <c>1m30s</c>; a bare number is seconds).</summary>
    internal static TimeSpan ParseDuration(string text)
    {
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var bareSeconds) && bareSeconds >= 0) return TimeSpan.FromSeconds(bareSeconds);
        var match = System.Text.RegularExpressions.Regex.Match(text, @"^(?:(\d+(?:\.\d+)?)(h|ms|m|s|us|ns))+$");
        if (!match.Success) throw new ArgumentException($"'{text}' is not a duration (e.g. 2s, 500ms, 1m30s)");
        var total = TimeSpan.Zero;
        for (var i = 0; i < match.Groups[1].Captures.Count; i++)
        {
            var value = double.Parse(match.Groups[1].Captures[i].Value, CultureInfo.InvariantCulture);
            total += match.Groups[2].Captures[i].Value switch
            {
                "h" => TimeSpan.FromHours(value),
                "m" => TimeSpan.FromMinutes(value),
                "s" => TimeSpan.FromSeconds(value),
                "ms" => TimeSpan.FromMilliseconds(value),
                "us" => TimeSpan.FromMicroseconds(value),
                _ => TimeSpan.FromTicks((long)(value / 100)),
            };
        }
        return total;
    }

    internal static long ParseTime(string text)
    {
        if (long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var unixMs)) return unixMs;
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time)) return time.ToUnixTimeMilliseconds();
        throw new ArgumentException($"'{text}' is not a time (ISO 8601 such as 2026-11-26T14:00:00Z, or Unix milliseconds)");
    }

    private static byte[] PrefixEnd(byte[] prefix) => Keel.Mvcc.KeyRanges.PrefixEnd(prefix);

    private static async Task<int> Call(ParseResult parse, CancellationToken cancellation, Func<GrpcChannel, CancellationToken, Task> call)
    {
        TimeSpan dial, command;
        try
        {
            dial = ParseDuration(parse.GetValue(DialTimeout)!);
            command = ParseDuration(parse.GetValue(CommandTimeout)!);
        }
        catch (ArgumentException error)
        {
            Console.Error.WriteLine($"Error: {error.Message}");
            return 2;
        }
        RpcException? last = null;
        foreach (var endpoint in parse.GetValue(Endpoints)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // etcdctl's meanings: the dial timeout bounds connecting, the command timeout the call after it.
            GrpcChannel channel;
            try
            {
                channel = Security.Open(parse, endpoint, dial);
            }
            catch (ArgumentException error)
            {
                Console.Error.WriteLine($"Error: {error.Message}");
                return 2;
            }
            using var _ = channel;
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            bound.CancelAfter(dial + command);
            try
            {
                await call(channel, bound.Token);
                return 0;
            }
            catch (RpcException error) when (error.StatusCode == StatusCode.Unavailable)
            {
                last = error;
            }
            catch (RpcException error) when (error.StatusCode == StatusCode.Cancelled && bound.IsCancellationRequested && !cancellation.IsCancellationRequested)
            {
                Console.Error.WriteLine("Error: context deadline exceeded");
                return 1;
            }
            catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
            {
                Console.Error.WriteLine("Error: context deadline exceeded");
                return 1;
            }
            catch (RpcException error)
            {
                Console.Error.WriteLine($"Error: {error.Status.Detail}");
                return 1;
            }
            catch (ArgumentException error)
            {
                Console.Error.WriteLine($"Error: {error.Message}");
                return 2;
            }
        }
        Console.Error.WriteLine($"Error: {last?.Status.Detail ?? "no endpoint given"}");
        return 1;
    }
}
