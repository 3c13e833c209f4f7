using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Keel.Leases.Tests;

/// <summary>
/// Laws of the lease table over random operation sequences. Each byte array is a program: every byte pair is one
/// operation (kind, argument), so FsCheck shrinks a failure to a short program.
/// </summary>
public class LeasePropertyTests
{
    private static readonly string[] Resources = ["a", "b", "c"];

    private static readonly LeaseTableOptions ClusterOptions = new() { PromotionExtensionMs = 1_000 };

    /// <summary>
    /// Three replicas apply the same commands (the replicated state machine); one of them, at times none, is primary
    /// and drives expiry by proposing revokes. Checks after every step: replicas agree on every result; no lease
    /// expires before its last keep-alive (or grant) + TTL, across any number of leader changes; a resource is only
    /// acquired after every previous holder's lease is gone, and gone for good reason (revoked, released, or past its
    /// promised deadline) — so a resource never has two live holders; fencing tokens strictly increase.
    /// </summary>
    [Property(MaxTest = 500, Replay = "8101,1777")]
    public bool Replicated_tables_never_give_a_resource_two_live_holders_or_expire_a_lease_early(byte[] program)
    {
        var replicas = new[] { new LeaseTable(ClusterOptions), new LeaseTable(ClusterOptions), new LeaseTable(ClusterOptions) };
        var primary = 0;
        replicas[0].Promote(0);
        var nowMs = 0L;
        var promisedDeadline = new Dictionary<long, long>();      // lease -> last keep-alive/grant + TTL
        var endedForGoodReason = new HashSet<long>();             // revoked by a client, or expired after its promise
        var formerHolders = new Dictionary<string, List<long>>(); // resource -> every lease that held it
        ulong lastToken = 0;
        var pendingCheckpoints = new Queue<LeaseCheckpoint[]>();

        T Apply<T>(Func<LeaseTable, T> command)
        {
            var results = replicas.Select(command).ToArray();
            foreach (var r in results) Assert.Equal(Describe(results[0]), Describe(r));
            return results[0];
        }

        long PickLease(int arg)
        {
            var ids = replicas[0].Leases();
            return ids.Length == 0 ? arg + 1 : ids[arg % ids.Length];
        }

        void Revoke(long id, bool byExpiry)
        {
            var result = Apply(t => t.Revoke(id));
            if (!result.IsSuccess) return;
            if (byExpiry) Assert.True(nowMs >= promisedDeadline[id], $"lease {id} expired at {nowMs} before its promised {promisedDeadline[id]}");
            endedForGoodReason.Add(id);
        }

        for (var pc = 0; pc + 1 < program.Length; pc += 2)
        {
            var arg = program[pc + 1];
            switch (program[pc] % 10)
            {
                case 0:
                {
                    var grant = Apply(t => t.GrantMs(0, 1_000 + arg * 40L, nowMs));
                    Assert.True(grant.FencingToken > lastToken);
                    lastToken = grant.FencingToken;
                    promisedDeadline[grant.LeaseId] = nowMs + grant.TtlMs;
                    break;
                }
                case 1:
                {
                    var id = PickLease(arg);
                    var renewed = Apply(t => t.KeepAlive(id, nowMs));
                    if (renewed.IsSuccess) promisedDeadline[id] = nowMs + renewed.TtlMs;
                    break;
                }
                case 2:
                    if (arg % 4 == 0) Revoke(PickLease(arg), byExpiry: false);
                    break;
                case 3:
                case 4:
                    nowMs += arg * 20L;
                    break;
                case 5:
                {
                    var resource = Resources[arg % Resources.Length];
                    var id = PickLease(arg / 3);
                    var acquired = Apply(t => t.Locks.Acquire(resource, id));
                    if (acquired.IsSuccess && !acquired.WasAlreadyHeld)
                    {
                        Assert.True(acquired.FencingToken > lastToken);
                        lastToken = acquired.FencingToken;
                        var holders = formerHolders.TryGetValue(resource, out var list) ? list : formerHolders[resource] = [];
                        foreach (var former in holders)
                            Assert.True(!replicas[0].Contains(former) && endedForGoodReason.Contains(former),
                                $"{resource} acquired by {id} while former holder {former} may still believe it holds it");
                        holders.Add(id);
                    }
                    break;
                }
                case 6:
                    if (primary >= 0)
                        foreach (var due in replicas[primary].PeekExpired(nowMs, 1 + arg % 3)) Revoke(due.LeaseId, byExpiry: true);
                    foreach (var (replica, i) in replicas.Select((r, i) => (r, i)))
                        if (i != primary) Assert.Empty(replica.ExpireDue(nowMs, 100));
                    break;
                case 7:
                {
                    // Leader change: the old primary (if any) is demoted, another replica is promoted and checkpoints.
                    if (primary >= 0) replicas[primary].Demote();
                    primary = arg % 4 == 3 ? -1 : arg % 3;
                    if (primary < 0) break;
                    replicas[primary].Promote(nowMs);
                    if (arg % 2 == 0)
                    {
                        var records = replicas[primary].Checkpoint(nowMs);
                        Apply(t => t.ApplyCheckpoint(records, nowMs));
                    }
                    break;
                }
                case 8:
                {
                    // A primary measures a checkpoint and proposes it; it commits (is applied everywhere) at a later
                    // step, possibly after keep-alives or a leader change made it stale.
                    if (arg % 2 == 0 && primary >= 0) pendingCheckpoints.Enqueue(replicas[primary].Checkpoint(nowMs));
                    else if (pendingCheckpoints.TryDequeue(out var records)) Apply(t => t.ApplyCheckpoint(records, nowMs));
                    break;
                }
                case 9:
                {
                    var id = PickLease(arg);
                    var resource = Resources[arg % Resources.Length];
                    // A holder that released the resource itself knows it no longer holds it.
                    if (arg % 2 == 0 && Apply(t => t.Locks.Release(resource, id)) == LeaseStatus.Ok) formerHolders[resource].Remove(id);
                    else Apply(t => t.Attach(id, [(byte)(arg % 7)]));
                    break;
                }
            }
            foreach (var replica in replicas) replica.AssertInvariants();
        }
        return true;
    }

