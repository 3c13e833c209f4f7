using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Keel.Core;

/// <summary>
/// Safety checks that stay on in release builds. A failed check means Keel's own logic is wrong (a second leader in a
/// term, a commit index moving backwards, two holders of a lease), so the process must stop rather than go on with
/// corrupt state. Cheap sanity checks that are only worth paying for in debug builds use <see cref="Debug.Assert(bool)"/>.
/// </summary>
/// <remarks>Modelled on TigerBeetle's TIGER_STYLE: assertions are a force multiplier for the simulator.</remarks>
public static class Invariant
{
    /// <summary>Throws <see cref="InvariantViolationException"/> when <paramref name="condition"/> is false.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Check([DoesNotReturnIf(false)] bool condition, string message,
        [CallerArgumentExpression(nameof(condition))] string? expression = null)
    {
        if (!condition) Fail(message, expression);
    }

    /// <summary>Throws <see cref="InvariantViolationException"/> when <paramref name="condition"/> is false; the message is built lazily.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Check<TState>([DoesNotReturnIf(false)] bool condition, TState state, Func<TState, string> message,
        [CallerArgumentExpression(nameof(condition))] string? expression = null)
    {
        if (!condition) Fail(message(state), expression);
    }

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void Fail(string message, string? expression) =>
        throw new InvariantViolationException(expression is null ? message : $"{message} (violated: {expression})");
}

/// <summary>A safety invariant of Keel was violated: a bug, never an expected failure.</summary>
public sealed class InvariantViolationException : Exception
{
    /// <summary>Creates the exception with the description of the violated invariant.</summary>
    public InvariantViolationException(string message) : base(message) { }
}
