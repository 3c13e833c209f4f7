using System.Globalization;

namespace Keel.Storage.Tests;

/// <summary>
/// The memory behind the store's value segments: a reserved, mapped file whose pages can leave the process without
/// losing a byte, and which is deleted when it is released.
/// </summary>
public sealed class ScratchFileMappingTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "keel-scratch-tests", Path.GetRandomFileName());

    public ScratchFileMappingTests() => Directory.CreateDirectory(_path);

    public void Dispose() => Directory.Delete(_path, recursive: true);

    [Fact]
    public void Bytes_written_through_the_mapping_survive_dropping_its_pages_and_the_file_goes_when_it_is_released()
    {
        var file = Path.Combine(_path, "segment-1.values");
        const int length = 8 * 1024 * 1024;
        var mapping = ScratchFileMapping.Create(file, length);
        Assert.Equal(length, new FileInfo(file).Length);
        var data = new byte[length];
        new Random(3).NextBytes(data);
        data.CopyTo(mapping.Span);
        var residentAfterWrite = ResidentKilobytes(file);

        mapping.DropResidentPages(0, length);
        var residentAfterDrop = ResidentKilobytes(file);
        Assert.True(mapping.Span.SequenceEqual(data), "the bytes came back from the page cache unchanged");

        if (OperatingSystem.IsLinux())
        {
            Assert.True(residentAfterWrite >= length / 1024 / 2, $"{residentAfterWrite} KiB resident after writing 8 MiB");
            Assert.True(residentAfterDrop < 64, $"{residentAfterDrop} KiB still resident after dropping the pages");
        }
        mapping.Dispose();
        Assert.False(File.Exists(file));
        Assert.Throws<ObjectDisposedException>(() => mapping.Span.Length);
    }

    [Fact]
    public void Bytes_written_with_positional_writes_are_seen_through_the_mapping_without_being_mapped_in()
    {
        var file = Path.Combine(_path, "segment-4.values");
        const int length = 8 * 1024 * 1024;
        using var mapping = ScratchFileMapping.Create(file, length);
        var data = new byte[length];
        new Random(5).NextBytes(data);
        for (var offset = 0; offset < length; offset += 64 * 1024) mapping.Write(offset, data.AsSpan(offset, 64 * 1024));
        if (OperatingSystem.IsLinux())
        {
            var resident = ResidentKilobytes(file);
            Assert.True(resident < 64, $"{resident} KiB resident after writing 8 MiB with pwrite");
        }
        Assert.True(mapping.Span.SequenceEqual(data));
        Assert.Throws<ArgumentOutOfRangeException>(() => mapping.Write(length - 1, new byte[2]));
    }

    [Fact]
    public void Dropping_part_of_the_mapping_keeps_the_partly_covered_pages_and_every_byte()
    {
        var file = Path.Combine(_path, "segment-2.values");
        using var mapping = ScratchFileMapping.Create(file, 1 << 20);
        for (var i = 0; i < mapping.LengthBytes; i++) mapping.Span[i] = (byte)(i * 7);
        mapping.DropResidentPages(100, 50_000);
        mapping.DropResidentPages(mapping.LengthBytes - 10, 10);
        for (var i = 0; i < mapping.LengthBytes; i++) Assert.Equal((byte)(i * 7), mapping.Span[i]);
        Assert.Throws<ArgumentOutOfRangeException>(() => mapping.DropResidentPages(mapping.LengthBytes - 10, 11));
    }

    [Fact]
    public void A_file_that_exists_is_refused()
    {
        var file = Path.Combine(_path, "segment-3.values");
        File.WriteAllText(file, "someone else's");
        Assert.ThrowsAny<IOException>(() => ScratchFileMapping.Create(file, 4096));
        Assert.Equal("someone else's", File.ReadAllText(file));
    }

    /// <summary>The Rss of the process's mapping of <paramref name="file"/>, from /proc/self/smaps (0 elsewhere).</summary>
    private static long ResidentKilobytes(string file)
    {
        if (!OperatingSystem.IsLinux()) return 0;
        var inMapping = false;
        long total = 0;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // A mapping's header: "start-end perms offset dev inode [path]"; its fields follow as "Name: value kB".
            if (fields.Length >= 5 && !fields[0].EndsWith(':') && fields[0].Contains('-', StringComparison.Ordinal))
            {
                inMapping = fields.Length >= 6 && fields[5] == file;
                continue;
            }
            if (inMapping && fields.Length >= 2 && fields[0] == "Rss:") total += long.Parse(fields[1], CultureInfo.InvariantCulture);
        }
        return total;
    }
}
