using Grpc.Core;
using Keel.HybridClock;
using Keel.Mvcc;
using Keel.Protocol.V1;
using Keel.Server.Hosting;
using HybridTimestamp = Keel.HybridClock.HybridTimestamp;

namespace Keel.Server.Api;

/// <summary>
/// Keel's own service (<c>keel.v1.KeelService</c>): reads "as of" a wall-clock time, the revision current at a time,
/// the changes between two times (the audit question "what changed between 2 PM and 3 PM"), and the members' health.
/// Times resolve through the hybrid-clock timestamp every revision carries.
/// </summary>
internal sealed class KeelApi(NodeHost host, GossipHost gossip, Auth.AuthGate gate) : KeelService.KeelServiceBase
{
    public override async Task<ReadAtResponse> ReadAt(ReadAtRequest request, ServerCallContext context)
    {
        gate.CheckRead(context, request.Key.ToByteArray(), request.RangeEnd.ToByteArray());
        var (revision, timestamp) = await ResolveAsync(request.AtUnixMs, !request.Serializable);
        var response = new ReadAtResponse { ResolvedRevision = revision, ResolvedTimestamp = ToProto(timestamp) };
        if (revision == 0)
        {
            response.Header = host.Header(host.Status.Revision);
            return response;
        }
        var result = await host.ReadAsync(new RangeRequest
        {
            Key = request.Key.ToByteArray(),
            RangeEnd = request.RangeEnd.ToByteArray(),
            Revision = revision,
            Limit = request.Limit,
            KeysOnly = request.KeysOnly,
            CountOnly = request.CountOnly,
        }, linearizable: !request.Serializable);
        Errors.ThrowIfFailed(result);
        response.Header = host.Header(result.Range!.Revision);
        foreach (var kv in result.Range.Kvs) response.Kvs.Add(ProtoMapping.ToProto(kv));
        response.More = result.Range.More;
        response.Count = result.Range.Count;
        return response;
    }

    public override async Task<RevisionAtResponse> RevisionAt(RevisionAtRequest request, ServerCallContext context)
    {
        var (revision, timestamp) = await ResolveAsync(request.AtUnixMs, !request.Serializable);
        return new RevisionAtResponse { Header = host.Header(host.Status.Revision), Revision = revision, Timestamp = ToProto(timestamp) };
    }

    public override async Task<ChangesBetweenResponse> ChangesBetween(ChangesBetweenRequest request, ServerCallContext context)
    {
        gate.CheckRead(context, request.Key.ToByteArray(), request.RangeEnd.ToByteArray());
        if (request.ToUnixMs < request.FromUnixMs) throw Errors.InvalidArgument("keel: to_unix_ms is before from_unix_ms");
        await host.BarrierAsync();
        return await host.InvokeAsync(node =>
        {
            var store = node.Store;
            var from = Math.Max(store.RevisionAt((long)new HybridTimestamp(request.FromUnixMs, 0).Raw - 1) + 1, Math.Max(2, store.CompactRevision));
            var to = store.RevisionAt((long)new HybridTimestamp(request.ToUnixMs, HybridTimestamp.MaxLogical).Raw);
            var response = new ChangesBetweenResponse { Header = host.Header(store.CurrentRevision) };
            if (store.CompactRevision > 1 && request.FromUnixMs <= store.TimestampPhysicalMsOrZero(store.CompactRevision)) response.CompactRevision = store.CompactRevision;
            if (from > to) return response;
            var events = store.Events(from, request.Key.ToByteArray(), request.RangeEnd.ToByteArray(), to);
            foreach (var change in events)
            {
                if (request.Limit > 0 && response.Events.Count >= request.Limit)
                {
                    response.More = true;
                    break;
                }
                response.Events.Add(new TimedEvent
                {
                    Event = ProtoMapping.ToProto(change, request.PrevKv),
                    Timestamp = ToProto(HybridTimestamp.FromRaw((ulong)store.TimestampOf(change.Kv.ModRevision))),
                });
            }
            return response;
        });
    }

    public override async Task<MembersResponse> Members(MembersRequest request, ServerCallContext context)
    {
        if (request.Linearizable) await host.BarrierAsync();
        var members = await host.MembersAsync();
        var status = host.Status;
        var gossiped = gossip.Agent?.Members ?? [];
        var matched = new HashSet<ulong>();
        var response = new MembersResponse { Header = host.Header(status.Revision) };
        foreach (var member in members)
        {
            var view = new MemberStatus { Id = member.ID, Name = member.Name, IsLearner = member.IsLearner, IsLeader = member.ID == status.Leader, LastContactAgoMs = -1, IsRaftMember = true, Role = "server" };
            view.PeerUrls.AddRange(member.PeerURLs);
            view.ClientUrls.AddRange(member.ClientURLs);
            var endpoints = member.PeerURLs.Select(u => Uri.TryCreate(u, UriKind.Absolute, out var url) ? GossipHost.TryEndpointOf(url) : null).ToArray();
            foreach (var seen in gossiped)
            {
                if (!endpoints.Any(e => e is not null && e.Equals(seen.Endpoint))) continue;
                Describe(view, seen);
                matched.Add(seen.Id);
            }
            response.Members.Add(view);
        }
        foreach (var seen in gossiped.Where(m => !matched.Contains(m.Id)).OrderBy(m => m.Endpoint.ToString(), StringComparer.Ordinal))
        {
            var view = new MemberStatus { Id = seen.Id, Name = seen.Endpoint.ToString(), LastContactAgoMs = -1 };
            Describe(view, seen);
            response.Members.Add(view);
        }
        return response;
    }

