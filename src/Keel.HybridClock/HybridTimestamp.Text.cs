using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace Keel.HybridClock;

/// <summary>Text form of a <see cref="HybridTimestamp"/>: formatting and parsing.</summary>
/// <remarks>
/// The form is ISO-8601 UTC with milliseconds followed by the logical counter as a sign and four upper-case hex digits,
/// e.g. <c>2026-11-26T10:15:30.123Z+0004</c> (logical 4; logical 0xFFFF prints as <c>+FFFF</c>). Hex keeps the
/// counter fixed-width, so for years up to 9999 the ordinal order of the strings is the order of the timestamps, which
/// makes the text safe to use as a sort key in logs and audit tables. Years above 9999 (possible with 48 bits of
/// milliseconds, up to 10889) use ISO-8601's expanded form with a leading '+': <c>+10889-08-02T05:31:50.655Z+FFFF</c>.
/// The calendar conversion is Howard Hinnant's days-from-civil algorithm ("chrono-Compatible Low-Level Date
/// Algorithms"), so it is exact over the whole 48-bit range and allocation-free.
/// </remarks>
public readonly partial struct HybridTimestamp : ISpanFormattable, ISpanParsable<HybridTimestamp>
{
    /// <summary>Length of the text form for years up to 9999.</summary>
    public const int FormattedLength = 29;

    /// <summary>The largest length of the text form (a five-digit year in expanded form).</summary>
    public const int MaxFormattedLength = FormattedLength + 2;

    private const long MsPerDay = 86_400_000;

    /// <summary>Formats as ISO-8601 UTC with milliseconds plus the logical part, e.g. <c>2026-11-26T10:15:30.123Z+0004</c>.</summary>
    public override string ToString()
    {
        Span<char> buffer = stackalloc char[MaxFormattedLength];
        var ok = TryFormat(buffer, out var written);
        Debug.Assert(ok);
        return new string(buffer[..written]);
    }

    /// <summary>Same as <see cref="ToString()"/>; there is only one format, so <paramref name="format"/> must be null, empty or "O".</summary>
    public string ToString(string? format, IFormatProvider? formatProvider)
    {
        ValidateFormat(format);
        return ToString();
    }

    /// <summary>Writes the text form into <paramref name="destination"/> without allocating.</summary>
    /// <returns>False when <paramref name="destination"/> is too short.</returns>
    public bool TryFormat(Span<char> destination, out int charsWritten)
    {
        var physicalMs = PhysicalMs;
        var days = physicalMs / MsPerDay;
        var msOfDay = physicalMs % MsPerDay;
        var (year, month, day) = CivilFromDays(days);
        var expanded = year > 9999;
        var length = expanded ? FormattedLength + 2 : FormattedLength;
        if (destination.Length < length)
        {
            charsWritten = 0;
            return false;
        }

        var i = 0;
        if (expanded)
        {
            destination[i++] = '+';
            WriteDigits(destination, ref i, year, 5);
        }
        else
        {
            WriteDigits(destination, ref i, year, 4);
        }
        destination[i++] = '-';
        WriteDigits(destination, ref i, month, 2);
        destination[i++] = '-';
        WriteDigits(destination, ref i, day, 2);
        destination[i++] = 'T';
        WriteDigits(destination, ref i, (int)(msOfDay / 3_600_000), 2);
        destination[i++] = ':';
        WriteDigits(destination, ref i, (int)(msOfDay / 60_000 % 60), 2);
        destination[i++] = ':';
        WriteDigits(destination, ref i, (int)(msOfDay / 1000 % 60), 2);
        destination[i++] = '.';
        WriteDigits(destination, ref i, (int)(msOfDay % 1000), 3);
        destination[i++] = 'Z';
        destination[i++] = '+';
        var logical = Logical;
        for (var shift = 12; shift >= 0; shift -= 4)
            destination[i++] = "0123456789ABCDEF"[(logical >> shift) & 0xF];
        Debug.Assert(i == length);
        charsWritten = i;
        return true;
    }

    /// <inheritdoc />
    public bool TryFormat(Span<char> destination, out int charsWritten, ReadOnlySpan<char> format, IFormatProvider? provider)
    {
        ValidateFormat(format);
        return TryFormat(destination, out charsWritten);
    }

    /// <summary>Parses the text form written by <see cref="ToString()"/>.</summary>
    /// <exception cref="FormatException">The text is not a valid hybrid timestamp.</exception>
    public static HybridTimestamp Parse(ReadOnlySpan<char> text) =>
        TryParse(text, out var result, out var error) ? result : throw new FormatException($"Invalid hybrid timestamp: {error}.");

    /// <summary>Parses the text form written by <see cref="ToString()"/>.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    /// <exception cref="FormatException">The text is not a valid hybrid timestamp.</exception>
    public static HybridTimestamp Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Parse(text.AsSpan());
    }

    /// <summary>Parses the text form written by <see cref="ToString()"/>; returns false instead of throwing.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out HybridTimestamp result) => TryParse(text, out result, out _);

    /// <summary>Parses the text form written by <see cref="ToString()"/>; returns false instead of throwing.</summary>
    public static bool TryParse([NotNullWhen(true)] string? text, out HybridTimestamp result)
    {
        if (text is null)
        {
            result = default;
            return false;
        }
        return TryParse(text.AsSpan(), out result, out _);
    }

    /// <inheritdoc />
    public static HybridTimestamp Parse(string s, IFormatProvider? provider) => Parse(s);

    /// <inheritdoc />
    public static bool TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out HybridTimestamp result) =>
        TryParse(s, out result);

    /// <inheritdoc />
    public static HybridTimestamp Parse(ReadOnlySpan<char> s, IFormatProvider? provider) => Parse(s);

    /// <inheritdoc />
    public static bool TryParse(ReadOnlySpan<char> s, IFormatProvider? provider, out HybridTimestamp result) =>
        TryParse(s, out result);

    private static bool TryParse(ReadOnlySpan<char> text, out HybridTimestamp result, out string error)
    {
        result = default;
        var i = 0;
        int year;
        if (text.Length == FormattedLength + 2 && text[0] == '+')
        {
            i = 1;
            if (!TryReadDigits(text, ref i, 5, out year) || year <= 9999)
                return Fail(out error, "the expanded year form (+YYYYY) is only for years above 9999");
        }
        else if (text.Length == FormattedLength)
        {
            if (!TryReadDigits(text, ref i, 4, out year))
                return Fail(out error, "expected a four-digit year");
        }
        else
        {
            return Fail(out error, "expected 29 characters like 2026-11-26T10:15:30.123Z+0004");
        }

        if (!Expect(text, ref i, '-') || !TryReadDigits(text, ref i, 2, out var month) ||
            !Expect(text, ref i, '-') || !TryReadDigits(text, ref i, 2, out var day) ||
            !Expect(text, ref i, 'T') || !TryReadDigits(text, ref i, 2, out var hour) ||
            !Expect(text, ref i, ':') || !TryReadDigits(text, ref i, 2, out var minute) ||
            !Expect(text, ref i, ':') || !TryReadDigits(text, ref i, 2, out var second) ||
            !Expect(text, ref i, '.') || !TryReadDigits(text, ref i, 3, out var millisecond) ||
            !Expect(text, ref i, 'Z') || !Expect(text, ref i, '+'))
            return Fail(out error, "expected the layout yyyy-MM-ddTHH:mm:ss.fffZ+XXXX");

        var logical = 0;
        for (var end = i + 4; i < end; i++)
        {
            var digit = HexValue(text[i]);
            if (digit < 0) return Fail(out error, "expected four hex digits for the logical counter");
            logical = (logical << 4) | digit;
        }

        if (month is < 1 or > 12) return Fail(out error, "month out of range");
        if (hour > 23 || minute > 59) return Fail(out error, "time of day out of range");
        // Unix time, which the physical part counts, has no leap seconds: 23:59:60 cannot be represented.
        if (second > 59) return Fail(out error, "second out of range (Unix time has no leap second 60)");
        var days = DaysFromCivil(year, month, day);
        if (day < 1) return Fail(out error, "day out of range for the month");
        if (days < 0) return Fail(out error, "physical time before the Unix epoch");
        if (CivilFromDays(days) != (year, month, day)) return Fail(out error, "day out of range for the month");
        var physicalMs = days * MsPerDay + hour * 3_600_000L + minute * 60_000L + second * 1000L + millisecond;
        if (physicalMs > MaxPhysicalMs) return Fail(out error, "physical time beyond the 48-bit range");

        result = new HybridTimestamp(physicalMs, logical);
        error = "";
        return true;
    }

    // The reason is a literal so that TryParse never allocates, even on failure; Parse adds the prefix.
    private static bool Fail(out string error, string reason)
    {
        error = reason;
        return false;
    }

    private static void ValidateFormat(ReadOnlySpan<char> format)
    {
        if (!format.IsEmpty && !format.SequenceEqual("O"))
            throw new FormatException($"Unsupported format '{format.ToString()}': {nameof(HybridTimestamp)} has one text form (\"O\").");
    }

    private static void WriteDigits(Span<char> destination, ref int index, int value, int width)
    {
        for (var p = index + width - 1; p >= index; p--)
        {
            destination[p] = (char)('0' + value % 10);
            value /= 10;
        }
        index += width;
    }

    private static bool TryReadDigits(ReadOnlySpan<char> text, ref int index, int width, out int value)
    {
        value = 0;
        for (var end = index + width; index < end; index++)
        {
            var c = text[index];
            if (c is < '0' or > '9') return false;
            value = value * 10 + (c - '0');
        }
        return true;
    }

    private static bool Expect(ReadOnlySpan<char> text, ref int index, char expected)
    {
        if (text[index] != expected) return false;
        index++;
        return true;
    }

    private static int HexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'A' and <= 'F' => c - 'A' + 10,
        >= 'a' and <= 'f' => c - 'a' + 10,
        _ => -1,
    };

    // Hinnant's civil_from_days / days_from_civil, restricted to non-negative years (all we need: 1970..10889).
    private static (int Year, int Month, int Day) CivilFromDays(long daysSinceEpoch)
    {
        var z = daysSinceEpoch + 719_468;
        var era = z / 146_097;
        var dayOfEra = z - era * 146_097;
        var yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365;
        var dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100);
        var monthIndex = (5 * dayOfYear + 2) / 153;
        var day = (int)(dayOfYear - (153 * monthIndex + 2) / 5 + 1);
        var month = (int)(monthIndex < 10 ? monthIndex + 3 : monthIndex - 9);
        var year = (int)(yearOfEra + era * 400 + (month <= 2 ? 1 : 0));
        return (year, month, day);
    }

    private static long DaysFromCivil(int year, int month, int day)
    {
        long y = month <= 2 ? year - 1 : year;
        var era = y / 400;
        var yearOfEra = y - era * 400;
        var dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
        var dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear;
        return era * 146_097 + dayOfEra - 719_468;
    }
}
