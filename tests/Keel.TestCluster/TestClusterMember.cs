using System.Diagnostics;

namespace Keel.TestCluster;

/// <summary>One member of a <see cref="TestCluster"/>: its name, URLs, data directory and current process.</summary>
public sealed class TestClusterMember
{
    internal TestClusterMember(int index, string name, int clientPort, int peerPort, string dataDirectory, string clientScheme = "http", string peerScheme = "http")
    {
        Index = index;
        Name = name;
        ClientUrl = $"{clientScheme}://127.0.0.1:{clientPort}";
        PeerUrl = $"{peerScheme}://127.0.0.1:{peerPort}";
        DataDirectory = dataDirectory;
    }

    /// <summary>Position in <see cref="TestCluster.Members"/>.</summary>
    public int Index { get; }

    /// <summary>The member name (<c>--name</c>): n1, n2, ...</summary>
    public string Name { get; }

    /// <summary>The client URL (<c>--listen-client-urls</c> and <c>--advertise-client-urls</c>).</summary>
    public string ClientUrl { get; }

    /// <summary>The peer URL (<c>--listen-peer-urls</c> and <c>--initial-advertise-peer-urls</c>).</summary>
    public string PeerUrl { get; }

    /// <summary>The data directory (<c>--data-dir</c>), kept across <see cref="TestCluster.RestartAsync"/>.</summary>
    public string DataDirectory { get; }

    /// <summary>Output of every incarnation of this member, tagged by stream.</summary>
    public OutputLog Output { get; } = new();

    /// <summary>How many times this member's process has been started.</summary>
    public int Incarnation { get; internal set; }

    internal Process? Process { get; set; }

    /// <summary>Whether the member's process is running.</summary>
    public bool IsRunning => Process is { HasExited: false };

    /// <summary>The running process id, or null.</summary>
    public int? ProcessId => IsRunning ? Process!.Id : null;

    /// <inheritdoc />
    public override string ToString() => $"{Name} ({ClientUrl})";
}
