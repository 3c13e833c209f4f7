using System.Security.Cryptography;
using dotnet_etcd;
using Etcdserverpb;
using Google.Protobuf;
using Grpc.Core;
using Keel.TestCluster;

namespace Keel.DotnetEtcd.Tests;

/// <summary>
/// Signed tokens (<c>--auth-token jwt,pub-key=…,priv-key=…,sign-method=RS256</c>) on a real 3-member cluster with
/// dotnet-etcd: a token Authenticate returned on one member is accepted by another member (which never saw it issued),
/// a tampered token is refused with "etcdserver: invalid auth token", and the token's user is confined to its prefix.
/// Also run against etcd 3.4 with the same flags (KEEL_TEST_SERVER=etcd), which proves the test.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class JwtAuthTests : IAsyncLifetime
{
    private TestCluster.TestCluster? _cluster;
    private readonly string _keys = Path.Combine(Path.GetTempPath(), "keel-jwt-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(6)));

    private TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_keys);
        using var rsa = RSA.Create(2048);
        var privateKey = Path.Combine(_keys, "jwt.key");
        var publicKey = Path.Combine(_keys, "jwt.pub");
        await File.WriteAllTextAsync(privateKey, rsa.ExportRSAPrivateKeyPem());
        await File.WriteAllTextAsync(publicKey, rsa.ExportSubjectPublicKeyInfoPem());
        _cluster = await TestCluster.TestCluster.StartAsync(3, options: new TestClusterOptions
        {
            ExtraFlags = ["--bcrypt-cost", "4", "--auth-token", $"jwt,pub-key={publicKey},priv-key={privateKey},sign-method=RS256"],
        });
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
        Directory.Delete(_keys, recursive: true);
    }

    private EtcdClient ClientOf(int member) =>
        new(Cluster.Members[member].ClientUrl, configureChannelOptions: options => options.Credentials = ChannelCredentials.Insecure);

    private static ByteString B(string text) => ByteString.CopyFromUtf8(text);

    private static DateTime Deadline => DateTime.UtcNow.AddSeconds(20);

    [Fact(Timeout = 180_000)]
    public async Task A_token_issued_by_one_member_is_verified_by_another()
    {
        using var first = ClientOf(0);
        using var second = ClientOf(1);
        await first.UserAddAsync(new AuthUserAddRequest { Name = "root", Password = "rootpw" }, deadline: Deadline);
        await first.RoleAddAsync(new AuthRoleAddRequest { Name = "root" }, deadline: Deadline);
        await first.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "root", Role = "root" }, deadline: Deadline);
        await first.RoleAddAsync(new AuthRoleAddRequest { Name = "jobs" }, deadline: Deadline);
        await first.RoleGrantPermissionAsync(new AuthRoleGrantPermissionRequest
        {
            Name = "jobs",
            Perm = new Authpb.Permission { PermType = Authpb.Permission.Types.Type.Readwrite, Key = B("jobs/"), RangeEnd = B("jobs0") },
        }, deadline: Deadline);
        await first.UserAddAsync(new AuthUserAddRequest { Name = "worker", Password = "workerpw" }, deadline: Deadline);
        await first.UserGrantRoleAsync(new AuthUserGrantRoleRequest { User = "worker", Role = "jobs" }, deadline: Deadline);
        await first.AuthEnableAsync(new AuthEnableRequest(), deadline: Deadline);

        var token = (await first.AuthenticateAsync(new AuthenticateRequest { Name = "worker", Password = "workerpw" }, deadline: Deadline)).Token;
        Assert.Equal(3, token.Split('.').Length);
        var asWorker = new Metadata { { "token", token } };

        // The second member verifies the signature with the public key: no state about the token is shared.
        await second.PutAsync(new PutRequest { Key = B("jobs/1"), Value = B("queued") }, headers: asWorker, deadline: Deadline);
        var read = await ClientOf(2).GetAsync(new RangeRequest { Key = B("jobs/1") }, headers: asWorker, deadline: Deadline);
        Assert.Equal("queued", Assert.Single(read.Kvs).Value.ToStringUtf8());

        var denied = await Assert.ThrowsAsync<RpcException>(() =>
            second.PutAsync(new PutRequest { Key = B("other"), Value = B("x") }, headers: asWorker, deadline: Deadline));
        Assert.Equal(StatusCode.PermissionDenied, denied.StatusCode);
        Assert.Equal("etcdserver: permission denied", denied.Status.Detail);

        if (Cluster.Kind == ServerKind.Keel)
        {
            // Idempotency keys belong to their user (Keel's extension; etcd has none): root reusing the worker's key
            // runs its own request instead of being refused as a different request under the same key.
            var rootToken = (await first.AuthenticateAsync(new AuthenticateRequest { Name = "root", Password = "rootpw" }, deadline: Deadline)).Token;
            var workerWrite = new Metadata { { "token", token }, { "idempotency-key", "job-7" } };
            var rootWrite = new Metadata { { "token", rootToken }, { "idempotency-key", "job-7" } };
            var once = await second.PutAsync(new PutRequest { Key = B("jobs/7"), Value = B("worker") }, headers: workerWrite, deadline: Deadline);
            var replay = await first.PutAsync(new PutRequest { Key = B("jobs/7"), Value = B("worker") }, headers: workerWrite, deadline: Deadline);
            Assert.Equal(once.Header.Revision, replay.Header.Revision);
            var rootPut = await first.PutAsync(new PutRequest { Key = B("jobs/7"), Value = B("root") }, headers: rootWrite, deadline: Deadline);
            Assert.True(rootPut.Header.Revision > once.Header.Revision, "root's request with the same key executed");
            var mismatch = await Assert.ThrowsAsync<RpcException>(() =>
                first.PutAsync(new PutRequest { Key = B("jobs/7"), Value = B("other") }, headers: workerWrite, deadline: Deadline));
            Assert.Equal(StatusCode.FailedPrecondition, mismatch.StatusCode);
        }

        // A token whose claims were changed (user "root") no longer matches its signature.
        var parts = token.Split('.');
        var claims = System.Text.Encoding.UTF8.GetString(FromBase64Url(parts[1])).Replace("\"worker\"", "\"root\"", StringComparison.Ordinal);
        var forged = parts[0] + "." + ToBase64Url(System.Text.Encoding.UTF8.GetBytes(claims)) + "." + parts[2];
        var refused = await Assert.ThrowsAsync<RpcException>(() =>
            second.PutAsync(new PutRequest { Key = B("other"), Value = B("x") }, headers: new Metadata { { "token", forged } }, deadline: Deadline));
        Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
        Assert.Equal("etcdserver: invalid auth token", refused.Status.Detail);
    }

    private static string ToBase64Url(byte[] data) => Convert.ToBase64String(data).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static byte[] FromBase64Url(string text)
    {
        var padded = text.Replace('-', '+').Replace('_', '/');
        return Convert.FromBase64String(padded + new string('=', (4 - padded.Length % 4) % 4));
    }
}
