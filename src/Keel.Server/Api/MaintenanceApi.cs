using Google.Protobuf;
using Grpc.Core;
using Keel.Mvcc;
using Keel.Protocol.Etcd.Etcdserverpb;
using Keel.Server.Hosting;

namespace Keel.Server.Api;

/// <summary>
/// etcd's Maintenance service (<c>etcdserver/api/v3rpc/maintenance.go</c>): status, alarms, hashes, defragment,
/// snapshot and leader transfer.
/// </summary>
internal sealed class MaintenanceApi(NodeHost host, Auth.AuthGate gate) : Maintenance.MaintenanceBase
{
    /// <summary>The etcd API version Keel speaks; etcdctl prints it in <c>endpoint status</c>.</summary>
    public const string ApiVersion = "3.4.23";

    public override async Task<StatusResponse> Status(StatusRequest request, ServerCallContext context)
    {
        var (status, alarms) = await host.InvokeAsync(node => (node.Status(), node.Alarms));
        var response = new StatusResponse
        {
            Header = host.Header(status.Revision),
            Version = ApiVersion,
            DbSize = DataDirBytes(),
            DbSizeInUse = status.DbSizeBytes,
            Leader = status.Leader,
            RaftIndex = status.CommittedIndex,
            RaftTerm = status.Term,
            RaftAppliedIndex = status.AppliedIndex,
            IsLearner = status.IsLearner,
        };
        var leader = status.Leader;
        if (leader == 0) response.Errors.Add("etcdserver: no leader");
        foreach (var alarm in alarms)
            response.Errors.Add($"memberID:{alarm.MemberId} alarm:{(alarm.Alarm == Keel.Node.AlarmType.NoSpace ? "NOSPACE" : alarm.Alarm.ToString().ToUpperInvariant())}");
        return response;
    }

    /// <summary>
    /// etcd's alarms: GET lists the active ones (all, or one type), ACTIVATE and DEACTIVATE change them through the log
    /// so every member agrees (etcdctl alarm list / alarm disarm). NOSPACE is raised by the space quota or a full disk.
    /// </summary>
    public override async Task<AlarmResponse> Alarm(AlarmRequest request, ServerCallContext context)
    {
        if (!Enum.IsDefined(request.Action))
            throw Errors.InvalidArgument($"keel: invalid alarm action {(int)request.Action} (GET, ACTIVATE or DEACTIVATE: 0 to 2)");
        if (!Enum.IsDefined(request.Alarm))
            throw Errors.InvalidArgument($"keel: invalid alarm type {(int)request.Alarm} (NONE, NOSPACE or CORRUPT: 0 to 2)");
        IReadOnlyList<Keel.Node.AlarmMember> alarms;
        // Listing alarms is open (etcdctl endpoint status reads them); raising or clearing one is root's.
        if (request.Action != AlarmRequest.Types.AlarmAction.Get) gate.CheckAdmin(context);
        if (request.Action == AlarmRequest.Types.AlarmAction.Get)
        {
            alarms = await host.InvokeAsync(node => node.Alarms);
            if (request.Alarm != AlarmType.None) alarms = alarms.Where(a => (int)a.Alarm == (int)request.Alarm).ToArray();
        }
        else
        {
            var change = new Keel.Node.AlarmChange((Keel.Node.AlarmAction)request.Action, request.MemberID, (Keel.Node.AlarmType)request.Alarm);
            var result = await host.RequestAsync((node, requestId) => node.SubmitAlarm(requestId, change));
            Errors.ThrowIfFailed(result);
            alarms = result.Alarms ?? [];
        }
        var response = new AlarmResponse { Header = host.Header(host.Status.Revision) };
        foreach (var alarm in alarms) response.Alarms.Add(new AlarmMember { MemberID = alarm.MemberId, Alarm = (AlarmType)(int)alarm.Alarm });
        return response;
    }