    /// <summary>
    /// A directed run of the replicated scenario: a checkpoint measured before a keep-alive commits after it, then the
    /// leadership moves. Applying the stale checkpoint would let the new leader expire the lease 3 s early.
    /// </summary>
    [Fact]
    public void A_stale_checkpoint_committed_after_a_keep_alive_does_not_shorten_the_lease_across_a_leader_change()
    {
        byte[] program =
        [
            0, 100, // grant lease 1 with TTL 5 s at t=0
            3, 200, // t=4 s
            8, 0,   // the primary measures a checkpoint (1 s left) and proposes it
            3, 5,   // t=4.1 s
            1, 0,   // keep-alive: the client is promised 9.1 s
            8, 1,   // the stale checkpoint commits
            7, 1,   // replica 1 becomes the leader
            3, 150, // t=7.1 s
            6, 0,   // the new leader looks for expired leases
            3, 150, // t=10.1 s
            6, 0,
        ];
        Assert.True(Replicated_tables_never_give_a_resource_two_live_holders_or_expire_a_lease_early(program));
    }

    [Property(MaxTest = 200, Replay = "8102,1777")]
    public bool ExpireDue_is_bounded_and_ordered(byte[] program, PositiveInt max)
    {
        var table = new LeaseTable();
        table.Promote(0);
        var nowMs = 0L;
        var bound = 1 + max.Get % 8;
        foreach (var b in program)
        {
            if (b < 150) table.GrantMs(0, 1_000 + b * 97L, nowMs);
            else if (b < 200) table.KeepAlive(1 + b % Math.Max(1, table.Count), nowMs);
            else nowMs += (b - 199) * 150L;
            if (b % 5 != 0) continue;
            var before = table.Leases().ToDictionary(id => id, id => table.TimeToLive(id, nowMs).RemainingMs);
            var expired = table.ExpireDue(nowMs, bound);
            Assert.True(expired.Count <= bound);
            for (var i = 0; i < expired.Count; i++)
            {
                Assert.True(expired[i].DeadlineMs <= nowMs);
                Assert.Equal(0, before[expired[i].LeaseId]);
                if (i > 0)
                    Assert.True(expired[i - 1].DeadlineMs < expired[i].DeadlineMs
                        || (expired[i - 1].DeadlineMs == expired[i].DeadlineMs && expired[i - 1].LeaseId < expired[i].LeaseId));
            }
            // Everything still in the table comes after what was expired, and nothing due is left unless the bound hit.
            foreach (var id in table.Leases())
            {
                var remaining = table.TimeToLive(id, nowMs).RemainingMs;
                if (expired.Count < bound) Assert.True(remaining > 0);
                if (expired.Count > 0)
                {
                    var last = expired[^1];
                    var deadline = nowMs + remaining;
                    Assert.True(deadline > last.DeadlineMs || (deadline == last.DeadlineMs && id > last.LeaseId));
                }
            }
            table.AssertInvariants();
        }
        return true;
    }

