using System.Diagnostics;

namespace Keel.TestCluster;

/// <summary>A running etcdctl (watch, lock, elect, keep-alive): a <see cref="WatchedProcess"/> started by <see cref="Etcdctl.Start"/>.</summary>
public sealed class EtcdctlProcess : WatchedProcess
{
    internal EtcdctlProcess(ProcessStartInfo start, IReadOnlyList<string> args) : base(start, "etcdctl", args)
    {
    }
}
