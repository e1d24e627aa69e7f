using System.Globalization;

namespace Nabla.Bench;

/// <summary>The "--name value" options of the benchmark commands that take their own (`kernels --threads 2`).</summary>
internal static class BenchArgs
{
    /// <summary>The word after <paramref name="name"/>, or null when the option is not given.</summary>
    public static string? Value(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    public static int Int(string[] args, string name, int fallback) =>
        Value(args, name) is { } value ? int.Parse(value, CultureInfo.InvariantCulture) : fallback;
}
