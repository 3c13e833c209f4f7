using System.Globalization;
using Keel.TestCluster;

namespace Keel.Chaos;

/// <summary>What a fault acts on, chosen when it is injected.</summary>
public sealed record FaultTarget(int Leader, int Follower);

/// <summary>
/// One kind of fault: injected at the start of the fault window, healed at its end. <see cref="Isolated"/> is the member
/// on the minority side (its calls are excluded from the "majority side" availability), or -1.
/// </summary>
public abstract class Fault
{
    /// <summary>Short name used on the command line and in the report.</summary>
    public abstract string Name { get; }

    /// <summary>One line describing exactly what is done.</summary>
    public abstract string Description { get; }

    /// <summary>The members need libfaketime.</summary>
    public virtual bool NeedsFaketime => false;

    /// <summary>The fault cannot be applied to this server kind (a reason), or null.</summary>
    public virtual string? UnsupportedFor(ServerKind kind) => null;

    /// <summary>The member cut off or damaged (its calls are the minority side), or -1.</summary>
    public int Isolated { get; protected set; } = -1;

    /// <summary>The shortest fault window this fault needs to do anything (a full disk must first be written full).</summary>
    public virtual TimeSpan MinimumWindow => TimeSpan.Zero;

    /// <summary>What the fault observed (for example whether NOSPACE was raised), for the report.</summary>
    public string? Note { get; protected set; }

    /// <summary>Changes how the cluster is started (data directories), before it starts.</summary>
    public virtual ClusterSpec Customize(ClusterSpec spec) => spec;

    /// <summary>Prepares outside resources (a tmpfs) before the cluster starts.</summary>
    public virtual Task PrepareAsync() => Task.CompletedTask;

    /// <summary>Removes them after the cluster is gone; runs even when the scenario failed.</summary>
    public virtual Task CleanupAsync() => Task.CompletedTask;

    /// <summary>Applies the fault.</summary>
    public abstract Task InjectAsync(ChaosCluster cluster, FaultTarget target);

    /// <summary>Removes it.</summary>
    public abstract Task HealAsync(ChaosCluster cluster);

    /// <summary>Every fault the harness knows, in the report's order.</summary>
    public static IReadOnlyList<Func<Fault>> All { get; } =
    [
        () => new PortPartition("issue-dport-leader", leader: true),
        () => new Partition("partition-leader-in", leader: true, inbound: true, outbound: false),
        () => new Partition("partition-leader-out", leader: true, inbound: false, outbound: true),
        () => new Partition("partition-leader-sym", leader: true, inbound: true, outbound: true),
        () => new Partition("partition-follower-sym", leader: false, inbound: true, outbound: true),
        () => new Partition("oneway-leader-to-follower", leader: true, inbound: false, outbound: true, link: true),
        () => new ClientPartition(),
        () => new ProcessFault("kill-leader", leader: true, kill: true),
        () => new ProcessFault("kill-follower", leader: false, kill: true),
        () => new ProcessFault("stop-leader", leader: true, kill: false),
        () => new ProcessFault("stop-follower", leader: false, kill: false),
        () => new PacketLoss(),
        () => new NetemDelay(),
        () => new ClockJump("clock-jump-leader", leader: true, "+30s"),
        () => new ClockJump("clock-back-follower", leader: false, "-30s"),
        () => new DiskFull(),
        () => new MembershipChange(),
    ];

    /// <summary>The fault named <paramref name="name"/>.</summary>
    public static Fault Create(string name) =>
        All.Select(f => f()).FirstOrDefault(f => f.Name == name) ?? throw new ArgumentException($"unknown fault {name}; known: {string.Join(", ", All.Select(f => f().Name))}");
}

/// <summary>
/// Cuts peer traffic of one member with iptables on the namespace's shared loopback, whichever side dialed each
/// connection. Every member runs with its own group id (setpriv --regid), and a mangle rule gives each new TCP
/// connection the mark of the member that opened it (<c>-m owner --gid-owner</c> → <c>CONNMARK</c>), so a rule can
/// match "packets from member X" as: source port = X's peer port (its listener and gossip socket), or packets in the
/// original direction of a connection X opened; "packets to X" likewise. All rules drop at INPUT except UDP X sends
/// from another socket (matched by owner at OUTPUT). <c>in</c>: nothing reaches X; <c>out</c>: nothing from X arrives;
/// <c>sym</c>: both; <c>link</c>: only X's packets to one other member are lost (one-way).
/// </summary>
public sealed class Partition(string name, bool leader, bool inbound, bool outbound, bool link = false) : Fault
{
    private readonly List<string[]> _rules = [];

