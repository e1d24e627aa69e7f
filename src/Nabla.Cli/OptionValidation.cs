using System.CommandLine;
using System.Globalization;

namespace Nabla.Cli;

/// <summary>
/// Range checks for numeric options, reported by the parser as one line naming the option and the value
/// ("--lr must be a finite positive number no larger than 100, got NaN"). Every numeric option of every
/// command declares its range here, so NaN, infinities, negative or absurdly large values never reach the
/// code that would allocate or loop with them.
/// </summary>
internal static class OptionValidation
{
    /// <summary>Value in (0, <paramref name="max"/>].</summary>
    public static Option<T> Positive<T>(this Option<T> option, double max) => option.Within(0, max, minExclusive: true);

    /// <summary>Value in [0, <paramref name="max"/>].</summary>
    public static Option<T> NonNegative<T>(this Option<T> option, double max) => option.Within(0, max);

    /// <summary>Value in [min, max] (or with an open end); a value that does not parse is the parser's own error,
    /// an absent optional value is not checked.</summary>
    public static Option<T> Within<T>(this Option<T> option, double min, double max, bool minExclusive = false, bool maxExclusive = false)
    {
        var type = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        bool integer = type != typeof(float) && type != typeof(double) && type != typeof(decimal);
        string rule = Describe(integer, min, max, minExclusive, maxExclusive);
        return option.Require(value =>
        {
            if (value is null) return true;
            double v = Convert.ToDouble(value, CultureInfo.InvariantCulture);
            return double.IsFinite(v) && (minExclusive ? v > min : v >= min) && (maxExclusive ? v < max : v <= max);
        }, value => $"{option.Name} must be {rule}, got {Convert.ToString(value, CultureInfo.InvariantCulture)}.");
    }

    /// <summary>A check of the option's value, reported by the parser as the one line <paramref name="error"/>
    /// (which should name the option: System.CommandLine's AcceptOnlyFromAmong does not). A value that does not
    /// parse is the parser's own error; an absent option is not checked.</summary>
    public static Option<T> Require<T>(this Option<T> option, Func<T, bool> ok, Func<T, string> error)
    {
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count == 0) return;
            T value;
            try { value = result.GetValueOrDefault<T>(); }
            catch (InvalidOperationException) { return; }
            if (!ok(value)) result.AddError(error(value));
        });
        return option;
    }

    /// <inheritdoc cref="Require{T}(Option{T}, Func{T, bool}, Func{T, string})"/>
    public static Option<T> Require<T>(this Option<T> option, Func<T, bool> ok, string error) => option.Require(ok, _ => error);

    private static string Describe(bool integer, double min, double max, bool minExclusive, bool maxExclusive)
    {
        string Number(double x) => x.ToString(x >= 10_000 && x == Math.Floor(x) ? "N0" : "G", CultureInfo.InvariantCulture);
        if (!integer && (minExclusive || maxExclusive) && max <= 1 && min >= 0)
            return $"a number in {(minExclusive ? "(" : "[")}{Number(min)}, {Number(max)}{(maxExclusive ? ")" : "]")}";
        string kind = (min, minExclusive) switch
        {
            (0, true) => integer ? "a positive integer" : "a finite positive number",
            (0, false) => integer ? "a non-negative integer" : "a finite non-negative number",
            _ => integer ? $"an integer of at least {Number(min)}" : $"a finite number of at least {Number(min)}",
        };
        return $"{kind} {(maxExclusive ? "below" : "no larger than")} {Number(max)}";
    }
}
