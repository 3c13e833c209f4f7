using System.Diagnostics;
using System.Globalization;
using FsCheck;
using FsCheck.Fluent;
using Xunit.Abstractions;

namespace Keel.Fuzz.Tests;

/// <summary>
/// Run settings, from the environment so CI and a long run share one binary: <c>KEEL_FUZZ_ITERATIONS</c> (cases per
/// target, default <see cref="DefaultIterations"/>), <c>KEEL_FUZZ_SEED</c> (base seed, default fixed: runs are
/// deterministic), <c>KEEL_FUZZ_CASE</c> (replay one case index only) and <c>KEEL_FUZZ_TIMEOUT_SECONDS</c> (watchdog
/// per target; a decode that never returns fails the test instead of hanging CI).
/// </summary>
public static class FuzzSettings
{
    /// <summary>Cases per target in CI: the whole project runs in well under a minute on two cores.</summary>
    public const int DefaultIterations = 2000;

    /// <summary>"KEELFUZZ".</summary>
    public const ulong DefaultSeed = 0x4B45454C46555A5A;

    public static int Iterations { get; } = ReadInt("KEEL_FUZZ_ITERATIONS") ?? DefaultIterations;

    public static ulong Seed { get; } = ReadSeed() ?? DefaultSeed;

    public static int? OnlyCase { get; } = ReadInt("KEEL_FUZZ_CASE");

    public static TimeSpan Timeout { get; } = TimeSpan.FromSeconds(ReadInt("KEEL_FUZZ_TIMEOUT_SECONDS") ?? Math.Max(120, Iterations / 50));

