using System.Net;
using System.Net.Http.Json;
using Keel.AspNetCore.Idempotency;
using Keel.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;

namespace Keel.AspNetCore.Tests;

/// <summary>The Idempotency-Key middleware across two app instances sharing a real cluster.</summary>
[Collection(SerialCollection.Name)]
public sealed class IdempotencyTests(ClusterFixture fixture)
{
    /// <summary>What the handlers of both instances share: how often they ran, and a gate a test can hold them at.</summary>
    private sealed class Backend
    {
        public int Executions;
        public TaskCompletionSource Entered { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource? Gate { get; set; }
    }

    private async Task<(HttpClient A, HttpClient B)> StartTwoAsync(Apps apps, Backend backend, string prefix, Action<KeelIdempotencyOptions>? configure = null)
    {
        async Task<HttpClient> One(string name)
        {
            var app = apps.Add(await fixture.StartAppAsync(
                builder => builder.Services.AddKeelIdempotency(o =>
                {
                    o.KeyPrefix = prefix;
                    configure?.Invoke(o);
                }),
                app =>
                {
                    app.UseKeelIdempotency();
                    app.MapPost("/payments/{account}", async (string account, HttpRequest request) =>
                    {
                        var run = Interlocked.Increment(ref backend.Executions);
                        backend.Entered.TrySetResult();
                        if (backend.Gate is { } gate) await gate.Task;
                        var body = await new StreamReader(request.Body).ReadToEndAsync();
                        if (body == "fail") throw new InvalidOperationException("handler failed");
                        if (body == "500") return Results.StatusCode(500);
                        if (body.StartsWith("big", StringComparison.Ordinal)) return Results.Text(new string('x', 4096));
                        return Results.Created($"/payments/{account}/{run}", new { account, run, by = name, body });
                    }).RequireIdempotencyKey();
                    app.MapPost("/free", () => Results.Ok(Interlocked.Increment(ref backend.Executions)));
                }));
            Instances.Add(app);
            return app.GetTestClient();
        }

        return (await One("a"), await One("b"));
    }

    private List<WebApplication> Instances { get; } = [];

