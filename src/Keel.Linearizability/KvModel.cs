using System.Globalization;

namespace Keel.Linearizability;

/// <summary>The kind of an etcd-like key-value operation.</summary>
public enum KvOperationKind
{
    /// <summary>Range on a single key: returns its value or nothing.</summary>
    Get,

    /// <summary>Put: sets the value.</summary>
    Put,

    /// <summary>DeleteRange on a single key.</summary>
    Delete,

    /// <summary>Txn comparing the key's value to an expected value, putting a new value on success.</summary>
    CompareAndSwap,
}

/// <summary>A single-key etcd-like request.</summary>
/// <param name="Kind">Which operation.</param>
/// <param name="Key">The key.</param>
/// <param name="Value">The value written by Put and by a successful CompareAndSwap.</param>
/// <param name="Expected">The value CompareAndSwap compares against.</param>
public readonly record struct KvInput(KvOperationKind Kind, string Key, string? Value = null, string? Expected = null)
{
    /// <summary>A read of <paramref name="key"/>.</summary>
    public static KvInput Get(string key) => new(KvOperationKind.Get, key);

    /// <summary>A write of <paramref name="value"/> to <paramref name="key"/>.</summary>
    public static KvInput Put(string key, string value) => new(KvOperationKind.Put, key, value);

    /// <summary>A delete of <paramref name="key"/>.</summary>
    public static KvInput Delete(string key) => new(KvOperationKind.Delete, key);

    /// <summary>Txn(If value(key) == expected, Then put(key, value)).</summary>
    public static KvInput Cas(string key, string expected, string value) =>
        new(KvOperationKind.CompareAndSwap, key, value, expected);
}

/// <summary>The response to a <see cref="KvInput"/>.</summary>
/// <param name="Value">For Get: the value read, or null when the key does not exist.</param>
/// <param name="Succeeded">For CompareAndSwap: whether the compare held (Txn's <c>succeeded</c>).</param>
public readonly record struct KvOutput(string? Value = null, bool Succeeded = false)
{
    /// <summary>A Get that found <paramref name="value"/>.</summary>
    public static KvOutput Found(string value) => new(value);

    /// <summary>A Get that found no key.</summary>
    public static KvOutput NotFound => default;

    /// <summary>An acknowledged Put or Delete.</summary>
    public static KvOutput Ok => default;

    /// <summary>The outcome of a CompareAndSwap.</summary>
    public static KvOutput Cas(bool succeeded) => new(null, succeeded);
}

/// <summary>
/// The sequential specification of an etcd-like key-value store restricted to single-key operations: get, put,
/// delete and compare-and-swap (a Txn with one value compare and one put). Partitioned per key, since operations on
/// different keys commute (Porcupine's etcd and kv models, porcupine/kv_test.go; Jepsen's cas-register per key).
/// The state of one partition is the key's value, null when absent.
/// </summary>
/// <remarks>
/// A compare on the value of a missing key fails, as in etcd (server/etcdserver/txn/txn.go, <c>applyCompare</c>:
/// "Always fail if comparing a value on a key/keys that doesn't exist").
/// </remarks>
public sealed class KvModel : IModel<string?, KvInput, KvOutput>
{
    /// <inheritdoc/>
    public string? Init() => null;

    /// <inheritdoc/>
    public (bool Ok, string? NewState) Step(string? state, KvInput input, KvOutput output) => input.Kind switch
    {
        KvOperationKind.Get => (string.Equals(state, output.Value, StringComparison.Ordinal), state),
        KvOperationKind.Put => (true, input.Value),
        KvOperationKind.Delete => (true, null),
        KvOperationKind.CompareAndSwap => CompareHolds(state, input)
            ? (output.Succeeded, input.Value)
            : (!output.Succeeded, state),
        _ => throw new ArgumentOutOfRangeException(nameof(input), input.Kind, "unknown key-value operation"),
    };

    /// <inheritdoc/>
    public (bool Ok, string? NewState) StepUnobserved(string? state, KvInput input) => input.Kind switch
    {
        KvOperationKind.Get => (true, state),
        KvOperationKind.Put => (true, input.Value),
        KvOperationKind.Delete => (true, null),
        KvOperationKind.CompareAndSwap => (true, CompareHolds(state, input) ? input.Value : state),
        _ => throw new ArgumentOutOfRangeException(nameof(input), input.Kind, "unknown key-value operation"),
    };

    /// <inheritdoc/>
    public bool IsReadOnly(KvInput input) => input.Kind == KvOperationKind.Get;

    private static bool CompareHolds(string? state, KvInput input) =>
        state is not null && string.Equals(state, input.Expected, StringComparison.Ordinal);

    /// <inheritdoc/>
    public bool StateEquals(string? left, string? right) => string.Equals(left, right, StringComparison.Ordinal);

    /// <inheritdoc/>
    public int StateHash(string? state)
    {
        if (state is null) return 0;
        // FNV-1a: stable across processes, unlike string.GetHashCode.
        var hash = 2166136261u;
        foreach (var character in state) hash = (hash ^ character) * 16777619u;
        return (int)hash | 1;
    }

    /// <summary>One sub-history per key, in ordinal key order (never hash order).</summary>
    public IReadOnlyList<History<KvInput, KvOutput>> Partition(History<KvInput, KvOutput> history)
    {
        ArgumentNullException.ThrowIfNull(history);
        return history.Operations
            .GroupBy(operation => operation.Input.Key, StringComparer.Ordinal)
            .OrderBy(group => group.Key, StringComparer.Ordinal)
            .Select(group => history.Sub(group, $"key \"{group.Key}\""))
            .ToArray();
    }

    /// <inheritdoc/>
    public string DescribeOperation(KvInput input, KvOutput output, bool pending)
    {
        var call = input.Kind switch
        {
            KvOperationKind.Get => $"get({input.Key})",
            KvOperationKind.Put => $"put({input.Key}, {Quote(input.Value)})",
            KvOperationKind.Delete => $"delete({input.Key})",
            KvOperationKind.CompareAndSwap => $"cas({input.Key}, {Quote(input.Expected)} -> {Quote(input.Value)})",
            _ => input.Kind.ToString(),
        };
        if (pending) return call + " -> ? (never returned)";
        var result = input.Kind switch
        {
            KvOperationKind.Get => output.Value is null ? "not found" : Quote(output.Value),
            KvOperationKind.CompareAndSwap => output.Succeeded ? "succeeded" : "failed",
            _ => "ok",
        };
        return string.Create(CultureInfo.InvariantCulture, $"{call} -> {result}");
    }

    /// <inheritdoc/>
    public string DescribeState(string? state) => state is null ? "(absent)" : Quote(state);

    private static string Quote(string? value) => value is null ? "null" : $"\"{value}\"";
}
