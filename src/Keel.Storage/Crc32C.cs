using System.Buffers.Binary;
using System.Numerics;

namespace Keel.Storage;

/// <summary>
/// CRC-32C (Castagnoli), the checksum of etcd's WAL, RocksDB, LevelDB and ext4 metadata. System.IO.Hashing 10.0 offers
/// only the IEEE <c>Crc32</c> and <c>Crc64</c>, so this uses <see cref="BitOperations.Crc32C(uint, ulong)"/>, which the
/// JIT turns into the SSE4.2 / ARMv8 CRC32C instruction (with a table fallback elsewhere).
/// </summary>
/// <remarks>Castagnoli polynomial 0x1EDC6F41 (reflected 0x82F63B78), initial value and final xor 0xFFFFFFFF: the check value of "123456789" is 0xE3069283.</remarks>
public static class Crc32C
{
    /// <summary>The CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Finish(Append(Start, data));

    /// <summary>The running state before any byte.</summary>
    public const uint Start = 0xFFFFFFFFu;

    /// <summary>Feeds <paramref name="data"/> into a running state (start from <see cref="Start"/>).</summary>
    public static uint Append(uint state, ReadOnlySpan<byte> data)
    {
        var crc = state;
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        foreach (var b in data) crc = BitOperations.Crc32C(crc, b);
        return crc;
    }

    /// <summary>Turns a running state into the checksum.</summary>
    public static uint Finish(uint state) => ~state;
}
