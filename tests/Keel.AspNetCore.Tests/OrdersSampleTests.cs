using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Keel.AspNetCore.LeaderElection;
using Keel.Sample.Orders;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Keel.AspNetCore.Tests;

/// <summary>The Orders sample: two instances against a real 3-member cluster.</summary>
[Collection(SerialCollection.Name)]
public sealed class OrdersSampleTests(ClusterFixture fixture)
{
    private async Task<WebApplication> StartInstanceAsync(Apps apps, string name)
    {
        var app = OrdersApp.Build([], builder =>
        {
            fixture.Configure(builder);
            builder.Configuration["Orders:KeyPrefix"] = "sample/";
            builder.Configuration["Orders:InitialStock"] = "50";
            builder.Configuration["Orders:SummaryInterval"] = "00:00:00.200";
            builder.Configuration["Orders:InstanceName"] = name;
        });
        apps.Add(app);
        await app.StartAsync();
        return app;
    }

    private static Task<HttpResponseMessage> OrderAsync(HttpClient http, string key, string item, int quantity)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/orders") { Content = JsonContent.Create(new OrderRequest(item, quantity)) };
        request.Headers.Add("Idempotency-Key", key);
        return http.SendAsync(request);
    }

    private static KeelLeaderElectionService Election(WebApplication app) =>
        app.Services.GetServices<IHostedService>().OfType<KeelLeaderElectionService>().Single();

    [Fact(Timeout = 120_000)]
    public async Task Orders_are_idempotent_across_instances_fenced_and_summarized_by_one_leader()
    {
        await using var apps = new Apps();
        var a = await StartInstanceAsync(apps, "orders-a");
        var b = await StartInstanceAsync(apps, "orders-b");
        var (httpA, httpB) = (a.GetTestClient(), b.GetTestClient());

        // A retry of the same order on the other instance is answered from the first, and stock moves once.
        var first = await OrderAsync(httpA, "order-1", "book", 2);
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var order = await first.Content.ReadFromJsonAsync<Order>();
        var retry = await OrderAsync(httpB, "order-1", "book", 2);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal(["true"], retry.Headers.GetValues("Idempotent-Replayed"));
        Assert.Equal(order, await retry.Content.ReadFromJsonAsync<Order>());
        Assert.Equal(48, order!.StockLeft);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await OrderAsync(httpB, "order-1", "book", 3)).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await httpA.PostAsJsonAsync("/orders", new OrderRequest("book", 1))).StatusCode);

        // Concurrent orders on both instances: the fenced lock serializes the stock updates.
        var responses = await Task.WhenAll(Enumerable.Range(0, 10).Select(i => OrderAsync(i % 2 == 0 ? httpA : httpB, $"bulk-{i}", "pen", 3)));
        var orders = new List<Order>();
        foreach (var response in responses)
        {
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
            orders.Add((await response.Content.ReadFromJsonAsync<Order>())!);
        }
        Assert.Equal(Enumerable.Range(0, 10).Select(i => 47 - 3 * i), orders.OrderBy(o => o.FencingToken).Select(o => o.StockLeft));
        Assert.Equal("20", (await fixture.Client.GetAsync("sample/stock/pen"))?.Value);
        var fetched = await httpB.GetFromJsonAsync<Order>($"/orders/{orders[0].Id}");
        Assert.Equal(orders[0], fetched);
        Assert.Equal(HttpStatusCode.Conflict, (await OrderAsync(httpA, "too-many", "pen", 21)).StatusCode);

        // One instance leads and keeps the summary current; when it stops, the other takes over.
        await Poll.UntilAsync(() => Election(a).IsLeader || Election(b).IsLeader, "an instance leads");
        var (leader, other) = Election(a).IsLeader ? (a, b) : (b, a);
        Assert.False(Election(other).IsLeader);
        await Poll.UntilAsync(async () => await SummaryAsync(other.GetTestClient()) is { Orders: 11 } s && s.Leader == Election(leader).CandidateId,
            "the leader's summary counts 11 orders");
        var firstTerm = Election(leader).FencingToken;
        await Apps.StopAsync(leader);
        await Poll.UntilAsync(async () => await SummaryAsync(other.GetTestClient()) is { } s && s.Leader == Election(other).CandidateId && s.LeaderFencingToken > firstTerm,
            "the other instance took over the summary");
    }

    private static async Task<OrdersSummary?> SummaryAsync(HttpClient http)
    {
        var response = await http.GetAsync("/summary");
        return response.StatusCode == HttpStatusCode.OK ? JsonSerializer.Deserialize<OrdersSummary>(await response.Content.ReadAsStringAsync()) : null;
    }
}
