using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Keel.Core;

namespace Keel.Linearizability.Tests;

public class LinearizabilityProperties
{
    private static readonly KvModel Model = new();
    private static readonly LinearizabilityChecker<string?, KvInput, KvOutput> Checker = new(Model);

    /// <summary>Seeds across the whole int range (FsCheck's default ints stay near zero and would repeat).</summary>
    private static readonly Arbitrary<int> Seeds = Arb.From(Gen.Choose(0, int.MaxValue));

    private static (int Clients, int OperationsPerClient, int Keys) Shape(int seed)
    {
        var random = new DeterministicRandom(unchecked((ulong)seed) ^ 0x5EED);
        return (1 + (int)random.NextInt64(6), 1 + (int)random.NextInt64(15), 1 + (int)random.NextInt64(4));
    }

    [Property(MaxTest = 300)]
    public Property Histories_executed_atomically_inside_their_windows_are_linearizable() =>
        Prop.ForAll(Seeds, seed =>
        {
            var (clients, operations, keys) = Shape(seed);
            var history = KvHistories.Honest((ulong)seed, clients, operations, keys);
            return Checker.Check(history).Verdict == LinearizabilityVerdict.Linearizable;
        });

    [Property(MaxTest = 300)]
    public Property A_read_of_a_never_written_value_is_never_linearizable() =>
        Prop.ForAll(Seeds, seed =>
        {
            var (clients, operations, keys) = Shape(seed);
            var honest = KvHistories.Honest((ulong)seed, clients, operations, keys);
            var (tampered, victim) = KvHistories.TamperOneRead(honest, (ulong)seed + 1);
            var report = Checker.Check(tampered);
            return report.Verdict == LinearizabilityVerdict.NotLinearizable
                && report.Failure!.BlockedOperationId == victim;
        });

    [Property(MaxTest = 500)]
    public Property The_search_agrees_with_brute_force_on_small_histories() =>
        Prop.ForAll(Seeds, seed =>
        {
            var history = RandomSmallHistory((ulong)seed);
            var expected = BruteForce.IsLinearizable(Model, history.Operations);
            var report = Checker.Check(history);
            return report.Verdict == (expected ? LinearizabilityVerdict.Linearizable : LinearizabilityVerdict.NotLinearizable);
        });

    [Fact]
    public void Small_random_histories_exercise_both_verdicts()
    {
        var verdicts = Enumerable.Range(0, 300)
            .Select(seed => Checker.Check(RandomSmallHistory((ulong)seed)).Verdict)
            .ToArray();
        Assert.Contains(LinearizabilityVerdict.Linearizable, verdicts);
        Assert.True(verdicts.Count(v => v == LinearizabilityVerdict.NotLinearizable) > 30);
    }

    [Property(MaxTest = 100)]
    public Property The_search_keeps_its_list_and_undo_stack_consistent() =>
        Prop.ForAll(Seeds, seed =>
        {
            var history = RandomSmallHistory((ulong)seed);
            var search = new Search<string?, KvInput, KvOutput>(Model, history.Operations, 1_000_000);
            search.AssertInvariants();
            search.Run();
            search.AssertInvariants(); // throws InvariantViolationException on a broken list or stack
        });

    /// <summary>Up to seven operations on one key with arbitrary answers from a tiny domain, so both verdicts occur.</summary>
    private static History<KvInput, KvOutput> RandomSmallHistory(ulong seed)
    {
        var random = new DeterministicRandom(seed);
        string[] values = ["1", "2", "3"];
        string? Pick() => random.NextInt64(4) == 0 ? null : values[random.NextInt64(values.Length)];
        var history = new History<KvInput, KvOutput>();
        var count = 1 + (int)random.NextInt64(7);
        for (var index = 0; index < count; index++)
        {
            var callMs = random.NextInt64(30);
            var returnMs = callMs + random.NextInt64(15);
            var input = random.NextInt64(4) switch
            {
                0 => KvInput.Get("x"),
                1 => KvInput.Put("x", Pick() ?? "1"),
                2 => KvInput.Delete("x"),
                _ => KvInput.Cas("x", Pick() ?? "1", Pick() ?? "2"),
            };
            var output = input.Kind == KvOperationKind.CompareAndSwap
                ? KvOutput.Cas(random.NextInt64(2) == 0)
                : new KvOutput(input.Kind == KvOperationKind.Get ? Pick() : null);
            if (random.NextInt64(6) == 0) history.AddPending(index, input, callMs);
            else history.AddCompleted(index, input, callMs, output, returnMs);
        }

        return history;
    }
}

/// <summary>
/// The definition, executed literally: try every order that respects real time (a before b when a returned strictly
/// before b was called), letting each pending operation take effect once or not at all.
/// </summary>
internal static class BruteForce
{
    public static bool IsLinearizable<TState, TInput, TOutput>(IModel<TState, TInput, TOutput> model,
        IReadOnlyList<Operation<TInput, TOutput>> operations)
    {
        var chosen = new bool[operations.Count];
        return Extend(model.Init(), 0);

        bool Extend(TState state, int placed)
        {
            if (operations.Where((o, i) => !chosen[i]).All(o => o.IsPending)) return true;
            for (var i = 0; i < operations.Count; i++)
            {
                if (chosen[i]) continue;
                var candidate = operations[i];
                var mustWait = false;
                for (var j = 0; j < operations.Count; j++)
                    if (!chosen[j] && j != i && operations[j].ReturnMs is { } returnMs && returnMs < candidate.CallMs)
                        mustWait = true;
                if (mustWait) continue;
                var (ok, next) = candidate.IsPending
                    ? model.StepUnobserved(state, candidate.Input)
                    : model.Step(state, candidate.Input, candidate.Output);
                if (!ok) continue;
                chosen[i] = true;
                var found = Extend(next, placed + 1);
                chosen[i] = false;
                if (found) return true;
            }

            return false;
        }
    }
}
