using Keel.Core;
using Keel.Mvcc;

namespace Keel.Node;

/// <summary>An alarm type, with etcd's numbers (<c>etcdserverpb.AlarmType</c>).</summary>
public enum AlarmType : byte
{
    /// <summary>No alarm (in a request: every alarm).</summary>
    None = 0,

    /// <summary>The space quota is exceeded or the disk is full: writes that grow the store are refused.</summary>
    NoSpace = 1,

    /// <summary>A member's state disagrees with the others' (etcd's corruption check).</summary>
    Corrupt = 2,
}

/// <summary>What an alarm request does, with etcd's numbers (<c>AlarmRequest.AlarmAction</c>).</summary>
public enum AlarmAction : byte
{
    /// <summary>List the active alarms.</summary>
    Get = 0,

    /// <summary>Raise an alarm.</summary>
    Activate = 1,

    /// <summary>Clear an alarm.</summary>
    Deactivate = 2,
}

/// <summary>One active alarm: which member raised it and what it is (etcd's <c>AlarmMember</c>).</summary>
/// <param name="MemberId">The member the alarm concerns.</param>
/// <param name="Alarm">The alarm.</param>
public readonly record struct AlarmMember(ulong MemberId, AlarmType Alarm) : IComparable<AlarmMember>
{
    /// <inheritdoc/>
    public int CompareTo(AlarmMember other)
    {
        var byMember = MemberId.CompareTo(other.MemberId);
        return byMember != 0 ? byMember : Alarm.CompareTo(other.Alarm);
    }
}

/// <summary>An alarm raised or cleared through the log.</summary>
/// <param name="Action">Activate or Deactivate.</param>
/// <param name="MemberId">The member the alarm concerns.</param>
/// <param name="Alarm">The alarm.</param>
public sealed record AlarmChange(AlarmAction Action, ulong MemberId, AlarmType Alarm);

// Alarms: the replicated alarm table (etcd's alarm store), the space quota that raises NOSPACE, and the local disk-full
// state of this member's WAL.
public sealed partial class KeelNode
{
    // Replicated: every replica applies the same alarm changes in log order and refuses the same writes.
    private readonly SortedSet<AlarmMember> _alarms = [];
    // Local: when this node last proposed the quota alarm (one proposal per request timeout, not one per refused write;
    // a proposal lost with a leader change is made again).
    private long _noSpaceAlarmProposedAtMs = long.MinValue / 2;

    /// <summary>
    /// The active alarms: the replicated table, plus NOSPACE for this member while its disk is full (that one cannot go
    /// through the log: the log cannot be written).
    /// </summary>
    public IReadOnlyList<AlarmMember> Alarms
    {
        get
        {
            var alarms = new SortedSet<AlarmMember>(_alarms);
            if (IsDiskFull) alarms.Add(new AlarmMember(Id, AlarmType.NoSpace));
            return [.. alarms];
        }
    }

    /// <summary>True when any alarm is active (cheap: no list is built).</summary>
    public bool HasAlarms => _alarms.Count > 0 || IsDiskFull;

    /// <summary>True while a NOSPACE alarm is active anywhere in the cluster (as this replica has applied it).</summary>
    public bool NoSpaceAlarmActive => _alarms.Any(a => a.Alarm == AlarmType.NoSpace);

    /// <summary>
    /// Raises or clears an alarm through the log (etcd's Maintenance.Alarm with ACTIVATE or DEACTIVATE). The answer
    /// lists the alarms that changed. <see cref="AlarmAction.Get"/> is answered at once from <see cref="Alarms"/>.
    /// </summary>
    /// <param name="requestId">The client's id for the request, echoed in the answer.</param>
    /// <param name="change">The alarm to raise or clear.</param>
    public void SubmitAlarm(ulong requestId, AlarmChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        if (change.Action == AlarmAction.Get)
        {
            Respond(new KvResult { RequestId = requestId, Alarms = Alarms });
            return;
        }
        if (ValidateAlarm(change) is { } problem)
        {
            Respond(KvResult.Failed(requestId, KeelError.InvalidRequest(problem)));
            return;
        }
        Submit(requestId, KvCommand.OfAlarm(change));
    }

