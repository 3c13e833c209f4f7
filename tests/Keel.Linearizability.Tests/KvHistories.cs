using Keel.Core;

namespace Keel.Linearizability.Tests;

/// <summary>
/// Generates key-value histories the honest way: each operation is executed atomically against a real sequential
/// store at a random instant inside its [call, return] window, so the history is linearizable by construction.
/// </summary>
internal static class KvHistories
{
    public const string NeverWritten = "never-written";

    private sealed record Planned(int Client, KvInput Input, long CallMs, long LinearizeMs, long ReturnMs, bool Pending, bool TakesEffect);

    public static History<KvInput, KvOutput> Honest(ulong seed, int clients, int operationsPerClient, int keys)
    {
        var random = new DeterministicRandom(seed);
        var planned = new List<Planned>();
        var written = new List<string>[keys];
        for (var key = 0; key < keys; key++) written[key] = ["v-initial"];
        for (var client = 0; client < clients; client++)
        {
            // A client whose request timed out carries on under a new id, as a Jepsen process does after an info op.
            var clientId = client * 1_000;
            var timeMs = random.NextInt64(20);
            for (var index = 0; index < operationsPerClient; index++)
            {
                var keyIndex = (int)random.NextInt64(keys);
                var key = "k" + keyIndex;
                var value = $"c{client}-{index}";
                var roll = random.NextInt64(100);
                var input = roll switch
                {
                    < 40 => KvInput.Get(key),
                    < 70 => KvInput.Put(key, value),
                    < 80 => KvInput.Delete(key),
                    _ => KvInput.Cas(key, written[keyIndex][(int)random.NextInt64(written[keyIndex].Count)], value),
                };
                if (input.Kind is KvOperationKind.Put or KvOperationKind.CompareAndSwap) written[keyIndex].Add(value);
                var callMs = timeMs;
                var linearizeMs = callMs + random.NextInt64(20);
                var returnMs = linearizeMs + random.NextInt64(20);
                var pending = random.NextInt64(100) < 8;
                planned.Add(new Planned(clientId, input, callMs, linearizeMs, returnMs, pending,
                    TakesEffect: !pending || random.NextInt64(2) == 0));
                if (pending) clientId++;
                timeMs = returnMs + random.NextInt64(10);
            }
        }

        // Execute atomically in linearization-point order; ties in any fixed order (both windows contain the instant).
        var store = new Dictionary<string, string>(StringComparer.Ordinal);
        var outputs = new KvOutput[planned.Count];
        var order = Enumerable.Range(0, planned.Count)
            .OrderBy(i => planned[i].LinearizeMs).ThenBy(i => planned[i].Client).ToArray();
        foreach (var i in order)
        {
            var operation = planned[i];
            if (!operation.TakesEffect) continue;
            var input = operation.Input;
            store.TryGetValue(input.Key, out var current);
            switch (input.Kind)
            {
                case KvOperationKind.Get:
                    outputs[i] = new KvOutput(current);
                    break;
                case KvOperationKind.Put:
                    store[input.Key] = input.Value!;
                    break;
                case KvOperationKind.Delete:
                    store.Remove(input.Key);
                    break;
                case KvOperationKind.CompareAndSwap:
                    var holds = current is not null && current == input.Expected;
                    if (holds) store[input.Key] = input.Value!;
                    outputs[i] = KvOutput.Cas(holds);
                    break;
            }
        }

        // Record in call order, as a simulator would.
        var history = new History<KvInput, KvOutput>();
        foreach (var i in Enumerable.Range(0, planned.Count).OrderBy(i => planned[i].CallMs).ThenBy(i => planned[i].Client))
        {
            var operation = planned[i];
            if (operation.Pending) history.AddPending(operation.Client, operation.Input, operation.CallMs);
            else history.AddCompleted(operation.Client, operation.Input, operation.CallMs, outputs[i], operation.ReturnMs);
        }

        return history;
    }

    /// <summary>
    /// The same history with one completed read answering a value nobody ever wrote (a read appended after
    /// everything if there is none), returning the id of the tampered read.
    /// </summary>
    public static (History<KvInput, KvOutput> History, int TamperedId) TamperOneRead(History<KvInput, KvOutput> honest, ulong seed)
    {
        var reads = honest.Operations.Where(o => o.Input.Kind == KvOperationKind.Get && !o.IsPending).Select(o => o.Id).ToArray();
        var random = new DeterministicRandom(seed);
        var tampered = new History<KvInput, KvOutput>();
        var victim = reads.Length == 0 ? -1 : reads[random.NextInt64(reads.Length)];
        foreach (var operation in honest.Operations)
        {
            if (operation.IsPending) tampered.AddPending(operation.ClientId, operation.Input, operation.CallMs);
            else tampered.AddCompleted(operation.ClientId, operation.Input, operation.CallMs,
                operation.Id == victim ? KvOutput.Found(NeverWritten) : operation.Output, operation.ReturnMs!.Value);
        }

        if (victim < 0)
        {
            var lastMs = honest.Operations.Select(o => o.ReturnMs ?? o.CallMs).DefaultIfEmpty(0).Max();
            victim = tampered.AddCompleted(999, KvInput.Get("k0"), lastMs + 1, KvOutput.Found(NeverWritten), lastMs + 2);
        }

        return (tampered, victim);
    }
}
