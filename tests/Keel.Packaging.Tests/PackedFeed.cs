using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Xml.Linq;
using Keel.TestCluster;

namespace Keel.Packaging.Tests;

/// <summary>
/// Packs every package of the solution once per test run into a temporary feed (<c>dotnet pack Keel.slnx --no-build</c>,
/// from the Release build that <c>./test</c> made), and runs the dotnet CLI for the tests with no build servers left
/// behind.
/// </summary>
public sealed class PackedFeed : IAsyncLifetime
{
    /// <summary>Every package the repository publishes.</summary>
    public static readonly string[] PackageIds =
    [
        "Keel.Core", "Keel.Protocol", "Keel.Client", "Keel.AspNetCore", "Keel.HybridClock", "Keel.Heartbeat", "Keel.Quorum",
        "Keel.Leases", "Keel.Idempotency", "Keel.Gossip", "Keel.Gossip.Hosting", "Keel.Linearizability", "Keel.Raft", "keel",
    ];

    private readonly TempDirectory _root = new("keel-packages-");

    /// <summary>The folder holding the .nupkg and .snupkg files.</summary>
    public string Feed => Path.Combine(_root.Path, "feed");

    /// <summary>A scratch folder for the consumers (projects, tool installs, their package folders).</summary>
    public string Scratch => _root.Path;

    /// <summary>The version every package got (from git, by MinVer).</summary>
    public string Version { get; private set; } = "";

    /// <summary>What <c>dotnet pack</c> printed.</summary>
    public string PackOutput { get; private set; } = "";

    /// <summary>The repository's root (the folder holding Keel.slnx).</summary>
    public static string RepositoryRoot
    {
        get
        {
            for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
                if (File.Exists(Path.Combine(directory.FullName, "Keel.slnx"))) return directory.FullName;
            throw new InvalidOperationException($"Keel.slnx not found above {AppContext.BaseDirectory}");
        }
    }

    /// <inheritdoc/>
    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Feed);
        var (exit, output) = await DotnetAsync(RepositoryRoot, TimeSpan.FromMinutes(5),
            "pack", "Keel.slnx", "-c", "Release", "--no-build", "-o", Feed);
        PackOutput = output;
        if (exit != 0)
            throw new InvalidOperationException($"dotnet pack failed (exit {exit}); the tests need the Release build of ./test first:\n{output}");
        var client = Directory.GetFiles(Feed, "Keel.Client.*.nupkg").SingleOrDefault()
            ?? throw new InvalidOperationException($"no Keel.Client package in {Feed}:\n{output}");
        using var archive = ZipFile.OpenRead(client);
        Version = Nuspec(archive).Root!.Elements().Single(e => e.Name.LocalName == "metadata")
            .Elements().Single(e => e.Name.LocalName == "version").Value;
    }

    /// <inheritdoc/>
    public Task DisposeAsync()
    {
        _root.Dispose();
        return Task.CompletedTask;
    }

    private readonly SemaphoreSlim _consumerBuild = new(1, 1);
    private string? _consumer;

    /// <summary>
    /// Builds, once, a fresh ASP.NET Core project outside the repository that takes <c>Keel.Client</c> and
    /// <c>Keel.AspNetCore</c> from the feed (into a package folder of its own, so nothing cached stands in for the
    /// packages just made; the machine's cache is only a fallback for third-party packages). Returns its dll.
    /// </summary>
    public async Task<string> ConsumerAsync()
    {
        await _consumerBuild.WaitAsync();
        try
        {
            if (_consumer is not null) return _consumer;
            var project = Path.Combine(Scratch, "consumer");
            Directory.CreateDirectory(project);
            WriteNuGetConfig(project);
            var globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            File.WriteAllText(Path.Combine(project, "Consumer.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk.Web">
                  <PropertyGroup>
                    <TargetFramework>net10.0</TargetFramework>
                    <Nullable>enable</Nullable>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <NuGetAudit>false</NuGetAudit>
                    <RestorePackagesPath>{Path.Combine(Scratch, "consumer-packages")}</RestorePackagesPath>
                    <RestoreFallbackFolders>{globalPackages}</RestoreFallbackFolders>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Keel.Client" Version="{Version}" />
                    <PackageReference Include="Keel.AspNetCore" Version="{Version}" />
                  </ItemGroup>
                </Project>
                """);
            File.Copy(Path.Combine(AppContext.BaseDirectory, "Consumer", "Program.cs.txt"), Path.Combine(project, "Program.cs"), overwrite: true);
            var (exit, output) = await DotnetAsync(project, TimeSpan.FromMinutes(6), "build", "-c", "Release", "-o", Path.Combine(project, "out"));
            if (exit != 0) throw new InvalidOperationException($"the consumer project did not build (exit {exit}):\n{output}");
            return _consumer = Path.Combine(project, "out", "Consumer.dll");
        }
        finally
        {
            _consumerBuild.Release();
        }
    }

    /// <summary>A NuGet.config in <paramref name="folder"/> that adds the feed to the machine's sources.</summary>
    public void WriteNuGetConfig(string folder) =>
        File.WriteAllText(Path.Combine(folder, "NuGet.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="keel-local" value="{Feed}" />
              </packageSources>
            </configuration>
            """);

    /// <summary>Starts a long-running program whose output lines a test waits on; disposing it kills its tree.</summary>
    public static WatchedProcess Start(string fileName, string workingDirectory, params string[] arguments)
    {
        var start = new ProcessStartInfo(fileName) { WorkingDirectory = workingDirectory };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        return new WatchedProcess(start, fileName, arguments);
    }

    /// <summary>The .nuspec inside a package.</summary>
    public static XDocument Nuspec(ZipArchive archive)
    {
        var entry = archive.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal) && !e.FullName.Contains('/'));
        using var stream = entry.Open();
        return XDocument.Load(stream);
    }

    /// <summary>
    /// Runs the dotnet CLI without MSBuild node reuse, the compiler server or the MSBuild server, so no process outlives
    /// the call; bounded by <paramref name="timeout"/>, after which the whole tree is killed.
    /// </summary>
    public static Task<(int Exit, string Output)> DotnetAsync(string workingDirectory, TimeSpan timeout, params string[] arguments) =>
        RunAsync("dotnet", workingDirectory, timeout, arguments);

    /// <summary>Runs a program, capturing stdout and stderr together; the process tree is killed past <paramref name="timeout"/>.</summary>
    public static async Task<(int Exit, string Output)> RunAsync(string fileName, string workingDirectory, TimeSpan timeout, params string[] arguments)
    {
        var start = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        start.Environment["UseSharedCompilation"] = "false";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        using var process = new Process { StartInfo = start };
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.Start();
        ChildProcesses.Register(process);
        try
        {
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            using var limit = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(limit.Token);
            }
            catch (OperationCanceledException)
            {
                ChildProcesses.KillTree(process);
                await process.WaitForExitAsync();
                lock (output) return (-1, $"timed out after {timeout}: {fileName} {string.Join(' ', arguments)}\n{output}");
            }
            process.WaitForExit(); // drains the redirected streams
            lock (output) return (process.ExitCode, output.ToString());
        }
        finally
        {
            ChildProcesses.Unregister(process);
        }
    }
}