    private static int? ReadInt(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;

    private static ulong? ReadSeed()
    {
        var text = Environment.GetEnvironmentVariable("KEEL_FUZZ_SEED");
        if (string.IsNullOrWhiteSpace(text)) return null;
        text = text.Trim();
        return text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.Parse(text[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture)
            : ulong.Parse(text, CultureInfo.InvariantCulture);
    }
}

/// <summary>What one fuzz run saw.</summary>
public sealed record FuzzStats(string Target, int Cases, int Accepted, int Rejected, TimeSpan Elapsed, long MaxAllocatedBytes, int MaxInputBytes)
{
    public override string ToString() =>
        $"{Target}: {Cases} cases ({Accepted} decoded, {Rejected} refused with the documented exception) in {Elapsed.TotalSeconds:F1} s, " +
        $"largest allocation {MaxAllocatedBytes} B, largest input {MaxInputBytes} B";
}

/// <summary>
/// The fuzz loop: draws each case from an FsCheck generator with its own seed (so any case replays alone), runs the
/// decoder on a watchdog thread, and checks the three laws of the issue: only the documented exception, completion
/// (watchdog and a per-case time limit), and an allocation bound linear in the input
/// (<see cref="GC.GetAllocatedBytesForCurrentThread"/> around the decode).
/// </summary>
public static class Fuzzer
{
    /// <summary>The default allocation bound: 64 bytes per input byte plus 64 KiB.</summary>
    public static long DefaultAllocationBound(int inputBytes) => 64L * inputBytes + 64 * 1024;

    private static readonly TimeSpan SlowCase = TimeSpan.FromSeconds(2);

    /// <summary>The seed of case <paramref name="index"/> of <paramref name="target"/> (SplitMix64 of base seed, target and index).</summary>
    public static ulong CaseSeed(string target, int index)
    {
        var h = FuzzSettings.Seed;
        foreach (var c in target) h = Mix(h ^ c);
        return Mix(h ^ (ulong)index);
    }

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }

    /// <summary>Draws case <paramref name="index"/> from <paramref name="gen"/>.</summary>
    public static T Draw<T>(Gen<T> gen, string target, int index) => gen.Sample(50, new Rnd(CaseSeed(target, index)), 1)[0];

    /// <summary>
    /// Runs <paramref name="decode"/> on <see cref="FuzzSettings.Iterations"/> inputs from <paramref name="inputs"/>.
    /// <paramref name="decode"/> returns normally when the input was accepted (it may assert on what it decoded);
    /// an exception for which <paramref name="documented"/> is true counts as a refusal; anything else fails the test
    /// with the case's seed, the exception and the input in hex.
    /// </summary>
    public static FuzzStats Run(ITestOutputHelper? output, string target, Gen<byte[]> inputs, Action<byte[]> decode,
        Func<Exception, bool> documented, Func<int, long>? allocationBound = null, int? iterations = null) =>
        Run(output, target, inputs, decode, documented, input => input.Length, input => input, allocationBound, iterations);

    /// <summary>The general form: inputs of any shape, with their size (for the allocation bound) and their bytes (for the report).</summary>
    public static FuzzStats Run<T>(ITestOutputHelper? output, string target, Gen<T> inputs, Action<T> decode,
        Func<Exception, bool> documented, Func<T, int> sizeOf, Func<T, byte[]> bytesOf, Func<int, long>? allocationBound = null, int? iterations = null)
    {
        var bound = allocationBound ?? DefaultAllocationBound;
        var cases = iterations ?? FuzzSettings.Iterations;
        var failures = new List<string>();
        var current = -1;
        int accepted = 0, rejected = 0, maxInput = 0;
        long maxAllocated = 0;
        var stopwatch = Stopwatch.StartNew();

        void Loop()
        {
            var first = FuzzSettings.OnlyCase ?? 0;
            var last = FuzzSettings.OnlyCase is { } only ? only + 1 : cases;
            // Warm-up: first calls JIT and initialise statics, which allocate; measure only afterwards.
            for (var i = first; i < Math.Min(last, first + 16); i++)
            {
                try { decode(Draw(inputs, target, i)); }
                catch (Exception) { /* judged in the measured pass */ }
            }
            for (var i = first; i < last && failures.Count < 5; i++)
            {
                Volatile.Write(ref current, i);
                var input = Draw(inputs, target, i);
                var size = sizeOf(input);
                maxInput = Math.Max(maxInput, size);
                var caseWatch = Stopwatch.StartNew();
                var before = GC.GetAllocatedBytesForCurrentThread();
                Exception? error = null;
                try { decode(input); }
                catch (Exception e) { error = e; }
                var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                caseWatch.Stop();
                maxAllocated = Math.Max(maxAllocated, allocated);
                if (error is null) accepted++;
                else if (documented(error)) rejected++;
                else failures.Add(Describe(target, i, bytesOf(input), $"undocumented exception {error}"));
                if (allocated > bound(size))
                    failures.Add(Describe(target, i, bytesOf(input), $"allocated {allocated} bytes for a {size}-byte input (bound {bound(size)})"));
                if (caseWatch.Elapsed > SlowCase)
                    failures.Add(Describe(target, i, bytesOf(input), $"took {caseWatch.Elapsed.TotalSeconds:F1} s"));
            }
        }

        var worker = Task.Factory.StartNew(Loop, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        if (!worker.Wait(FuzzSettings.Timeout))
            Assert.Fail($"{target}: case {Volatile.Read(ref current)} did not finish within {FuzzSettings.Timeout.TotalSeconds:F0} s (hang?). " +
                        $"Replay: KEEL_FUZZ_SEED=0x{FuzzSettings.Seed:X16} KEEL_FUZZ_CASE={Volatile.Read(ref current)}");
        worker.GetAwaiter().GetResult();
        stopwatch.Stop();
        var stats = new FuzzStats(target, accepted + rejected + failures.Count, accepted, rejected, stopwatch.Elapsed, maxAllocated, maxInput);
        output?.WriteLine(stats.ToString());
        Console.WriteLine($"[fuzz] {stats}");
        if (failures.Count > 0) Assert.Fail(string.Join("\n\n", failures));
        return stats;
    }

    private static string Describe(string target, int index, byte[] input, string problem)
    {
        var hex = Convert.ToHexString(input.AsSpan(0, Math.Min(input.Length, 4096)));
        return $"{target} case {index}: {problem}\n  input ({input.Length} bytes): {hex}{(input.Length > 4096 ? "..." : "")}\n" +
               $"  replay: KEEL_FUZZ_SEED=0x{FuzzSettings.Seed:X16} KEEL_FUZZ_CASE={index} dotnet test tests/Keel.Fuzz.Tests -c Release --filter <test>";
    }
}
