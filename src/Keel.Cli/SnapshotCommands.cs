using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using Keel.Node;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Server.Hosting;

namespace Keel.Cli;

/// <summary>
/// Backup and restore of a member's whole state, in etcdctl's and etcdutl's shape: <c>keel snapshot save FILE</c>
/// (store with history, leases, members, idempotency table and alarms at one applied index, with a SHA-256),
/// <c>keel snapshot status FILE</c>, and <c>keel snapshot restore FILE --data-dir DIR</c> (a data directory from which a
/// member of a new cluster starts with that state; start every member of the new cluster from the same file).
/// </summary>
internal static class SnapshotCommands
{
    public static Command Create()
    {
        var command = new Command("snapshot", "Back up a member's whole state and restore a new cluster from it.");
        command.Subcommands.Add(Save());
        command.Subcommands.Add(Status());
        command.Subcommands.Add(Restore());
        return command;
    }

    private static Command Save()
    {
        var file = new Argument<string>("file") { Description = "Where to write the backup." };
        var endpoints = new Option<string>("--endpoints") { Description = "The member to back up (host:port or URL; the first is used).", DefaultValueFactory = _ => "127.0.0.1:2379" };
        var timeout = new Option<int>("--command-timeout") { Description = "Seconds the whole transfer may take (default 300).", DefaultValueFactory = _ => 300 };
        var security = new CliConnection();
        var command = security.AddTo(new Command("save", "Stream a member's whole state into FILE (checked against its SHA-256).") { file, endpoints, timeout });
        command.SetAction(async (parse, cancellation) =>
        {
            var path = parse.GetValue(file)!;
            var endpoint = parse.GetValue(endpoints)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[0];
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
            bound.CancelAfter(TimeSpan.FromSeconds(parse.GetValue(timeout)));
            var partial = path + ".part";
            try
            {
                using var channel = security.Open(parse, endpoint, TimeSpan.FromSeconds(2));
                using var call = new Maintenance.MaintenanceClient(channel).Snapshot(new SnapshotRequest(), cancellationToken: bound.Token);
                long revision = 0;
                await using (var output = new FileStream(partial, FileMode.Create, FileAccess.Write))
                {
                    await foreach (var chunk in call.ResponseStream.ReadAllAsync(bound.Token))
                    {
                        revision = chunk.Header?.Revision ?? revision;
                        chunk.Blob.WriteTo(output);
                    }
                    output.Flush(flushToDisk: true);
                }
                var info = KeelNode.DescribeBackup(KeelNode.VerifyBackup(await File.ReadAllBytesAsync(partial, bound.Token)));
                File.Move(partial, path, overwrite: true);
                Console.WriteLine($"Snapshot saved at {path} (revision {info.Revision}, {info.Keys} keys, {info.TotalBytes} bytes, hash {info.HashKv})");
                return 0;
            }
            catch (Exception e) when (e is RpcException or IOException or InvalidCommandException or OperationCanceledException or HttpRequestException or ArgumentException)
            {
                File.Delete(partial);
                Console.Error.WriteLine($"Error: {e.Message}");
                return 1;
            }
        });
        return command;
    }

    private static Command Status()
    {
        var file = new Argument<string>("file");
        var format = new Option<string>("-w", "--write-out") { Description = "table (default) or json.", DefaultValueFactory = _ => "table" };
        var command = new Command("status", "Check a backup's SHA-256 and describe it (revision, keys, leases, hash).") { file, format };
        command.SetAction(parse =>
        {
            BackupInfo info;
            try
            {
                info = KeelNode.DescribeBackup(KeelNode.VerifyBackup(File.ReadAllBytes(parse.GetValue(file)!)));
            }
            catch (Exception e) when (e is IOException or InvalidCommandException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"Error: {e.Message}");
                return 1;
            }
            if (string.Equals(parse.GetValue(format), "json", StringComparison.OrdinalIgnoreCase))
            {
                // etcdctl snapshot status's fields, plus Keel's.
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["hash"] = info.HashKv, ["revision"] = info.Revision, ["totalKey"] = info.Keys, ["totalSize"] = info.TotalBytes,
                    ["compactRevision"] = info.CompactRevision, ["leases"] = info.Leases, ["members"] = info.Members,
                    ["appliedIndex"] = info.AppliedIndex, ["storeSizeBytes"] = info.StoreSizeBytes,
                }));
            }
            else
            {
                Console.WriteLine("+----------+----------+------------+------------+--------+---------+");
                Console.WriteLine("|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE | LEASES | MEMBERS |");
                Console.WriteLine("+----------+----------+------------+------------+--------+---------+");
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {info.HashKv,8:x8} | {info.Revision,8} | {info.Keys,10} | {info.TotalBytes,10} | {info.Leases,6} | {info.Members,7} |"));
                Console.WriteLine("+----------+----------+------------+------------+--------+---------+");
            }
            return 0;
        });
        return command;
    }

    private static Command Restore()
    {
        var file = new Argument<string>("file");
        var dataDir = new Option<string>("--data-dir") { Description = "The new member's data directory (must not exist or be empty).", Required = true };
        // etcdutl's flags, accepted so its command lines work: Keel takes the new cluster's shape from `keel serve`'s
        // flags at the first start, which must match these.
        var name = new Option<string?>("--name") { Description = "The new member's name (as given to keel serve)." };
        var initialCluster = new Option<string?>("--initial-cluster") { Description = "The new cluster (as given to keel serve)." };
        var token = new Option<string?>("--initial-cluster-token") { Description = "The new cluster's token (as given to keel serve)." };
        var peerUrls = new Option<string?>("--initial-advertise-peer-urls") { Description = "The new member's peer URLs (as given to keel serve)." };
        var command = new Command("restore", "Make a data directory from which a member of a NEW cluster starts with the backup's state.")
        {
            file, dataDir, name, initialCluster, token, peerUrls,
        };
        command.SetAction(parse =>
        {
            var directory = parse.GetValue(dataDir)!;
            try
            {
                var backup = File.ReadAllBytes(parse.GetValue(file)!);
                var info = KeelNode.DescribeBackup(KeelNode.VerifyBackup(backup));
                if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
                {
                    Console.Error.WriteLine($"Error: data directory {directory} is not empty; restore makes a new member and never overwrites one");
                    return 1;
                }
                Directory.CreateDirectory(directory);
                var target = Path.Combine(directory, NodeHost.RestoreFile);
                var temporary = target + ".tmp";
                using (var output = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
                {
                    output.Write(backup);
                    output.Flush(flushToDisk: true);
                }
                File.Move(temporary, target);
                Console.WriteLine($"restored snapshot (revision {info.Revision}, {info.Keys} keys, hash {info.HashKv}) into {directory}; " +
                    "start every member of the new cluster with keel serve --initial-cluster-state new and the same --initial-cluster");
                return 0;
            }
            catch (Exception e) when (e is IOException or InvalidCommandException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"Error: {e.Message}");
                return 1;
            }
        });
        return command;
    }
}
