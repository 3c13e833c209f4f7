using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using static Keel.Idempotency.Tests.TestData;

namespace Keel.Idempotency.Tests;

public class SnapshotTests
{
    // Offsets in the version-1 layout (see IdempotencyTable.Snapshot.cs).
    private const int VersionOffset = 4;
    private const int MaxEntriesOffset = 5 + 16;
    private const int LastNowOffset = 5 + 36;
    private const int CountOffset = LastNowOffset + 8 + 11 * 8;
    private const int FirstEntryOffset = CountOffset + 4;

    private static IdempotencyTable Sample()
    {
        var table = new IdempotencyTable(new IdempotencyOptions { MaxEntries = 10, CompletedWindowMs = 1_000, InFlightWindowMs = 100 });
        table.Claim("k1", Fp(1), 10);
        table.Claim("k2", Fp(2), 10);
        table.Complete("k2", Fp(2), 3, Body("failed: out of stock"), 20);
        table.Claim("k3", Fp(3), 30);
        table.Claim("k2", Fp(2), 40);
        return table;
    }

    /// <summary>Recomputes the checksum so a structural fault reaches the validation behind it.</summary>
    private static byte[] Reseal(byte[] snapshot)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(snapshot.AsSpan(snapshot.Length - 4), Crc32.HashToUInt32(snapshot.AsSpan(0, snapshot.Length - 4)));
        return snapshot;
    }

    private static string RefusedBecause(byte[] snapshot) =>
        Assert.Throws<IdempotencySnapshotException>(() => IdempotencyTable.Restore(snapshot)).Message;

    [Fact]
    public void A_round_trip_restores_options_time_counters_and_entries()
    {
        var table = Sample();
        var snapshot = table.Snapshot();
        var restored = IdempotencyTable.Restore(snapshot);
        Assert.Equal(table.Options, restored.Options);
        Assert.Equal(table.LastNowMs, restored.LastNowMs);
        Assert.Equal(table.Counters, restored.Counters);
        Assert.Equal(table.Count, restored.Count);
        Assert.Equal(table.ResponseBytes, restored.ResponseBytes);
        Assert.Equal(snapshot, restored.Snapshot());
        var replay = restored.Claim("k2", Fp(2), 50);
        Assert.Equal(3, replay.Response.StatusCode);
        Assert.Equal("failed: out of stock", Text(replay.Response.Body));
        Assert.Equal(ClaimOutcome.InFlight, restored.Claim("k1", Fp(1), 50).Outcome);
        restored.AssertInvariants();
    }

    [Fact]
    public void An_empty_table_round_trips_and_the_encoding_is_compact()
    {
        var empty = new IdempotencyTable();
        var snapshot = empty.Snapshot();
        Assert.Equal(FirstEntryOffset + 4, snapshot.Length);
        Assert.Equal(snapshot, IdempotencyTable.Restore(snapshot).Snapshot());

        // An in-flight entry costs 2 + key + 32 + 8 bytes; a completed one 16 more plus its body.
        var sample = Sample().Snapshot();
        Assert.Equal(FirstEntryOffset + 4 + 3 * (2 + 2 + 32 + 8) + 16 + "failed: out of stock".Length, sample.Length);
    }

    [Fact]
    public void Snapshots_do_not_depend_on_insertion_order_of_simultaneous_claims()
    {
        var first = new IdempotencyTable();
        var second = new IdempotencyTable();
        foreach (var key in new[] { "a", "c", "b", "B" }) first.Claim(key, Fp(1), 5);
        foreach (var key in new[] { "B", "b", "c", "a" }) second.Claim(key, Fp(1), 5);
        Assert.Equal(first.Snapshot(), second.Snapshot());
    }

    [Fact]
    public void A_changed_byte_fails_the_checksum()
    {
        var snapshot = Sample().Snapshot();
        snapshot[FirstEntryOffset + 5] ^= 0x01;
        Assert.Contains("checksum", RefusedBecause(snapshot));
    }

    [Fact]
    public void Truncated_input_is_refused()
    {
        Assert.Contains("bytes", RefusedBecause([]));
        Assert.Contains("bytes", RefusedBecause(Sample().Snapshot()[..100]));
    }

    [Fact]
    public void An_unknown_version_is_refused()
    {
        var snapshot = Sample().Snapshot();
        snapshot[VersionOffset] = 2;
        Assert.Contains("version 2", RefusedBecause(Reseal(snapshot)));
    }

    [Fact]
    public void Wrong_magic_is_refused()
    {
        var snapshot = Sample().Snapshot();
        snapshot[0] = (byte)'X';
        Assert.Contains("magic", RefusedBecause(Reseal(snapshot)));
    }

    [Fact]
    public void Invalid_options_are_refused()
    {
        var snapshot = Sample().Snapshot();
        BinaryPrimitives.WriteInt32LittleEndian(snapshot.AsSpan(MaxEntriesOffset), 0);
        Assert.Contains("options", RefusedBecause(Reseal(snapshot)));
    }

    [Fact]
    public void More_entries_than_the_bound_are_refused()
    {
        var snapshot = Sample().Snapshot();
        BinaryPrimitives.WriteInt32LittleEndian(snapshot.AsSpan(MaxEntriesOffset), 2);
        Assert.Contains("bound", RefusedBecause(Reseal(snapshot)));
    }

    [Fact]
    public void A_key_outside_printable_ascii_is_refused()
    {
        var snapshot = Sample().Snapshot();
        snapshot[FirstEntryOffset + 2] = 0xC3;
        Assert.Contains("invalid key", RefusedBecause(Reseal(snapshot)));
    }

    [Fact]
    public void A_repeated_key_is_refused()
    {
        var snapshot = Sample().Snapshot();
        // Entries are k1 (expires 110), k3 (130), k2 (1020): make the second one "k1" too.
        var second = FirstEntryOffset + 2 + 2 + 32 + 8;
        Assert.Equal("k3", Encoding.ASCII.GetString(snapshot, second + 2, 2));
        snapshot[second + 3] = (byte)'1';
        // Same key but a later expiry: the order check lets it through, the duplicate check does not.
        Assert.Contains("repeats key", RefusedBecause(Reseal(snapshot)));
    }

    [Fact]
    public void Entries_out_of_order_are_refused()
    {
        var snapshot = Sample().Snapshot();
        var second = FirstEntryOffset + 2 + 2 + 32 + 8;
        // Claim k3 at time 0 instead of 30: it would expire before k1.
        BinaryPrimitives.WriteInt64LittleEndian(snapshot.AsSpan(second + 2 + 2 + 32), 0);
        Assert.Contains("out of order", RefusedBecause(Reseal(snapshot)));
    }

    [Fact]
    public void A_claim_after_the_snapshot_time_is_refused()
    {
        var snapshot = Sample().Snapshot();
        BinaryPrimitives.WriteInt64LittleEndian(snapshot.AsSpan(LastNowOffset), 5);
        Assert.Contains("claimed at", RefusedBecause(Reseal(snapshot)));
    }

    [Fact]
    public void Unknown_flags_are_refused()
    {
        var snapshot = Sample().Snapshot();
        snapshot[FirstEntryOffset] = 0x80;
        Assert.Contains("flags", RefusedBecause(Reseal(snapshot)));
    }

    [Fact]
    public void Trailing_bytes_are_refused()
    {
        var snapshot = Sample().Snapshot();
        var longer = new byte[snapshot.Length + 1];
        snapshot.AsSpan(0, snapshot.Length - 4).CopyTo(longer);
        Assert.Contains("after its last entry", RefusedBecause(Reseal(longer)));
    }

    [Fact]
    public void A_negative_counter_is_refused()
    {
        var snapshot = Sample().Snapshot();
        BinaryPrimitives.WriteInt64LittleEndian(snapshot.AsSpan(LastNowOffset + 8), -1);
        Assert.Contains("counter", RefusedBecause(Reseal(snapshot)));
    }
}
