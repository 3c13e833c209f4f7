using System.Diagnostics;
using Keel.Core;

namespace Keel.Storage.Tests;

/// <summary>
/// The real thing: a child process appends with fdatasync and acknowledges on stdout; it is killed with SIGKILL at
/// random moments, twenty times; after each kill every acknowledged entry (and the hard state) must be on disk.
/// </summary>
public sealed class KillTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "keel-kill-tests", Path.GetRandomFileName());

    public void Dispose()
    {
        if (Directory.Exists(_path)) Directory.Delete(_path, recursive: true);
    }

    [Fact]
    public void Every_acknowledged_entry_survives_SIGKILL()
    {
        if (!OperatingSystem.IsLinux()) return;
        var target = Path.Combine(AppContext.BaseDirectory, "Keel.Storage.KillTarget.dll");
        Assert.True(File.Exists(target), $"kill target not built at {target}");
        var random = new DeterministicRandom(42);
        ulong acknowledged = 0;
        var clock = Stopwatch.StartNew();
        for (var kill = 0; kill < 20; kill++)
        {
            var start = new ProcessStartInfo("dotnet", [target, _path, kill.ToString(System.Globalization.CultureInfo.InvariantCulture)])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using var child = Process.Start(start)!;
            var acksBeforeKill = random.NextInt32(60) + 1;
            var seen = 0;
            string? line;
            while (seen < acksBeforeKill && (line = child.StandardOutput.ReadLine()) is not null)
            {
                if (Parse(line) is { } acked) { acknowledged = Math.Max(acknowledged, acked); seen++; }
            }
            child.Kill(); // SIGKILL on Linux
            // Acks printed before the kill landed count too: drain them.
            foreach (var rest in child.StandardOutput.ReadToEnd().Split('\n'))
                if (Parse(rest) is { } acked) acknowledged = Math.Max(acknowledged, acked);
            child.WaitForExit();
            Assert.True(seen == acksBeforeKill, $"child died on its own: {child.StandardError.ReadToEnd()}");

            var directory = new FileSystemDirectory(_path);
            using var directoryLock = directory.LockExclusive(); // the kernel released the killed child's lock
            using var wal = WriteAheadLog.Open(directory, new WalOptions { SegmentSizeBytes = 128 * 1024 }, out var recovery);
            Assert.True(recovery.Entries.Count >= (int)acknowledged, $"kill {kill}: {acknowledged} acknowledged, {recovery.Entries.Count} recovered");
            for (var i = 0; i < (int)acknowledged; i++)
            {
                Assert.Equal((ulong)i + 1, recovery.Entries[i].Index);
                Assert.True(recovery.Entries[i].Payload.Span.SequenceEqual(Keel.Storage.KillTarget.KillPayload.For((ulong)i + 1)));
            }
            Assert.True(recovery.HardState.Commit + 1 >= acknowledged);
        }
        Assert.True(acknowledged > 20);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"took {clock.Elapsed}");
    }

    private static ulong? Parse(string line)
    {
        var parts = line.Trim().Split(' ');
        return parts is ["ack", var number, "ok"] ? ulong.Parse(number, System.Globalization.CultureInfo.InvariantCulture) : null;
    }
}