    private static void Describe(MemberStatus view, Keel.Gossip.Hosting.AgentMember seen)
    {
        view.GossipAddress = seen.Endpoint.ToString();
        view.GossipState = seen.Status.ToString().ToLowerInvariant();
        view.Health = seen.Health.ToString().ToLowerInvariant();
        view.Incarnation = (ulong)Math.Max(0, seen.Incarnation);
        view.Phi = double.IsFinite(seen.Phi) ? seen.Phi : double.MaxValue;
        view.Zone = seen.Zone;
        if (seen.Tags is { } tags && !view.IsRaftMember) view.Role = tags.Role;
    }

    public override async Task<KeyringResponse> Keyring(KeyringRequest request, ServerCallContext context)
    {
        // The answer holds the keys: administration, as etcd's other cluster-wide calls.
        gate.CheckAdmin(context);
        if (request.Action != KeyringRequest.Types.Action.List)
        {
            byte[] key;
            try
            {
                key = Keel.Gossip.Hosting.GossipKeyFile.ParseKey(request.Key, "keel: key");
            }
            catch (ArgumentException invalid)
            {
                throw Errors.InvalidArgument(invalid.Message);
            }
            var action = request.Action switch
            {
                KeyringRequest.Types.Action.Install => Keel.Node.Keyring.KeyringAction.Install,
                KeyringRequest.Types.Action.Use => Keel.Node.Keyring.KeyringAction.Use,
                KeyringRequest.Types.Action.Remove => Keel.Node.Keyring.KeyringAction.Remove,
                _ => throw Errors.InvalidArgument($"keel: unknown keyring action {(int)request.Action}"),
            };
            var change = new Keel.Node.Keyring.KeyringChange(action, [key]);
            // Checked here for a clear answer without a proposal; checked again at apply, where the log order decides.
            if (host.GossipKeys.Refusal(change) is { } refusal) throw Errors.ToRpc(Keel.Node.KeelError.KeyringRefused(refusal));
            Errors.ThrowIfFailed(await host.WriteAsync(Keel.Node.KvCommand.OfKeyring(change)));
        }
        var replicated = host.GossipKeys;
        var response = new KeyringResponse { Header = host.Header(host.Status.Revision), Local = new KeyringMemberView { MemberId = host.MemberId, Name = host.Options.Name } };
        var first = true;
        foreach (var key in replicated.Keys)
        {
            response.Keys.Add(new KeyringKey { Key = Convert.ToBase64String(key), Primary = first, Fingerprint = Keel.Gossip.Hosting.GossipKeyFile.Fingerprint(key) });
            first = false;
        }
        if (gossip.Agent is { } agent)
        {
            try
            {
                foreach (var key in await agent.KeysAsync()) response.Local.Fingerprints.Add(Keel.Gossip.Hosting.GossipKeyFile.Fingerprint(key));
            }
            catch (ObjectDisposedException)
            {
            }
        }
        return response;
    }

    public override Task<HealthResponse> Health(HealthRequest request, ServerCallContext context)
    {
        var status = host.Status;
        var response = new HealthResponse
        {
            Header = host.Header(status.Revision),
            Healthy = status.Leader != 0,
            LeaderId = status.Leader,
            RaftTerm = status.Term,
            CommitIndex = status.CommitIndex,
            AppliedIndex = status.AppliedIndex,
            ClockNow = ToProto(new HybridTimestamp(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), 0)),
            MaxClockOffsetMs = 500,
        };
        if (status.Leader == 0) response.Errors.Add("no leader");
        if (gossip.Agent is { } agent)
        {
            var members = agent.Members;
            response.GossipAlive = members.Count(m => m.Status == Keel.Gossip.MemberStatus.Alive);
            response.GossipSuspect = members.Count(m => m.Status == Keel.Gossip.MemberStatus.Suspect);
            response.GossipDead = members.Count(m => m.Status == Keel.Gossip.MemberStatus.Dead);
            var counters = agent.Counters;
            response.GossipForgedDropped = (ulong)counters.DroppedForged;
            response.GossipReplayedDropped = (ulong)counters.DroppedReplayed;
            response.GossipPlaintextDropped = (ulong)counters.DroppedPlaintext;
        }
        else
        {
            response.Errors.Add("gossip: not joined yet");
        }
        return Task.FromResult(response);
    }

    private async Task<(long Revision, HybridTimestamp Timestamp)> ResolveAsync(long atUnixMs, bool linearizable)
    {
        // A ReadIndex round first, so "as of now" includes every write acknowledged before the call.
        if (linearizable) await host.BarrierAsync();
        return await host.InvokeAsync(node =>
        {
            var store = node.Store;
            var at = (long)new HybridTimestamp(atUnixMs, HybridTimestamp.MaxLogical).Raw;
            try
            {
                var revision = store.RevisionAt(at);
                if (revision <= 1) return (0L, default(HybridTimestamp));
                return (revision, HybridTimestamp.FromRaw((ulong)store.TimestampOf(revision)));
            }
            catch (MvccException refused)
            {
                throw Errors.ToRpc(Keel.Node.KeelError.FromMvcc(refused));
            }
        });
    }

    private static Keel.Protocol.V1.HybridTimestamp ToProto(HybridTimestamp timestamp) =>
        new() { WallTimeUnixMs = timestamp.PhysicalMs, Logical = (uint)timestamp.Logical };
}

/// <summary>Small helpers over the store for the time-based reads.</summary>
internal static class StoreTimeExtensions
{
    public static long TimestampPhysicalMsOrZero(this MvccStore store, long revision)
    {
        if (revision <= 1) return 0;
        try
        {
            return HybridTimestamp.FromRaw((ulong)store.TimestampOf(revision)).PhysicalMs;
        }
        catch (MvccException)
        {
            return 0;
        }
    }
}
