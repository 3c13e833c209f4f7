using Keel.TestCluster;

namespace Keel.Etcdctl.Tests;

/// <summary>
/// etcd's users, roles and permissions with the unmodified etcdctl 3.4 (also run against etcd 3.4 with the same flags,
/// which proves the test): root and <c>auth enable</c>, a user with a prefix permission reads and writes inside it and is
/// refused outside with etcd's text, a wrong password is refused, lists, and <c>auth disable</c>.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class AuthTests : IAsyncLifetime
{
    private TestCluster.TestCluster? _cluster;

    private TestCluster.TestCluster Cluster => _cluster ?? throw new InvalidOperationException("not started");

    // The lowest bcrypt cost keeps each user add and each authentication quick on a shared machine.
    public async Task InitializeAsync() => _cluster = await TestCluster.TestCluster.StartAsync(1,
        options: new TestClusterOptions { ExtraFlags = ["--bcrypt-cost", "4"] });

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    [Fact(Timeout = 180_000)]
    public async Task Root_enables_auth_a_prefix_user_is_confined_to_its_prefix_and_auth_disable_opens_it_again()
    {
        var anonymous = Cluster.Etcdctl();
        Assert.Contains("etcdserver: root user does not exist", (await anonymous.RunAsync("auth", "enable")).StandardError);
        Assert.Equal(["User root created"], await anonymous.LinesAsync("user", "add", "root:rootpw"));
        // etcdctl creates the root role and grants it when the server answers "root user does not have root role".
        Assert.Equal(["Authentication Enabled"], await anonymous.LinesAsync("auth", "enable"));

        var root = anonymous.As("root", "rootpw");
        Assert.Equal(["Role app created"], await root.LinesAsync("role", "add", "app"));
        Assert.Equal(["Role app updated"], await root.LinesAsync("role", "grant-permission", "app", "readwrite", "app/", "--prefix=true"));
        Assert.Equal(["User alice created"], await root.LinesAsync("user", "add", "alice:alicepw"));
        Assert.Equal(["Role app is granted to user alice"], await root.LinesAsync("user", "grant-role", "alice", "app"));
        await root.PutAsync("secret/key", "root-only");

        var alice = anonymous.As("alice", "alicepw");
        await alice.PutAsync("app/config", "v1");
        Assert.Equal(["app/config", "v1"], await alice.LinesAsync("get", "app/", "--prefix"));
        var deniedRead = await alice.RunAsync("get", "secret/key");
        Assert.NotEqual(0, deniedRead.ExitCode);
        Assert.Contains("etcdserver: permission denied", deniedRead.StandardError);
        var deniedWrite = await alice.RunAsync("put", "secret/key", "stolen");
        Assert.Contains("etcdserver: permission denied", deniedWrite.StandardError);
        // A range that reaches outside the prefix is refused as a whole.
        Assert.Contains("etcdserver: permission denied", (await alice.RunAsync("get", "app", "--prefix")).StandardError);
        Assert.Contains("etcdserver: permission denied", (await alice.RunAsync("user", "list")).StandardError);

        var wrong = await anonymous.As("alice", "wrong").RunAsync("get", "app/config");
        Assert.NotEqual(0, wrong.ExitCode);
        Assert.Contains("etcdserver: authentication failed, invalid user ID or password", wrong.StandardError);
        var userless = await anonymous.RunAsync("get", "app/config");
        Assert.NotEqual(0, userless.ExitCode);
        Assert.Contains("etcdserver: user name is empty", userless.StandardError);

        Assert.Equal(["alice", "root"], await root.LinesAsync("user", "list"));
        Assert.Equal(["app", "root"], await root.LinesAsync("role", "list"));
        Assert.Equal(["User: alice", "Roles: app"], await root.LinesAsync("user", "get", "alice"));
        var role = await root.LinesAsync("role", "get", "app");
        Assert.Equal("Role app", role[0]);
        Assert.Contains("\t[app/, app0) (prefix app/)", role);
        Assert.Contains("etcdserver: user name already exists", (await root.RunAsync("user", "add", "alice:x")).StandardError);
        Assert.Contains("etcdserver: role is not granted to the user", (await root.RunAsync("user", "revoke-role", "alice", "nope")).StandardError);
        Assert.Contains("etcdserver: invalid auth management", (await root.RunAsync("user", "delete", "root")).StandardError);

        Assert.Equal(["Authentication Disabled"], await root.LinesAsync("auth", "disable"));
        Assert.Equal(["secret/key", "root-only"], await anonymous.LinesAsync("get", "secret/key"));
    }
}