    /// <inheritdoc />
    public override string Name => name;

    /// <inheritdoc />
    public override string Description => link
        ? "one-way: every packet from the leader to one follower dropped (TCP both dial directions, UDP); the reverse direction works"
        : $"every TCP and UDP peer packet {(inbound && outbound ? "to and from" : inbound ? "to" : "from")} the {(leader ? "leader" : "follower")} dropped (whichever side dialed)";

    /// <inheritdoc />
    public override async Task InjectAsync(ChaosCluster cluster, FaultTarget target)
    {
        Isolated = leader ? target.Leader : target.Follower;
        var x = cluster.Members[Isolated];
        var others = cluster.Members.Where(m => m.Index != Isolated).ToArray();
        if (link) others = [cluster.Members[target.Follower]];
        var otherPorts = string.Join(',', others.Select(m => m.PeerPort.ToString(CultureInfo.InvariantCulture)));
        var port = x.PeerPort.ToString(CultureInfo.InvariantCulture);
        var mark = ChaosCluster.MarkOf(x);
        var gid = ChaosCluster.GroupOf(x);
        if (inbound)
        {
            _rules.Add(["INPUT", "-p", "tcp", "--dport", port, "-j", "DROP"]);
            _rules.Add(["INPUT", "-p", "udp", "--dport", port, "-j", "DROP"]);
            _rules.Add(["INPUT", "-p", "tcp", "-m", "connmark", "--mark", mark, "-m", "conntrack", "--ctdir", "REPLY", "-m", "multiport", "--sports", otherPorts, "-j", "DROP"]);
        }
        if (outbound && !link)
        {
            _rules.Add(["INPUT", "-p", "tcp", "--sport", port, "-j", "DROP"]);
            _rules.Add(["INPUT", "-p", "udp", "--sport", port, "-j", "DROP"]);
        }
        if (outbound)
        {
            _rules.Add(["INPUT", "-p", "tcp", "-m", "connmark", "--mark", mark, "-m", "conntrack", "--ctdir", "ORIGINAL", "-m", "multiport", "--dports", otherPorts, "-j", "DROP"]);
            _rules.Add(["OUTPUT", "-p", "udp", "-m", "owner", "--gid-owner", gid, "-m", "multiport", "--dports", otherPorts, "-j", "DROP"]);
        }
        if (link)
        {
            // X's replies on connections the follower opened to X's listener, and X's gossip to the follower.
            var follower = cluster.Members[target.Follower];
            _rules.Add(["INPUT", "-p", "tcp", "--sport", port, "-m", "connmark", "--mark", ChaosCluster.MarkOf(follower), "-m", "conntrack", "--ctdir", "REPLY", "-j", "DROP"]);
            _rules.Add(["INPUT", "-p", "udp", "--sport", port, "--dport", follower.PeerPort.ToString(CultureInfo.InvariantCulture), "-j", "DROP"]);
        }
        foreach (var rule in _rules) await cluster.Namespace.IptablesAsync(["-A", .. rule]).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async Task HealAsync(ChaosCluster cluster)
    {
        foreach (var rule in _rules) await cluster.Namespace.IptablesAsync(["-D", .. rule]).ConfigureAwait(false);
        _rules.Clear();
    }
}

/// <summary>
/// The issue's fault, as filed: TCP and UDP packets to one member's peer port dropped (<c>--dport</c> only). Connections
/// the member dialed itself keep working in both directions, so the effect depends on which side dials: Keel sends over
/// connections the sender dials (the member hears nobody), etcd's rafthttp can carry everything over connections the
/// member dials (streams it reads, pipelines it posts).
/// </summary>
public sealed class PortPartition(string name, bool leader) : Fault
{
    private readonly List<string[]> _rules = [];

    /// <inheritdoc />
    public override string Name => name;

    /// <inheritdoc />
    public override string Description => $"iptables DROP of TCP+UDP to the {(leader ? "leader" : "follower")}'s peer port only (the issue's rule)";

