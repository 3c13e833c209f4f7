using System.Text;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using static Keel.Idempotency.Tests.TestData;

namespace Keel.Idempotency.Tests;

/// <summary>
/// The law of the pattern: a request with an idempotency key takes effect exactly once however it is retried. A
/// service applies its operation only when the table says New, and replays otherwise; clients retry at random, the
/// executions finish (or fail without effect and release) in random order, committed time moves within the windows,
/// and the table is snapshotted and restored in between (as a follower catching up from a snapshot would be).
/// </summary>
public class ExactlyOnceProperties
{
    private static readonly string[] Keys = ["pay-1", "pay-2", "pay-3", "pay-4", "refund-1", "f47ac10b-58cc-4372-a567-0e02b2c3d479"];

    /// <summary>One step: a client sends (or re-sends) a request, an execution finishes, time passes, or the table is snapshotted and restored.</summary>
    public abstract record Step;

    /// <summary>A client sends the request for key #Key (a retry if it was sent before).</summary>
    public sealed record Send(int Key) : Step;

    /// <summary>The execution #Index (modulo those running) finishes, with effect or failing before any effect.</summary>
    public sealed record Finish(int Index, bool WithEffect) : Step;

    /// <summary>Committed time moves on.</summary>
    public sealed record Tick(int DeltaMs) : Step;

    /// <summary>The table is replaced by Restore(Snapshot()).</summary>
    public sealed record Reload : Step;

    private static Arbitrary<Step[]> Steps()
    {
        var step = Gen.Frequency<Step>(
            (6, Gen.Choose(0, Keys.Length - 1).Select(k => (Step)new Send(k))),
            (3, from i in Gen.Choose(0, 100) from effect in Gen.Frequency((4, Gen.Constant(true)), (1, Gen.Constant(false)))
                select (Step)new Finish(i, effect)),
            (2, Gen.Choose(0, 2_000).Select(d => (Step)new Tick(d))),
            (1, Gen.Constant((Step)new Reload())));
        return Arb.From(Gen.Choose(1, 150).SelectMany(n => Gen.ArrayOf(step, n)),
            steps => Enumerable.Range(0, steps.Length).Select(i => steps.Where((_, j) => j != i).ToArray()));
    }

    private sealed class Service
    {
        public IdempotencyTable Table = new(IdempotencyOptions.Default);
        public readonly Dictionary<string, int> Effects = new(StringComparer.Ordinal);
        public readonly Dictionary<string, string> FirstResponse = new(StringComparer.Ordinal);
        public readonly List<string> Running = [];
        public long NowMs = 1_700_000_000_000;
        private int _executions;

        private static RequestFingerprint FingerprintOf(string key) =>
            RequestFingerprint.Of("client-7"u8, Encoding.UTF8.GetBytes($"charge 10 EUR for {key}"));

        /// <summary>Handles a client request; returns the replayed response, or null when the request is (now) executing.</summary>
        public string? Handle(string key)
        {
            var claim = Table.Claim(key, FingerprintOf(key), NowMs);
            switch (claim.Outcome)
            {
                case ClaimOutcome.New:
                    Running.Add(key);
                    return null;
                case ClaimOutcome.InFlight:
                    Assert.Contains(key, Running);
                    return null;
                case ClaimOutcome.Completed:
                    var replayed = Encoding.UTF8.GetString(claim.Response.Body.Span);
                    Assert.Equal(FirstResponse[key], replayed);
                    Assert.Equal(0, claim.Response.StatusCode);
                    return replayed;
                default:
                    Assert.Fail($"A retry of the same request must never get {claim.Outcome}.");
                    return null;
            }
        }

        public void FinishExecution(int index, bool withEffect)
        {
            if (Running.Count == 0) return;
            var key = Running[index % Running.Count];
            Running.RemoveAt(index % Running.Count);
            if (!withEffect)
            {
                Assert.Equal(ReleaseOutcome.Released, Table.Release(key, FingerprintOf(key), NowMs));
                return;
            }
            Effects[key] = Effects.GetValueOrDefault(key) + 1;
            Assert.Equal(1, Effects[key]);
            var response = $"charged {key} as execution #{++_executions}";
            var completed = Table.Complete(key, FingerprintOf(key), 0, Encoding.UTF8.GetBytes(response), NowMs);
            Assert.Equal(CompleteOutcome.Completed, completed.Outcome);
            Assert.False(FirstResponse.ContainsKey(key));
            FirstResponse[key] = response;
        }
    }

    [Property(MaxTest = 300, Replay = FixedSeed)]
    public Property A_request_with_an_idempotency_key_takes_effect_exactly_once_however_it_is_retried() =>
        Prop.ForAll(Steps(), steps =>
        {
            var service = new Service();
            var startMs = service.NowMs;
            foreach (var step in steps)
            {
                switch (step)
                {
                    case Send(var k):
                        service.Handle(Keys[k]);
                        break;
                    case Finish(var index, var withEffect):
                        service.FinishExecution(index, withEffect);
                        break;
                    case Tick(var delta):
                        // Time moves within the windows: the whole run stays inside the 5-minute in-flight window.
                        service.NowMs = Math.Min(service.NowMs + delta, startMs + IdempotencyOptions.Default.InFlightWindowMs - 1);
                        break;
                    case Reload:
                        service.Table = IdempotencyTable.Restore(service.Table.Snapshot());
                        break;
                }
                service.Table.AssertInvariants();
            }

            // Every client keeps retrying until it gets its answer; running executions finish.
            while (service.Running.Count > 0) service.FinishExecution(0, withEffect: true);
            foreach (var key in Keys)
            {
                var answer = service.Handle(key);
                while (answer is null)
                {
                    service.FinishExecution(0, withEffect: true);
                    answer = service.Handle(key);
                }
                Assert.Equal(service.FirstResponse[key], answer);
            }
            foreach (var key in Keys) Assert.Equal(1, service.Effects[key]);
            Assert.Equal(0, service.Table.Counters.Evictions);
        });
}
