using System.Text;

namespace Keel.Idempotency.Tests;

/// <summary>Small helpers shared by the tests.</summary>
internal static class TestData
{
    public static RequestFingerprint Fp(int payload) => RequestFingerprint.Of(Encoding.UTF8.GetBytes($"payload-{payload}"));

    public static byte[] Body(string text) => Encoding.UTF8.GetBytes(text);

    public static string Text(ReadOnlyMemory<byte> body) => Encoding.UTF8.GetString(body.Span);

    /// <summary>FsCheck replay seed: every property run is the same run (deterministic seeds everywhere).</summary>
    public const string FixedSeed = "(20240917,1234567891)";
}