    private static string? ValidateAlarm(AlarmChange change) =>
        change.Action is not (AlarmAction.Activate or AlarmAction.Deactivate) ? $"keel: invalid alarm action {(int)change.Action} (GET, ACTIVATE or DEACTIVATE: 0 to 2)"
        : !Enum.IsDefined(change.Alarm) ? $"keel: invalid alarm type {(int)change.Alarm} (NONE, NOSPACE or CORRUPT: 0 to 2)"
        : null;

    private KvResult ApplyAlarm(AlarmChange change)
    {
        if (ValidateAlarm(change) is { } problem) return KvResult.Failed(0, KeelError.InvalidRequest(problem));
        var changed = new List<AlarmMember>();
        if (change.Action == AlarmAction.Activate)
        {
            // etcd ignores activating NONE; an alarm already active is listed again.
            if (change.Alarm != AlarmType.None)
            {
                var alarm = new AlarmMember(change.MemberId, change.Alarm);
                _alarms.Add(alarm);
                changed.Add(alarm);
            }
        }
        else
        {
            // Deactivating NONE clears every alarm of the member (etcdctl alarm disarm sends each listed alarm).
            foreach (var alarm in _alarms.Where(a => a.MemberId == change.MemberId && (change.Alarm == AlarmType.None || a.Alarm == change.Alarm)).ToArray())
            {
                _alarms.Remove(alarm);
                changed.Add(alarm);
            }
        }
        return new KvResult { RequestId = 0, Alarms = changed };
    }

    /// <summary>True if <paramref name="command"/> can make the store larger (etcd's quota cost is positive).</summary>
    private static bool GrowsStore(KvCommand command) => command.Kind switch
    {
        KvCommandKind.Put or KvCommandKind.LeaseGrant => true,
        KvCommandKind.Txn => TxnHasPut(command.Txn!, 0),
        _ => false,
    };

    private static bool TxnHasPut(TxnRequest txn, int depth)
    {
        if (depth > MvccStore.MaxTxnNestingDepth) return true;
        foreach (var op in txn.Success.Concat(txn.Failure))
            if (op.Put is not null || (op.Txn is { } nested && TxnHasPut(nested, depth + 1))) return true;
        return false;
    }

    /// <summary>The bytes a write may add (etcd's quota cost): keys and values of its puts.</summary>
    private static long CostOf(KvCommand command) => command.Kind switch
    {
        KvCommandKind.Put => command.Put!.Key.Length + command.Put.Value.Length + 128,
        KvCommandKind.LeaseGrant => 64,
        KvCommandKind.Txn => CommandCodec.EncodedSize(command),
        _ => 0,
    };

    /// <summary>
    /// The quota check before a write is proposed (etcd's quota.Available): refused when the alarm is active or the
    /// write would take the store past the quota, in which case this node raises the alarm through the log once.
    /// </summary>
    private bool RefusedByQuota(ulong requestId, KvCommand command)
    {
        if (!GrowsStore(command)) return false;
        if (IsDiskFull || NoSpaceAlarmActive)
        {
            Respond(KvResult.Failed(requestId, KeelError.NoSpace));
            return true;
        }
        var quota = _options.QuotaBackendBytes > 0 ? _options.QuotaBackendBytes : KeelNodeOptions.DefaultQuotaBackendBytes;
        if (_store.SizeBytes + CostOf(command) <= quota) return false;
        var nowMs = _nowMs == long.MinValue ? 0 : _nowMs;
        if (nowMs - _noSpaceAlarmProposedAtMs >= _options.RequestTimeoutMs && (IsLeader || _raft.Leader != 0))
        {
            _noSpaceAlarmProposedAtMs = nowMs;
            var header = new CommandHeader(NextProposalId(), Id, _clock.Now(_wallMs).Raw);
            _raft.Propose(CommandCodec.Encode(header, KvCommand.OfAlarm(new AlarmChange(AlarmAction.Activate, Id, AlarmType.NoSpace))));
        }
        Respond(KvResult.Failed(requestId, KeelError.NoSpace));
        return true;
    }

    private void WriteAlarms(System.IO.BinaryWriter writer)
    {
        writer.Write(_alarms.Count);
        foreach (var alarm in _alarms)
        {
            writer.Write(alarm.MemberId);
            writer.Write((byte)alarm.Alarm);
        }
    }
}
