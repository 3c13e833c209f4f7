using System.Text.Json;
using Keel.AspNetCore;
using Keel.AspNetCore.LeaderElection;
using Keel.AspNetCore.Locks;
using Keel.Client;

namespace Keel.Sample.Orders;

/// <summary>Settings of the sample (section <c>Orders</c>).</summary>
public sealed class OrdersOptions
{
    /// <summary>Where the service keeps its data in Keel.</summary>
    public string KeyPrefix { get; set; } = "orders/";

    /// <summary>Stock every item starts with.</summary>
    public int InitialStock { get; set; } = 100;

    /// <summary>How often the leader rewrites the summary.</summary>
    public TimeSpan SummaryInterval { get; set; } = TimeSpan.FromSeconds(2);
}

/// <summary>An order as the API takes it.</summary>
public sealed record OrderRequest(string Item, int Quantity);

/// <summary>An order as stored and returned; <see cref="FencingToken"/> is the stock lock's token it was written under.</summary>
public sealed record Order(string Id, string Item, int Quantity, int StockLeft, long FencingToken);

/// <summary>What the leader's job writes: how many orders exist, by whom and under which leadership.</summary>
public sealed record OrdersSummary(int Orders, string Leader, long LeaderFencingToken, DateTimeOffset At);

/// <summary>
/// The sample order service: POST /orders is protected by the Keel idempotency middleware (retries from any instance
/// get the first answer), takes stock under a Keel lock and writes only while that lock is provably still held
/// (fenced by its token), and one instance at a time — the elected leader — keeps <c>{prefix}summary</c> current.
/// </summary>
public static class OrdersApp
{
    /// <summary>Builds the app; <paramref name="configure"/> lets a test swap the server or the settings.</summary>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);
        var orders = builder.Configuration.GetSection("Orders").Get<OrdersOptions>() ?? new OrdersOptions();
        var instance = builder.Configuration["Orders:InstanceName"] ?? $"{Environment.MachineName}/{Environment.ProcessId}";

        builder.Services.AddKeelClient(builder.Configuration.GetSection("Keel"));
        builder.Services.AddKeelIdempotency(o => o.KeyPrefix = orders.KeyPrefix + "idempotency/");
        builder.Services.AddKeelDistributedLocks(o => o.KeyPrefix = orders.KeyPrefix + "locks/");
        builder.Services.AddKeelLeaderElection(new KeelLeaderElectionOptions { Name = orders.KeyPrefix + "election/summary", CandidateId = instance },
            leader => SummarizeWhileLeaderAsync(leader, orders, instance));

        var app = builder.Build();
        app.UseKeelIdempotency();
        app.MapPost("/orders", (OrderRequest request, KeelClient keel, KeelDistributedLockProvider locks, CancellationToken ct) =>
            PlaceOrderAsync(request, keel, locks, orders, ct)).RequireIdempotencyKey();
        app.MapGet("/orders/{id}", async (string id, KeelClient keel, CancellationToken ct) =>
            await keel.GetAsync(orders.KeyPrefix + "order/" + id, cancellationToken: ct) is { } kv
                ? Results.Text(kv.Value, "application/json")
                : Results.NotFound());
        app.MapGet("/summary", async (KeelClient keel, CancellationToken ct) =>
            await keel.GetAsync(orders.KeyPrefix + "summary", cancellationToken: ct) is { } kv
                ? Results.Text(kv.Value, "application/json")
                : Results.NotFound());
        return app;
    }

    private static async Task<IResult> PlaceOrderAsync(OrderRequest request, KeelClient keel, KeelDistributedLockProvider locks, OrdersOptions orders, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(request.Item) || request.Item.Contains('/', StringComparison.Ordinal) || request.Quantity <= 0)
            return Results.Problem("item must be a non-empty name without '/', quantity more than 0", statusCode: StatusCodes.Status400BadRequest);
        await using var stockLock = await locks.CreateLock("stock/" + request.Item).AcquireAsync(TimeSpan.FromSeconds(10), ct);
        var stockKey = orders.KeyPrefix + "stock/" + request.Item;
        var stock = await keel.GetAsync(stockKey, cancellationToken: ct) is { } kv ? int.Parse(kv.Value, System.Globalization.CultureInfo.InvariantCulture) : orders.InitialStock;
        if (stock < request.Quantity)
            return Results.Problem($"only {stock} of {request.Item} left", statusCode: StatusCodes.Status409Conflict);
        var order = new Order(Guid.NewGuid().ToString("N"), request.Item, request.Quantity, stock - request.Quantity, stockLock.FencingToken);
        // The critical write: applied only while our lock key still exists with our token, so a holder that stalled
        // past its lease (and lost the lock to someone else) cannot write stale stock.
        var written = await keel.Txn()
            .If(TxnCompare.CreateRevision(stockLock.Key, CompareOp.Equal, stockLock.FencingToken))
            .Then(TxnOp.Put(stockKey, order.StockLeft.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                  TxnOp.Put(orders.KeyPrefix + "order/" + order.Id, JsonSerializer.Serialize(order)))
            .CommitAsync(ct);
        if (!written.Succeeded)
            return Results.Problem("the stock lock was lost before the order could be written; retry", statusCode: StatusCodes.Status503ServiceUnavailable);
        return Results.Created($"/orders/{order.Id}", order);
    }

    /// <summary>The leader-only job: rewrites the summary every interval, fenced by the leadership's key.</summary>
    private static async Task SummarizeWhileLeaderAsync(LeaderContext leader, OrdersOptions orders, string instance)
    {
        var keel = leader.Services.GetRequiredService<KeelClient>();
        using var timer = new PeriodicTimer(orders.SummaryInterval);
        do
        {
            var count = (await keel.GetPrefixAsync(orders.KeyPrefix + "order/", new ReadOptions { KeysOnly = true, Limit = 1 }, leader.CancellationToken)).Count;
            var summary = new OrdersSummary((int)count, instance, leader.FencingToken, DateTimeOffset.UtcNow);
            await keel.Txn()
                .If(TxnCompare.CreateRevision(leader.LeaderKey, CompareOp.Equal, leader.FencingToken))
                .Then(TxnOp.Put(orders.KeyPrefix + "summary", JsonSerializer.Serialize(summary)))
                .CommitAsync(leader.CancellationToken);
        }
        while (await timer.WaitForNextTickAsync(leader.CancellationToken));
    }
}
