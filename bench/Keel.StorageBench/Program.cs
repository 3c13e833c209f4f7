// Storage benchmark: the disk's raw fdatasync rate and the WAL's appends per second at batch sizes 1, 8, 64 and 512
// (256-byte records), measured in the same run on the same file system. A console program rather than a
// BenchmarkDotNet class because every iteration is bounded by the device, not the CPU: BenchmarkDotNet's pilot and
// warm-up phases would only add fsyncs. Usage: dotnet run -c Release --project bench/Keel.StorageBench -- [dir] [seconds]
using System.Diagnostics;
using Keel.Storage;

var root = args.Length > 0 ? args[0] : Path.Combine(AppContext.BaseDirectory, "storage-bench");
var seconds = args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3.0;
const int RecordBytes = 256;
if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
Directory.CreateDirectory(root);
Console.WriteLine($"directory {root}, {seconds} s per measurement, {RecordBytes}-byte records, {Environment.ProcessorCount} cores");

var raw = RawFdatasync(Path.Combine(root, "raw"), seconds);
Console.WriteLine($"raw write+fdatasync (256 B, preallocated file): {raw:F0} syncs/s ({1000.0 / raw:F3} ms each)");
Console.WriteLine("| batch | records/s | syncs/s | syncs/s vs raw | allocated bytes/record |");
Console.WriteLine("|---:|---:|---:|---:|---:|");
foreach (var batch in new[] { 1, 8, 64, 512 })
{
    var (records, syncs, allocated) = Wal(Path.Combine(root, $"wal-{batch}"), batch, seconds);
    Console.WriteLine($"| {batch} | {records:F0} | {syncs:F0} | {syncs / raw:P1} | {allocated:F2} |");
}
Directory.Delete(root, recursive: true);

static double RawFdatasync(string path, double seconds)
{
    var directory = new FileSystemDirectory(path);
    using var file = directory.Create("raw.dat");
    file.Preallocate(64L * 1024 * 1024);
    file.Sync();
    var record = new byte[RecordBytes + 14];
    Random.Shared.NextBytes(record);
    long offset = 0, syncs = 0;
    var clock = Stopwatch.StartNew();
    while (clock.Elapsed.TotalSeconds < seconds)
    {
        file.Write(offset, record);
        file.Sync();
        offset = (offset + record.Length) % (60L * 1024 * 1024);
        syncs++;
    }
    return syncs / clock.Elapsed.TotalSeconds;
}

static (double RecordsPerSecond, double SyncsPerSecond, double AllocatedPerRecord) Wal(string path, int batch, double seconds)
{
    using var wal = WriteAheadLog.Open(new FileSystemDirectory(path), new WalOptions(), out _);
    var payload = new byte[RecordBytes - 16]; // the WAL adds index and term: 256 bytes of record payload in all
    Random.Shared.NextBytes(payload);
    ulong index = 0;
    long syncs = 0;
    // Warm-up: grow the batch buffer once so the measured loop allocates nothing.
    for (var i = 0; i < batch; i++) wal.Append(new WalEntry(++index, 1, payload));
    wal.Sync();
    var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
    var clock = Stopwatch.StartNew();
    while (clock.Elapsed.TotalSeconds < seconds)
    {
        for (var i = 0; i < batch; i++) wal.Append(new WalEntry(++index, 1, payload));
        wal.Sync();
        syncs++;
    }
    var elapsed = clock.Elapsed.TotalSeconds;
    var allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
    return (syncs * batch / elapsed, syncs / elapsed, (double)allocated / (syncs * batch));
}
