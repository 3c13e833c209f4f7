using Keel.Raft.Tests.Harness;

namespace Keel.Raft.Tests;

/// <summary>
/// Runs every transcript under testdata/ (etcd-io/raft datadriven style). Set KEEL_REWRITE_TRANSCRIPTS=1 to write the
/// actual output back into the source files; then read the diff before committing it.
/// </summary>
public sealed class TranscriptTests
{
    public static TheoryData<string> Files()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "testdata"), "*.txt").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileName(file));
        return data;
    }

    [Theory]
    [MemberData(nameof(Files))]
    public void Transcript(string file)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "testdata", file);
        var expected = File.ReadAllText(path).Replace("\r\n", "\n");
        var actual = TranscriptRunner.Run(expected);
        if (Environment.GetEnvironmentVariable("KEEL_REWRITE_TRANSCRIPTS") == "1")
        {
            File.WriteAllText(Path.Combine(SourceTestdata(), file), actual);
            return;
        }
        Assert.Equal(expected, actual);
    }

    private static string SourceTestdata([System.Runtime.CompilerServices.CallerFilePath] string thisFile = "") =>
        Path.Combine(Path.GetDirectoryName(thisFile)!, "testdata");
}