    [Property(MaxTest = 200, Replay = "8103,1777")]
    public bool Fencing_tokens_strictly_increase(byte[] program)
    {
        var table = new LeaseTable();
        table.Promote(0);
        ulong last = 0;
        var nowMs = 0L;
        foreach (var b in program)
        {
            ulong token = 0;
            switch (b % 4)
            {
                case 0: token = table.Grant(0, 2, nowMs).FencingToken; break;
                case 1:
                    var ids = table.Leases();
                    if (ids.Length > 0)
                    {
                        var acquired = table.Locks.Acquire(Resources[b % 3], ids[b % ids.Length]);
                        if (acquired.IsSuccess && !acquired.WasAlreadyHeld) token = acquired.FencingToken;
                    }
                    break;
                case 2: nowMs += b * 10L; table.ExpireDue(nowMs, 3); break;
                case 3: if (table.Count > 0) table.Revoke(table.Leases()[0]); break;
            }
            if (token != 0)
            {
                Assert.True(token > last);
                last = token;
            }
            Assert.Equal(Math.Max(last, table.CurrentFencingToken), table.CurrentFencingToken);
        }
        return true;
    }

    /// <summary>
    /// Snapshot then restore gives the same bytes, and from then on the copy behaves exactly like the original under
    /// any continuation (the original is demoted first, since a restored table starts as a non-primary).
    /// </summary>
    [Property(MaxTest = 200, Replay = "8104,1777")]
    public bool Snapshot_restore_round_trips_and_behaves_identically(byte[] prefix, byte[] suffix)
    {
        var original = new LeaseTable();
        var nowMs = 0L;
        foreach (var b in prefix) Step(original, b, ref nowMs);
        original.Demote();
        var bytes = original.Snapshot();
        var copy = LeaseTable.Restore(bytes);
        Assert.Equal(bytes, copy.Snapshot());
        var copyNowMs = nowMs;
        foreach (var b in suffix)
        {
            var expected = Step(original, b, ref nowMs);
            var actual = Step(copy, b, ref copyNowMs);
            Assert.Equal(expected, actual);
        }
        Assert.Equal(original.Snapshot(), copy.Snapshot());
        return true;
    }

    private static string Step(LeaseTable table, byte b, ref long nowMs)
    {
        var ids = table.Leases();
        var id = ids.Length == 0 ? 1 : ids[b % ids.Length];
        switch (b % 12)
        {
            case 0: return Describe(table.Grant(b % 3 == 0 ? b : 0, b % 7, nowMs));
            case 1: return Describe(table.KeepAlive(id, nowMs));
            case 2: return Describe(table.Revoke(id));
            case 3: nowMs += b * 30L; return "advance";
            case 4: table.Promote(nowMs); return "promote";
            case 5: table.Demote(); return "demote";
            case 6: return Describe(table.ExpireDue(nowMs, 1 + b % 3));
            case 7:
                var records = table.Checkpoint(nowMs);
                return Describe(records) + table.ApplyCheckpoint(records, nowMs);
            case 8: return Describe(table.Locks.Acquire(Resources[b % 3], id));
            case 9: return table.Attach(id, [(byte)(b % 5)]) + "/" + table.Detach(id, [(byte)(b % 4)]);
            case 10: return Describe(table.TimeToLive(id, nowMs, includeKeys: true));
            default: return table.Locks.ValidateFence(Resources[b % 3], (ulong)(b % 9)) + "/" + table.Locks.Release(Resources[b % 3], id);
        }
    }

    private static string Describe(object? value) => value switch
    {
        null => "null",
        ReadOnlyMemory<byte> key => Convert.ToHexString(key.Span),
        string s => s,
        System.Collections.IEnumerable list => "[" + string.Join(",", list.Cast<object?>().Select(Describe)) + "]",
        _ => DescribeProperties(value),
    };

    private static string DescribeProperties(object value)
    {
        var type = value.GetType();
        if (type.IsPrimitive || type.IsEnum) return value.ToString()!;
        var sb = new StringBuilder(type.Name).Append('{');
        foreach (var property in type.GetProperties())
            sb.Append(property.Name).Append('=').Append(Describe(property.GetValue(value))).Append(';');
        return sb.Append('}').ToString();
    }
}