    public override async Task<HashKVResponse> HashKV(HashKVRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        // Captured on the loop (reference copies), hashed off it: O(store) work never stalls the node (issue 11).
        var capture = await host.InvokeAsync(node =>
        {
            try
            {
                return node.Store.CaptureForHash(request.Revision);
            }
            catch (MvccException refused)
            {
                throw Errors.ToRpc(Keel.Node.KeelError.FromMvcc(refused));
            }
        });
        var hash = await Task.Run(capture.Hash);
        var current = capture.CurrentRevision;
        // etcd reports compact_revision -1 until the first compaction (its store starts with compactMainRev = -1).
        return new HashKVResponse { Header = host.Header(current), Hash = hash.Hash, CompactRevision = hash.CompactRevision > 0 ? hash.CompactRevision : -1, HashRevision = hash.HashRevision };
    }

    public override async Task<HashResponse> Hash(HashRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        var capture = await host.InvokeAsync(node => node.Store.CaptureForHash(0));
        var hash = await Task.Run(capture.Hash);
        return new HashResponse { Header = host.Header(capture.CurrentRevision), Hash = hash.Hash };
    }

    public override Task<DefragmentResponse> Defragment(DefragmentRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        // The store lives in memory over a WAL whose old segments are deleted at snapshot time: there is no file to
        // defragment, so this succeeds at once (etcdctl defrag reports success, as it would on a compacted etcd).
        return Task.FromResult(new DefragmentResponse { Header = host.Header(host.Status.Revision) });
    }

    /// <summary>
    /// The whole replicated state at one applied index — store with history, leases, members, idempotency table,
    /// alarms — followed by its SHA-256 (<see cref="Keel.Node.KeelNode.EncodeBackup()"/>), streamed in 64 KiB chunks:
    /// <c>keel snapshot save</c> writes it, <c>keel snapshot restore</c> starts a new cluster from it. (etcdctl snapshot
    /// save receives the same bytes but expects a bbolt file: see docs/operations.md.)
    /// </summary>
    public override async Task Snapshot(SnapshotRequest request, IServerStreamWriter<SnapshotResponse> responseStream, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        // Captured on the loop, encoded and hashed off it (issue 11).
        var (captured, revision) = await host.InvokeAsync(node => (node.CaptureBackup(), node.Store.CurrentRevision));
        var backup = await Task.Run(() => Keel.Node.KeelNode.EncodeBackup(captured));
        const int chunkBytes = 64 * 1024;
        for (var offset = 0; offset < backup.Length; offset += chunkBytes)
        {
            var length = Math.Min(chunkBytes, backup.Length - offset);
            await responseStream.WriteAsync(new SnapshotResponse
            {
                Header = host.Header(revision),
                RemainingBytes = (ulong)(backup.Length - offset - length),
                Blob = UnsafeByteOperations.UnsafeWrap(backup.AsMemory(offset, length)),
                Version = ApiVersion,
            }, context.CancellationToken);
        }
    }

    public override async Task<MoveLeaderResponse> MoveLeader(MoveLeaderRequest request, ServerCallContext context)
    {
        gate.CheckAdmin(context);
        var (isLeader, known) = await host.InvokeAsync(node => (node.IsLeader, node.Members.Any(m => m.Id == request.TargetID && !m.IsLearner)));
        if (!isLeader) throw new RpcException(new Grpc.Core.Status(StatusCode.FailedPrecondition, "etcdserver: not leader"));
        if (!known) throw new RpcException(new Grpc.Core.Status(StatusCode.NotFound, "etcdserver: bad leader transferee"));
        await host.InvokeAsync(node =>
        {
            node.TransferLeadership(request.TargetID);
            return true;
        });
        var deadline = DateTime.UtcNow.AddMilliseconds(host.Options.ElectionTimeoutMs * 5L);
        while (DateTime.UtcNow < deadline)
        {
            if (host.Status.Leader == request.TargetID) return new MoveLeaderResponse { Header = host.Header(host.Status.Revision) };
            await Task.Delay(10, context.CancellationToken);
        }
        throw new RpcException(new Grpc.Core.Status(StatusCode.Unavailable, "etcdserver: leader transfer timeout"));
    }

    private long DataDirBytes()
    {
        try
        {
            return new DirectoryInfo(host.Directory.Path).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
        }
        catch (IOException)
        {
            return 0;
        }
    }
}

/// <summary>The etcd API version Keel reports, for callers outside this assembly (gossip tags of agents).</summary>
public static class MaintenanceApiVersion
{
    /// <summary>See <see cref="MaintenanceApi.ApiVersion"/>.</summary>
    public const string Text = MaintenanceApi.ApiVersion;
}
