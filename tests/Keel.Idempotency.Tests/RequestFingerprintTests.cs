using System.Text;

namespace Keel.Idempotency.Tests;

public class RequestFingerprintTests
{
    [Fact]
    public void Of_is_sha256_of_the_request_bytes()
    {
        // FIPS 180-2 test vector for "abc".
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            RequestFingerprint.Of("abc"u8).ToString());
    }

    [Fact]
    public void Equal_requests_give_equal_fingerprints_and_different_ones_differ()
    {
        Assert.Equal(RequestFingerprint.Of("charge 10 EUR"u8), RequestFingerprint.Of("charge 10 EUR"u8));
        Assert.NotEqual(RequestFingerprint.Of("charge 10 EUR"u8), RequestFingerprint.Of("charge 11 EUR"u8));
        Assert.True(RequestFingerprint.Of("x"u8) == RequestFingerprint.Of("x"u8));
        Assert.True(RequestFingerprint.Of("x"u8) != RequestFingerprint.Of("y"u8));
    }

    [Fact]
    public void Scope_is_length_prefixed_so_the_split_point_matters()
    {
        Assert.NotEqual(RequestFingerprint.Of("ab"u8, "c"u8), RequestFingerprint.Of("a"u8, "bc"u8));
        Assert.NotEqual(RequestFingerprint.Of("client-1"u8, "pay"u8), RequestFingerprint.Of("client-2"u8, "pay"u8));
        Assert.Equal(RequestFingerprint.Of("client-1"u8, "pay"u8), RequestFingerprint.Of("client-1"u8, "pay"u8));
        Assert.NotEqual(RequestFingerprint.Of("pay"u8), RequestFingerprint.Of(""u8, "pay"u8));
    }

    [Fact]
    public void Bytes_round_trip()
    {
        var fingerprint = RequestFingerprint.Of(Encoding.UTF8.GetBytes("round trip"));
        var bytes = new byte[RequestFingerprint.SizeBytes];
        fingerprint.WriteTo(bytes);
        Assert.Equal(fingerprint, RequestFingerprint.FromBytes(bytes));
        Assert.Equal(fingerprint.GetHashCode(), RequestFingerprint.FromBytes(bytes).GetHashCode());
        Assert.Equal(Convert.ToHexStringLower(bytes), fingerprint.ToString());
    }

    [Fact]
    public void Wrong_sizes_are_refused()
    {
        Assert.Throws<ArgumentException>(() => RequestFingerprint.FromBytes(new byte[16]));
        Assert.Throws<ArgumentException>(() => RequestFingerprint.Of("x"u8).WriteTo(new byte[31]));
    }
}
