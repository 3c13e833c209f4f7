// Child of the SIGKILL test: recovers the WAL in args[0], then appends batches forever, printing "ack <index> ok" only
// after the Sync that made entries up to <index> durable. The parent kills it with SIGKILL at random moments and
// checks that every acknowledged entry survived. Payloads are a function of the index, so the parent can verify them.
using Keel.Core;
using Keel.Storage;

var directory = new FileSystemDirectory(args[0]);
using var directoryLock = directory.LockExclusive();
using var wal = WriteAheadLog.Open(directory, new WalOptions { SegmentSizeBytes = 128 * 1024 }, out var recovery);
var random = new DeterministicRandom(ulong.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture));
using var stdout = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true };
stdout.WriteLine($"recovered {wal.LastIndex} ok");
var index = wal.LastIndex;
while (true)
{
    var batch = random.NextInt32(32) + 1;
    for (var i = 0; i < batch; i++)
    {
        index++;
        wal.Append(new WalEntry(index, 1, Keel.Storage.KillTarget.KillPayload.For(index)));
    }
    wal.SetHardState(new WalHardState(1, 1, index - 1));
    wal.Sync();
    stdout.WriteLine($"ack {index} ok");
}

/// <summary>The deterministic payload of an index.</summary>
namespace Keel.Storage.KillTarget
{
public static class KillPayload
{
    /// <summary>Bytes that depend only on <paramref name="index"/>.</summary>
    public static byte[] For(ulong index)
    {
        var random = new DeterministicRandom(index);
        var bytes = new byte[(int)(index % 400)];
        for (var i = 0; i < bytes.Length; i++) bytes[i] = (byte)random.NextUInt64();
        return bytes;
    }
}
}