    /// <inheritdoc />
    public override async Task InjectAsync(ChaosCluster cluster, FaultTarget target)
    {
        Isolated = leader ? target.Leader : target.Follower;
        var port = cluster.Members[Isolated].PeerPort.ToString(CultureInfo.InvariantCulture);
        foreach (var protocol in new[] { "tcp", "udp" }) _rules.Add(["INPUT", "-p", protocol, "--dport", port, "-j", "DROP"]);
        foreach (var rule in _rules) await cluster.Namespace.IptablesAsync(["-A", .. rule]).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async Task HealAsync(ChaosCluster cluster)
    {
        foreach (var rule in _rules) await cluster.Namespace.IptablesAsync(["-D", .. rule]).ConfigureAwait(false);
        _rules.Clear();
    }
}

/// <summary>Clients cannot reach the leader's client port (TCP to it dropped); the members still talk.</summary>
public sealed class ClientPartition : Fault
{
    private string[]? _rule;

    /// <inheritdoc />
    public override string Name => "partition-client-leader";

    /// <inheritdoc />
    public override string Description => "iptables DROP of TCP to the leader's client port (peers unaffected)";

    /// <inheritdoc />
    public override async Task InjectAsync(ChaosCluster cluster, FaultTarget target)
    {
        Isolated = target.Leader;
        _rule = ["INPUT", "-p", "tcp", "--dport", cluster.Members[Isolated].ClientPort.ToString(CultureInfo.InvariantCulture), "-j", "DROP"];
        await cluster.Namespace.IptablesAsync(["-A", .. _rule]).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async Task HealAsync(ChaosCluster cluster)
    {
        if (_rule is not null) await cluster.Namespace.IptablesAsync(["-D", .. _rule]).ConfigureAwait(false);
        _rule = null;
    }
}

/// <summary>SIGKILL (restarted on its data directory at healing) or SIGSTOP (SIGCONT at healing) of one member.</summary>
public sealed class ProcessFault(string name, bool leader, bool kill) : Fault
{
    /// <inheritdoc />
    public override string Name => name;

    /// <inheritdoc />
    public override string Description => kill
        ? $"SIGKILL of the {(leader ? "leader" : "follower")}; restarted on its data directory at healing (recovery includes the process start)"
        : $"SIGSTOP of the {(leader ? "leader" : "follower")}; SIGCONT at healing";

    /// <inheritdoc />
    public override async Task InjectAsync(ChaosCluster cluster, FaultTarget target)
    {
        Isolated = leader ? target.Leader : target.Follower;
        if (kill) await cluster.KillAsync(Isolated).ConfigureAwait(false);
        else await cluster.SignalAsync(Isolated, "STOP").ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async Task HealAsync(ChaosCluster cluster)
    {
        if (kill) cluster.Restart(Isolated);
        else await cluster.SignalAsync(Isolated, "CONT").ConfigureAwait(false);
    }
}

/// <summary>
/// Random loss of 10 % of all packets on the namespace's loopback (iptables statistic match on INPUT: peer and client
/// traffic alike). Used instead of netem loss so that it works on kernels without sch_netem.
/// </summary>
public sealed class PacketLoss : Fault
{
    private static readonly string[] Rule = ["INPUT", "-m", "statistic", "--mode", "random", "--probability", "0.10", "-j", "DROP"];

    /// <inheritdoc />
    public override string Name => "loss-10pct";

    /// <inheritdoc />
    public override string Description => "10 % of all loopback packets dropped at random (iptables statistic; clients and peers alike)";

    /// <inheritdoc />
    public override Task InjectAsync(ChaosCluster cluster, FaultTarget target) => cluster.Namespace.IptablesAsync(["-A", .. Rule]);

    /// <inheritdoc />
    public override Task HealAsync(ChaosCluster cluster) => cluster.Namespace.IptablesAsync(["-D", .. Rule]);
}

/// <summary>
/// tc netem on the namespace's lo: 20 ms ± 10 ms delay with reordering, for every packet (clients and peers alike).
/// Needs the kernel's sch_netem; where it is missing the scenario reports that and measures nothing.
/// </summary>
public sealed class NetemDelay : Fault
{
    /// <inheritdoc />
    public override string Name => "netem-delay";

    /// <inheritdoc />
    public override string Description => "tc netem delay 20ms 10ms reorder 25% on lo (all traffic)";

