using System.Security.Cryptography;
using Keel.Server;
using Keel.Server.Auth;

namespace Keel.Server.Tests;

public sealed class AuthTokenTests
{
    /// <summary>A clock the test moves by hand.</summary>
    private sealed class ManualTime : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void A_simple_token_lives_its_ttl_after_its_last_use_and_dies_with_its_user()
    {
        var time = new ManualTime();
        var tokens = new SimpleTokens(TimeSpan.FromSeconds(300), time);
        var token = tokens.Assign("alice", 7)!;
        Assert.Matches("^[a-zA-Z]{16}\\.[0-9]+$", token);
        time.Now += TimeSpan.FromSeconds(299);
        Assert.Equal(new TokenInfo("alice", 7), tokens.Resolve(token));
        // The use renewed it: 299 s later it is still valid, 300 s after that use it is gone.
        time.Now += TimeSpan.FromSeconds(299);
        Assert.NotNull(tokens.Resolve(token));
        time.Now += TimeSpan.FromSeconds(300);
        Assert.Null(tokens.Resolve(token));
        var other = tokens.Assign("bob", 7)!;
        var again = tokens.Assign("alice", 8)!;
        tokens.InvalidateUser("alice");
        Assert.Null(tokens.Resolve(again));
        Assert.NotNull(tokens.Resolve(other));
        Assert.Null(tokens.Resolve("forged.1"));
    }

    [Theory]
    [InlineData("RS256")]
    [InlineData("ES256")]
    public void A_jwt_signed_by_one_member_is_verified_with_the_public_key_alone_until_it_expires(string method)
    {
        var directory = Directory.CreateTempSubdirectory("keel-jwt-");
        try
        {
            var (privatePem, publicPem) = method == "RS256" ? RsaPems() : EcPems();
            var privatePath = Path.Combine(directory.FullName, "key.pem");
            var publicPath = Path.Combine(directory.FullName, "key.pub");
            File.WriteAllText(privatePath, privatePem);
            File.WriteAllText(publicPath, publicPem);
            var time = new ManualTime();
            var issuer = IAuthTokens.Create(new ServerOptions { AuthToken = $"jwt,pub-key={publicPath},priv-key={privatePath},sign-method={method},ttl=60s" }, time);
            var verifier = IAuthTokens.Create(new ServerOptions { AuthToken = $"jwt,pub-key={publicPath},sign-method={method},ttl=60s" }, time);
            var token = issuer.Assign("alice", 3)!;
            Assert.Equal(new TokenInfo("alice", 3), verifier.Resolve(token));
            Assert.Null(verifier.Assign("alice", 3));
            var parts = token.Split('.');
            Assert.Null(verifier.Resolve(parts[0] + "." + parts[1] + "." + parts[2][..^4] + "AAAA"));
            Assert.Null(verifier.Resolve("not.a.token"));
            time.Now += TimeSpan.FromSeconds(61);
            Assert.Null(verifier.Resolve(token));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("bogus", "unknown token type")]
    [InlineData("jwt,pub-key=/nonexistent.pub,sign-method=RS256", "cannot read")]
    [InlineData("jwt,pub-key=/nonexistent.pub,sign-method=HS256", "not supported")]
    [InlineData("jwt,sign-method=RS256", "needs pub-key")]
    public void A_bad_auth_token_option_is_refused_with_a_clear_message(string option, string message)
    {
        var refused = Assert.Throws<ArgumentException>(() => IAuthTokens.Create(new ServerOptions { AuthToken = option }, TimeProvider.System));
        Assert.Contains(message, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Passwords_are_stored_as_salted_bcrypt_hashes()
    {
        var first = PasswordHasher.Hash("secret", 4);
        var second = PasswordHasher.Hash("secret", 4);
        Assert.NotEqual(first, second);
        Assert.True(PasswordHasher.IsBcryptHash(first));
        Assert.DoesNotContain("secret", first, StringComparison.Ordinal);
        Assert.True(PasswordHasher.Verify("secret", first));
        Assert.False(PasswordHasher.Verify("Secret", first));
        Assert.False(PasswordHasher.Verify("secret", "not a hash"));
    }

    [Fact]
    public void An_idempotency_key_is_scoped_to_its_user()
    {
        var alice = Api.KvApi.ScopedIdempotencyKey("alice", "req-1");
        Assert.NotEqual(alice, Api.KvApi.ScopedIdempotencyKey("bob", "req-1"));
        Assert.Equal(alice, Api.KvApi.ScopedIdempotencyKey("alice", "req-1"));
        Assert.True(Keel.Idempotency.IdempotencyKey.IsValid(alice));
        // "a\nb" + "c" and "a" + "b\nc" must not collide through the separator.
        Assert.NotEqual(Api.KvApi.ScopedIdempotencyKey("a", "b-c"), Api.KvApi.ScopedIdempotencyKey("a-b", "c"));
    }

    private static (string Private, string Public) RsaPems()
    {
        using var rsa = RSA.Create(2048);
        return (rsa.ExportRSAPrivateKeyPem(), rsa.ExportSubjectPublicKeyInfoPem());
    }

    private static (string Private, string Public) EcPems()
    {
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return (ec.ExportECPrivateKeyPem(), ec.ExportSubjectPublicKeyInfoPem());
    }
}
