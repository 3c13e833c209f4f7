namespace Keel.Server.Tests;

public class ServerOptionsTests
{
    [Fact]
    public void Member_and_cluster_ids_are_etcds()
    {
        // etcd's well-known ids for `etcd` with no flags: member 8e9e05c52164694d in cluster cdf818194e3a8c32.
        var id = ServerOptions.MemberId([new Uri("http://localhost:2380")], "etcd-cluster");
        Assert.Equal(0x8e9e05c52164694dUL, id);
        Assert.Equal(0xcdf818194e3a8c32UL, ServerOptions.ClusterId([id]));
    }

    [Fact]
    public void Initial_cluster_parses_in_order_and_names_this_member()
    {
        var options = new ServerOptions
        {
            Name = "n2",
            InitialCluster = "n1=http://127.0.0.1:2380, n2=http://127.0.0.1:2381,n3=http://127.0.0.1:2382",
        };
        var members = options.ParseInitialCluster();
        Assert.Equal(["n1", "n2", "n3"], members.Select(m => m.Name));
        Assert.Equal(3, members.Select(m => m.Id).Distinct().Count());
        Assert.Equal("http://127.0.0.1:2381", members[1].PeerUrls[0]);
    }

    [Theory]
    [InlineData("n1", "n1")]
    [InlineData("n1=ftp://x:1", "n1")]
    [InlineData("n1=http://127.0.0.1:1", "n2")]
    [InlineData("n1=http://127.0.0.1:1,n2=http://127.0.0.1:1", "n1")]
    [InlineData("", "n1")]
    public void Malformed_initial_clusters_are_refused_with_a_reason(string initialCluster, string name)
    {
        var options = new ServerOptions { Name = name, InitialCluster = initialCluster };
        var error = Assert.Throws<ArgumentException>(() => options.ParseInitialCluster());
        Assert.Contains("--initial-cluster", error.Message);
    }
}