    /// <summary>Whether sch_netem can be used here (probed in a throwaway namespace).</summary>
    public static async Task<bool> AvailableAsync()
    {
        var name = $"keel-chaos-probe-{Environment.ProcessId}";
        await using var ns = await NetworkNamespace.CreateAsync(name).ConfigureAwait(false);
        var result = await ns.ExecAsync("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms").ConfigureAwait(false);
        return result.ExitCode == 0;
    }

    /// <inheritdoc />
    public override Task InjectAsync(ChaosCluster cluster, FaultTarget target) =>
        cluster.Namespace.ExecMustAsync("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "20ms", "10ms", "reorder", "25%", "50%");

    /// <inheritdoc />
    public override Task HealAsync(ChaosCluster cluster) => cluster.Namespace.ExecMustAsync("tc", "qdisc", "del", "dev", "lo", "root");
}

/// <summary>
/// The wall clock of one member jumps by <c>offset</c> (libfaketime offset file, re-read each second) and jumps back at
/// healing; CLOCK_MONOTONIC is left alone. The member is n1 (the only one started under libfaketime), made leader or
/// follower first with MoveLeader; the move happens inside the fault window. Keel only: etcd (Go) reads the clock through the vDSO, not libc.
/// </summary>
public sealed class ClockJump(string name, bool leader, string offset) : Fault
{
    /// <inheritdoc />
    public override string Name => name;

    /// <inheritdoc />
    public override string Description => $"the {(leader ? "leader" : "follower")}'s wall clock jumps {offset} (libfaketime), back at healing";

    /// <inheritdoc />
    public override bool NeedsFaketime => true;

    /// <inheritdoc />
    public override string? UnsupportedFor(ServerKind kind) =>
        kind == ServerKind.Etcd ? "Go reads the clock via the vDSO: libfaketime has no effect on etcd" : null;

    /// <inheritdoc />
    public override async Task InjectAsync(ChaosCluster cluster, FaultTarget target)
    {
        // Only n1 runs under libfaketime: make it the leader, or a follower, as the fault asks.
        Isolated = 0;
        if (leader && target.Leader != 0) await cluster.MoveLeaderAsync(0, TimeSpan.FromSeconds(20)).ConfigureAwait(false);
        if (!leader && target.Leader == 0) await cluster.MoveLeaderAsync(1, TimeSpan.FromSeconds(20)).ConfigureAwait(false);
        await File.WriteAllTextAsync(cluster.Members[Isolated].FaketimeFile!, offset + "\n").ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override Task HealAsync(ChaosCluster cluster) => File.WriteAllTextAsync(cluster.Members[Isolated].FaketimeFile!, "+0\n");
}

/// <summary>
/// Member n3's data directory is a 160 MiB tmpfs; at injection a filler file takes all but 256 KiB of it and 1 MiB puts
/// through n1/n2 fill n3's preallocated 64 MiB WAL segment until it cannot create the next one (NOSPACE); at healing the
/// filler is deleted. Keel only: etcd 3.4 panics when a WAL write fails.
/// </summary>
public sealed class DiskFull : Fault
{
    private const int TmpfsMegabytes = 160;
    private string? _mount;
    private CancellationTokenSource? _stopBulk;
    private Task? _bulk;

    /// <inheritdoc />
    public override string Name => "disk-full";

    /// <inheritdoc />
    public override string Description => "n3's data directory on a 160 MiB tmpfs filled (filler file + 1 MiB puts until NOSPACE); filler deleted at healing";

    /// <inheritdoc />
    public override TimeSpan MinimumWindow => TimeSpan.FromSeconds(10);

    /// <inheritdoc />
    public override string? UnsupportedFor(ServerKind kind) =>
        kind == ServerKind.Etcd ? "etcd 3.4 panics (the member exits) when its WAL cannot be written" : null;

    /// <inheritdoc />
    public override ClusterSpec Customize(ClusterSpec spec) =>
        spec with { DataDirectoryOf = i => i == 2 ? Path.Combine(_mount!, "n3") : null };

