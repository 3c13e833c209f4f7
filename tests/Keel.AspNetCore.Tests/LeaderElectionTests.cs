using System.Collections.Concurrent;
using System.Globalization;
using Keel.AspNetCore.LeaderElection;
using Keel.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Keel.AspNetCore.Tests;

/// <summary>The leader-election BackgroundService on two app instances.</summary>
[Collection(SerialCollection.Name)]
public sealed class LeaderElectionTests(ClusterFixture fixture)
{
    /// <summary>What the leaders' work records: who led with which token, and whether its token was cancelled.</summary>
    private sealed class Journal
    {
        public ConcurrentQueue<(string Who, long Token)> Terms { get; } = new();
        public ConcurrentQueue<(string Who, long Token)> Ended { get; } = new();
        public int Running;
        public int MaxRunning;
    }

    private async Task<WebApplication> StartAsync(Apps apps, Journal journal, string election, string who) =>
        apps.Add(await fixture.StartAppAsync(
            builder => builder.Services.AddKeelLeaderElection(
                new KeelLeaderElectionOptions { Name = election, CandidateId = who, LeaseTtl = TimeSpan.FromSeconds(3), RecampaignDelay = TimeSpan.FromMilliseconds(200) },
                async leader =>
                {
                    var now = Interlocked.Increment(ref journal.Running);
                    if (now > journal.MaxRunning) journal.MaxRunning = now;
                    journal.Terms.Enqueue((who, leader.FencingToken));
                    try
                    {
                        await Task.Delay(Timeout.Infinite, leader.CancellationToken);
                    }
                    finally
                    {
                        Interlocked.Decrement(ref journal.Running);
                        journal.Ended.Enqueue((who, leader.FencingToken));
                    }
                }),
            _ => { }));

    private static KeelLeaderElectionService Election(WebApplication app) =>
        app.Services.GetServices<IHostedService>().OfType<KeelLeaderElectionService>().Single();

    [Fact(Timeout = 90_000)]
    public async Task Leadership_hands_over_when_the_leaders_app_stops()
    {
        await using var apps = new Apps();
        var journal = new Journal();
        var a = await StartAsync(apps, journal, "elect-handover", "a");
        var b = await StartAsync(apps, journal, "elect-handover", "b");
        await Poll.UntilAsync(() => Election(a).IsLeader || Election(b).IsLeader, "someone leads");
        var (leader, follower) = Election(a).IsLeader ? (a, b) : (b, a);
        Assert.False(Election(follower).IsLeader);
        var firstToken = Election(leader).FencingToken;
        await Poll.UntilAsync(() => !journal.Terms.IsEmpty, "the leader's work started");
        Assert.Equal([(Election(leader).CandidateId, firstToken)], journal.Terms.ToArray());
        Assert.Equal(Election(leader).CandidateId, (await fixture.Client.Election("elect-handover").GetLeaderAsync())?.Value);

        await Apps.StopAsync(leader);
        // The stopped leader's work saw its token cancelled, and the other instance took over with a higher token.
        Assert.Contains((Election(leader).CandidateId, firstToken), journal.Ended);
        await Poll.UntilAsync(() => Election(follower).IsLeader, "the other instance leads");
        Assert.True(Election(follower).FencingToken > firstToken);
        Assert.Equal(1, journal.MaxRunning);
        Assert.Equal(Election(follower).CandidateId, (await fixture.Client.Election("elect-handover").GetLeaderAsync())?.Value);
    }

    [Fact(Timeout = 90_000)]
    public async Task Losing_the_lease_cancels_the_work_and_the_instance_campaigns_again()
    {
        await using var apps = new Apps();
        var journal = new Journal();
        var a = await StartAsync(apps, journal, "elect-lost", "a");
        await Poll.UntilAsync(() => Election(a).IsLeader, "a leads");
        var first = Election(a).FencingToken;
        var leaderKey = (await fixture.Client.Election("elect-lost").GetLeaderAsync())!;
        // The leader key is {name}/{lease id in hex}: revoke that lease behind the service's back.
        var leaseId = long.Parse(leaderKey.Key[(leaderKey.Key.LastIndexOf('/') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        await fixture.Client.RevokeLeaseAsync(leaseId);

        await Poll.UntilAsync(() => journal.Ended.Contains(("a", first)), "the work's token cancelled");
        await Poll.UntilAsync(() => Election(a).IsLeader && Election(a).FencingToken > first, "a leads again with a new token");
        Assert.Equal(2, Election(a).Terms);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_partitioned_leader_stops_its_work_before_its_lease_can_expire_and_leads_again_after_healing()
    {
        // The instance reaches the cluster only through proxies the test can cut.
        var proxies = fixture.Cluster.ClientUrls.Select(url => new LoopbackProxy(url)).ToArray();
        await using var apps = new Apps();
        try
        {
            long? ttlLeftAtStop = null;
            var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var leases = new ConcurrentQueue<long>();
            var app = apps.Add(await fixture.StartAsync(builder =>
            {
                for (var i = 0; i < proxies.Length; i++) builder.Configuration[$"Keel:Endpoints:{i}"] = proxies[i].Url;
                builder.Configuration["Keel:CommandTimeout"] = "00:00:01";
                builder.Services.AddKeelClient(builder.Configuration.GetSection("Keel"));
                builder.Services.AddKeelLeaderElection(
                    new KeelLeaderElectionOptions { Name = "elect-partition", CandidateId = "p", LeaseTtl = TimeSpan.FromSeconds(6), RecampaignDelay = TimeSpan.FromMilliseconds(200) },
                    async leader =>
                    {
                        var leaseId = long.Parse(leader.LeaderKey[(leader.LeaderKey.LastIndexOf('/') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                        leases.Enqueue(leaseId);
                        try
                        {
                            await Task.Delay(Timeout.Infinite, leader.CancellationToken);
                        }
                        finally
                        {
                            if (leases.Count == 1)
                            {
                                // Asked from the test's own (unpartitioned) client the moment the work is told to stop.
                                var left = await fixture.Client.LeaseTimeToLiveAsync(leaseId);
                                ttlLeftAtStop = (long?)left?.TotalSeconds ?? -1;
                                stopped.TrySetResult();
                            }
                        }
                    });
                return builder.Build();
            }));
            var election = Election(app);
            await Poll.UntilAsync(() => election.IsLeader, "the instance leads");
            foreach (var proxy in proxies) proxy.Cut();
            await stopped.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await Poll.UntilAsync(() => !election.IsLeader, "the service no longer reports leading");
            // The server still held the lease when the work stopped: nobody else could have been elected yet.
            Assert.True(ttlLeftAtStop > 0, $"lease TTL left when the work stopped: {ttlLeftAtStop} s");

            foreach (var proxy in proxies) proxy.Heal();
            await Poll.UntilAsync(() => election.IsLeader && leases.Count == 2, "the instance leads again after healing", TimeSpan.FromSeconds(60));
            Assert.NotEqual(leases.First(), leases.Last());
        }
        finally
        {
            await apps.DisposeAsync();
            foreach (var proxy in proxies) await proxy.DisposeAsync();
        }
    }
}