    private static Task<HttpResponseMessage> PostAsync(HttpClient http, string path, string? key, string body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body) };
        if (key is not null) request.Headers.TryAddWithoutValidation("Idempotency-Key", key);
        return http.SendAsync(request);
    }

    [Fact(Timeout = 60_000)]
    public async Task The_first_response_is_replayed_by_the_other_instance_and_the_handler_runs_once()
    {
        await using var apps = new Apps();
        var backend = new Backend();
        var (a, b) = await StartTwoAsync(apps, backend, "idem-replay/");

        var first = await PostAsync(a, "/payments/acct-1", "\"k-1\"", "amount=10");
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var firstBody = await first.Content.ReadAsStringAsync();
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));

        var retry = await PostAsync(b, "/payments/acct-1", "\"k-1\"", "amount=10");
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        Assert.Equal(firstBody, await retry.Content.ReadAsStringAsync());
        Assert.Contains("\"by\":\"a\"", firstBody, StringComparison.Ordinal);
        Assert.Equal(["true"], retry.Headers.GetValues("Idempotent-Replayed"));
        Assert.Equal(first.Headers.Location, retry.Headers.Location);
        Assert.Equal(first.Content.Headers.ContentType, retry.Content.Headers.ContentType);
        Assert.Equal(1, backend.Executions);

        // The record is in Keel under the prefix, on a lease.
        var stored = await fixture.Client.GetAsync("idem-replay/k-1");
        Assert.NotNull(stored);
        Assert.NotEqual(0, stored.Lease);

        // A new key runs the handler again.
        Assert.Equal(HttpStatusCode.Created, (await PostAsync(b, "/payments/acct-1", "k-2", "amount=10")).StatusCode);
        Assert.Equal(2, backend.Executions);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_duplicate_while_the_first_is_in_flight_gets_409_and_afterwards_the_replay()
    {
        await using var apps = new Apps();
        var backend = new Backend { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        var (a, b) = await StartTwoAsync(apps, backend, "idem-409/");

        var firstTask = PostAsync(a, "/payments/acct-2", "k-slow", "amount=5");
        await backend.Entered.Task.WaitAsync(Poll.Bound);
        var duplicate = await PostAsync(b, "/payments/acct-2", "k-slow", "amount=5");
        Assert.Equal(HttpStatusCode.Conflict, duplicate.StatusCode);
        Assert.Equal("application/problem+json", duplicate.Content.Headers.ContentType?.MediaType);
        Assert.Contains("still being processed", await duplicate.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("1", duplicate.Headers.RetryAfter?.ToString());

        backend.Gate.SetResult();
        var first = await firstTask.WaitAsync(Poll.Bound);
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var after = await PostAsync(b, "/payments/acct-2", "k-slow", "amount=5");
        Assert.Equal(HttpStatusCode.Created, after.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await after.Content.ReadAsStringAsync());
        Assert.Equal(1, backend.Executions);
    }

    [Fact(Timeout = 60_000)]
    public async Task Two_instances_racing_on_one_key_run_the_handler_once()
    {
        await using var apps = new Apps();
        var backend = new Backend();
        var (a, b) = await StartTwoAsync(apps, backend, "idem-race/");
        for (var round = 0; round < 5; round++)
        {
            var key = $"race-{round}";
            var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => PostAsync(i % 2 == 0 ? a : b, "/payments/acct-3", key, "amount=1")));
            Assert.All(responses, r => Assert.True(r.StatusCode is HttpStatusCode.Created or HttpStatusCode.Conflict, $"{r.StatusCode}"));
            Assert.Single(responses, r => r.StatusCode == HttpStatusCode.Created && !r.Headers.Contains("Idempotent-Replayed"));
            Assert.Equal(round + 1, Volatile.Read(ref backend.Executions));
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task The_same_key_with_another_body_or_path_gets_422()
    {
        await using var apps = new Apps();
        var backend = new Backend();
        var (a, b) = await StartTwoAsync(apps, backend, "idem-422/");
        Assert.Equal(HttpStatusCode.Created, (await PostAsync(a, "/payments/acct-4", "k-422", "amount=10")).StatusCode);

        var otherBody = await PostAsync(b, "/payments/acct-4", "k-422", "amount=99");
        Assert.Equal(HttpStatusCode.UnprocessableEntity, otherBody.StatusCode);
        Assert.Equal("application/problem+json", otherBody.Content.Headers.ContentType?.MediaType);
        var problem = await otherBody.Content.ReadFromJsonAsync<Microsoft.AspNetCore.Mvc.ProblemDetails>();
        Assert.Equal(422, problem?.Status);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await PostAsync(a, "/payments/acct-5", "k-422", "amount=10")).StatusCode);
        Assert.Equal(1, backend.Executions);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_missing_or_malformed_key_gets_400_and_routes_that_do_not_require_one_run_without()
    {
        await using var apps = new Apps();
        var backend = new Backend();
        var (a, _) = await StartTwoAsync(apps, backend, "idem-400/");

        var missing = await PostAsync(a, "/payments/acct-6", null, "amount=1");
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType?.MediaType);
        Assert.Contains("Idempotency-Key", await missing.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, (await PostAsync(a, "/payments/acct-6", new string('k', 300), "amount=1")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await PostAsync(a, "/payments/acct-6", "\"\"", "amount=1")).StatusCode);
        Assert.Equal(0, backend.Executions);

        Assert.Equal(HttpStatusCode.OK, (await PostAsync(a, "/free", null, "")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await PostAsync(a, "/free", null, "")).StatusCode);
        Assert.Equal(2, backend.Executions);
    }

    [Fact(Timeout = 60_000)]
    public async Task Bodies_over_the_limits_get_413_or_a_replay_without_the_body()
    {
        await using var apps = new Apps();
        var backend = new Backend();
        var (a, b) = await StartTwoAsync(apps, backend, "idem-413/", o =>
        {
            o.MaxRequestBodyBytes = 1024;
            o.MaxResponseBodyBytes = 1024;
        });

        var tooBig = await PostAsync(a, "/payments/acct-7", "k-big-request", new string('x', 2048));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooBig.StatusCode);
        Assert.Equal("application/problem+json", tooBig.Content.Headers.ContentType?.MediaType);
        Assert.Equal(0, backend.Executions);
        Assert.Null(await fixture.Client.GetAsync("idem-413/k-big-request"));

        var first = await PostAsync(a, "/payments/acct-7", "k-big-response", "big");
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(4096, (await first.Content.ReadAsStringAsync()).Length);
        var replay = await PostAsync(b, "/payments/acct-7", "k-big-response", "big");
        Assert.Equal(HttpStatusCode.OK, replay.StatusCode);
        Assert.Equal(["true"], replay.Headers.GetValues("Idempotent-Replay-Body-Omitted"));
        Assert.Equal("", await replay.Content.ReadAsStringAsync());
        Assert.Equal(1, backend.Executions);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_failed_request_releases_its_key_for_a_retry()
    {
        await using var apps = new Apps();
        var backend = new Backend();
        var (a, b) = await StartTwoAsync(apps, backend, "idem-fail/");

        await Assert.ThrowsAsync<InvalidOperationException>(() => PostAsync(a, "/payments/acct-8", "k-throw", "fail"));
        Assert.Null(await fixture.Client.GetAsync("idem-fail/k-throw"));
        Assert.Equal(HttpStatusCode.InternalServerError, (await PostAsync(a, "/payments/acct-8", "k-500", "500")).StatusCode);
        Assert.Equal(HttpStatusCode.InternalServerError, (await PostAsync(b, "/payments/acct-8", "k-500", "500")).StatusCode);
        Assert.Equal(3, backend.Executions);
        Assert.Null(await fixture.Client.GetAsync("idem-fail/k-500"));
    }

    [Fact(Timeout = 60_000)]
    public async Task The_claim_of_an_instance_that_dies_mid_request_expires_and_a_retry_runs()
    {
        await using var apps = new Apps();
        var backend = new Backend { Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously) };
        var (a, b) = await StartTwoAsync(apps, backend, "idem-crash/", o => o.InFlightTtl = TimeSpan.FromSeconds(2));
        var firstTask = PostAsync(a, "/payments/acct-9", "k-crash", "amount=1");
        await backend.Entered.Task.WaitAsync(Poll.Bound);
        Assert.Equal(HttpStatusCode.Conflict, (await PostAsync(b, "/payments/acct-9", "k-crash", "amount=1")).StatusCode);

        // Instance a loses its connection to Keel for good, as if it had died: its marker's lease is no longer renewed.
        await Instances[0].Services.GetRequiredService<KeelClient>().DisposeAsync();
        var gate = backend.Gate;
        backend.Gate = null;
        HttpResponseMessage? retried = null;
        await Poll.UntilAsync(async () => (retried = await PostAsync(b, "/payments/acct-9", "k-crash", "amount=1")).StatusCode == HttpStatusCode.Created,
            "the retry ran once the dead instance's claim expired");
        Assert.Contains("\"by\":\"b\"", await retried!.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(2, backend.Executions);

        // The dead instance's request still answers its caller, but cannot store over b's record: b's response is kept.
        gate.SetResult();
        Assert.Equal(HttpStatusCode.Created, (await firstTask.WaitAsync(Poll.Bound)).StatusCode);
        var replay = await PostAsync(b, "/payments/acct-9", "k-crash", "amount=1");
        Assert.Equal(["true"], replay.Headers.GetValues("Idempotent-Replayed"));
        Assert.Contains("\"by\":\"b\"", await replay.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(2, backend.Executions);
    }
}