    /// <inheritdoc />
    public override async Task PrepareAsync()
    {
        _mount = Directory.CreateTempSubdirectory("keel-chaos-tmpfs-").FullName;
        await Shell.MustAsync("mount", "-t", "tmpfs", "-o", $"size={TmpfsMegabytes}m", "tmpfs", _mount).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async Task CleanupAsync()
    {
        if (_mount is null) return;
        await Shell.RunAsync("umount", ["-l", _mount]).ConfigureAwait(false);
        try { Directory.Delete(_mount, recursive: true); } catch (IOException) { }
    }

    /// <inheritdoc />
    public override async Task InjectAsync(ChaosCluster cluster, FaultTarget target)
    {
        Isolated = 2;
        var filler = Path.Combine(_mount!, "filler");
        var free = new DriveInfo(_mount!).AvailableFreeSpace;
        await using (var file = new FileStream(filler, FileMode.CreateNew, FileAccess.Write))
        {
            var chunk = new byte[1 << 20];
            for (var left = free - 256 * 1024; left > 0; left -= chunk.Length) await file.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, left))).ConfigureAwait(false);
        }
        _stopBulk = new CancellationTokenSource();
        var token = _stopBulk.Token;
        _bulk = Task.Run(async () =>
        {
            var value = Google.Protobuf.ByteString.CopyFrom(new byte[1 << 20]);
            for (var i = 0; i < 100 && !token.IsCancellationRequested; i++)
            {
                if (cluster.Members[2].Tail().Contains("NOSPACE", StringComparison.Ordinal)) break;
                try
                {
                    await cluster.Members[i % 2].Kv.PutAsync(new Keel.Protocol.Etcd.Etcdserverpb.PutRequest { Key = Google.Protobuf.ByteString.CopyFromUtf8($"chaos/big/{i}"), Value = value },
                        deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: token).ConfigureAwait(false);
                }
                catch (Grpc.Core.RpcException) { }
            }
        });
    }

    /// <inheritdoc />
    public override async Task HealAsync(ChaosCluster cluster)
    {
        if (_stopBulk is not null) await _stopBulk.CancelAsync().ConfigureAwait(false);
        if (_bulk is not null) await _bulk.ConfigureAwait(false);
        Note = cluster.Members[2].Tail().Contains("NOSPACE", StringComparison.Ordinal) ? "NOSPACE raised on n3" : "NOSPACE not reached in the window";
        File.Delete(Path.Combine(_mount!, "filler"));
        _stopBulk?.Dispose();
    }
}

/// <summary>
/// A follower is removed from the cluster (MemberRemove through the leader) under load, its process stopped and its
/// data deleted; at healing it is added back (MemberAdd, same peer URL) and started empty with
/// <c>--initial-cluster-state existing</c>, so recovery includes catching up from the leader.
/// </summary>
public sealed class MembershipChange : Fault
{
    /// <inheritdoc />
    public override string Name => "member-remove-add";

    /// <inheritdoc />
    public override string Description => "a follower removed (MemberRemove) under load, re-added empty (MemberAdd) at healing";

    /// <inheritdoc />
    public override async Task InjectAsync(ChaosCluster cluster, FaultTarget target)
    {
        Isolated = target.Follower;
        var member = cluster.Members[Isolated];
        var id = (await member.Maintenance.StatusAsync(new Keel.Protocol.Etcd.Etcdserverpb.StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(5)).ConfigureAwait(false)).Header.MemberId;
        await RetryAsync(() => cluster.Members[target.Leader].Cluster.MemberRemoveAsync(new Keel.Protocol.Etcd.Etcdserverpb.MemberRemoveRequest { ID = id }, deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync).ConfigureAwait(false);
        await cluster.KillAsync(Isolated).ConfigureAwait(false);
        Directory.Delete(member.DataDirectory, recursive: true);
    }

    /// <inheritdoc />
    public override async Task HealAsync(ChaosCluster cluster)
    {
        var member = cluster.Members[Isolated];
        var via = cluster.Members.First(m => m.Index != Isolated);
        var request = new Keel.Protocol.Etcd.Etcdserverpb.MemberAddRequest();
        request.PeerURLs.Add(member.PeerUrl);
        await RetryAsync(() => via.Cluster.MemberAddAsync(request, deadline: DateTime.UtcNow.AddSeconds(5)).ResponseAsync).ConfigureAwait(false);
        cluster.Restart(Isolated);
    }

    private static async Task RetryAsync<T>(Func<Task<T>> call)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await call().ConfigureAwait(false);
                return;
            }
            catch (Grpc.Core.RpcException) when (clock.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(200).ConfigureAwait(false);
            }
        }
    }
}
