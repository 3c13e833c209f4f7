using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using static Keel.Storage.Tests.TestDisks;

namespace Keel.Storage.Tests;

/// <summary>Laws of the WAL as FsCheck properties over random operation sequences.</summary>
public sealed class WalProperties
{
    /// <summary>Law: after any sequence of appends (with suffix replacement), hard-state changes and syncs, reopening yields exactly the synced model.</summary>
    [Property(MaxTest = 200)]
    public bool Reopening_yields_exactly_the_synced_state(int[] operations)
    {
        var options = new WalOptions { SegmentSizeBytes = 512 };
        var directory = new MemoryDirectory();
        var model = new List<WalEntry>();
        var synced = new List<WalEntry>();
        var hardState = default(WalHardState);
        var syncedHardState = hardState;
        using (var wal = WriteAheadLog.Open(directory, options, out _))
        {
            foreach (var op in operations)
            {
                var value = (uint)op;
                switch (value % 4)
                {
                    case 0 or 1:
                    {
                        var last = model.Count == 0 ? 0UL : model[^1].Index;
                        var floor = hardState.Commit;
                        var index = value % 8 == 1 && last > floor ? floor + 1 + (value / 8) % (last - floor) : last + 1;
                        var entry = Entry(index, term: hardState.Term + 1, length: (int)(value / 16 % 50));
                        model.RemoveAll(e => e.Index >= index);
                        model.Add(entry);
                        wal.Append(entry);
                        break;
                    }
                    case 2:
                        var commit = model.Count == 0 ? hardState.Commit : Math.Max(hardState.Commit, Math.Min(model[^1].Index, hardState.Commit + value / 4 % 3));
                        hardState = new WalHardState(hardState.Term + value / 4 % 2, 0, commit);
                        wal.SetHardState(hardState);
                        break;
                    default:
                        wal.Sync();
                        synced = [.. model];
                        syncedHardState = hardState;
                        break;
                }
            }
        }
        using var reopened = WriteAheadLog.Open(directory, options, out var recovery);
        return recovery.HardState == syncedHardState
            && recovery.Entries.Select(e => (e.Index, e.Term, Convert.ToHexString(e.Payload.Span)))
                .SequenceEqual(synced.Select(e => (e.Index, e.Term, Convert.ToHexString(e.Payload.Span))));
    }

    /// <summary>Law: a record's frame round-trips and any single flipped bit inside it is detected.</summary>
    [Property(MaxTest = 300)]
    public Property Any_single_bit_flip_in_a_frame_is_detected() =>
        Prop.ForAll(Gen.Choose(0, 200).ToArbitrary(), Gen.Choose(0, 1_000_000).ToArbitrary(), (payloadBytes, flip) =>
        {
            var payload = Payload((ulong)payloadBytes, payloadBytes);
            var frame = new byte[WalRecord.FrameBytes(16 + payloadBytes) + 32];
            Span<byte> fixedPart = stackalloc byte[16];
            fixedPart[0] = 1;
            var length = WalRecord.Write(frame, WalRecordType.Entry, fixedPart, payload);
            var clean = WalRecord.TryRead(frame, 0, 1 << 20, out _, out _, out var readBytes, out _);
            var bit = flip % (length * 8);
            frame[bit / 8] ^= (byte)(1 << (bit % 8));
            var damaged = WalRecord.TryRead(frame, 0, 1 << 20, out _, out _, out _, out _);
            return clean == WalRecord.Outcome.Record && readBytes == 16 + payloadBytes && damaged == WalRecord.Outcome.Corrupt;
        });
}
