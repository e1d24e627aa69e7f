using System.Collections.Concurrent;
using System.Text.Json;
using Nabla.IO;
using Nabla.Kernels;

namespace Nabla.Tests.Parity;

/// <summary>
/// One PyTorch reference file written by tests/reference/make_fixtures.py: its tensors and its per-case
/// metadata (a JSON string per case). Loaded once per test run and shared read-only; callers that need a
/// tensor they can mark RequiresGrad take <see cref="Fresh"/> (a copy) so tests never touch each other's state.
/// </summary>
public sealed class ParityFixture
{
    private static readonly ConcurrentDictionary<string, ParityFixture> Cache = new();

    public string FileName { get; }
    public IReadOnlyDictionary<string, Tensor> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private ParityFixture(string fileName)
    {
        FileName = fileName;
        Tensors = SafeTensors.Load(TestData.Fixture(fileName), out var meta);
        Metadata = meta;
    }

    public static ParityFixture Get(string fileName) => Cache.GetOrAdd(fileName, f => new ParityFixture(f));

    /// <summary>Case names (metadata keys) starting with <paramref name="prefix"/>, sorted, as xunit theory data.</summary>
    public static TheoryData<string> CaseNames(string fileName, string prefix = "")
    {
        var data = new TheoryData<string>();
        foreach (var name in Get(fileName).Metadata.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
            data.Add(name);
        return data;
    }

    public bool Has(string tensor) => Tensors.ContainsKey(tensor);

    /// <summary>The stored tensor (shared: do not modify it).</summary>
    public Tensor this[string tensor] => Tensors.TryGetValue(tensor, out var t)
        ? t
        : throw new KeyNotFoundException($"{FileName}: no tensor '{tensor}' (re-run tests/reference/make_fixtures.py?).");

    /// <summary>A private copy of a stored tensor.</summary>
    public Tensor Fresh(string tensor)
    {
        var t = this[tensor];
        // (FromArray with an empty shape means 1-D, so 0-d tensors get their shape back with Reshape.)
        var copy = t.DType == DType.Int32 ? Tensor.FromArray(t.ToIntArray()) : Tensor.FromArray(t.ToArray());
        return copy.Reshape(t.Shape.ToArray());
    }

    public JsonElement Meta(string key) => JsonDocument.Parse(Metadata[key]).RootElement;
}

/// <summary>Comparisons that say exactly what differs: op/case, flat and multi-dimensional index, expected, actual.</summary>
public static class Close
{
    /// <summary>Default tolerances for float32 results compared with float64-computed references: a few ulps
    /// of relative error plus a small absolute floor for values near zero.</summary>
    public const double Rtol = 1e-5, Atol = 1e-6;

    public static void Tensor(string what, Tensor expected, Tensor actual, double rtol = Rtol, double atol = Atol)
    {
        Shape(what, expected.Shape, actual.Shape);
        if (expected.DType == DType.Int32 || actual.DType == DType.Int32)
        {
            Assert.True(expected.DType == actual.DType, $"{what}: dtype {actual.DType}, expected {expected.DType}.");
            Ints(what, expected.ToIntArray(), actual.ToIntArray(), expected.Shape.ToArray());
            return;
        }
        Floats(what, expected.ToArray(), actual.ToArray(), expected.Shape.ToArray(), rtol, atol);
    }

    public static void Shape(string what, ReadOnlySpan<int> expected, ReadOnlySpan<int> actual)
    {
        if (!expected.SequenceEqual(actual))
            Assert.Fail($"{what}: shape {ShapeMath.Format(actual)}, expected {ShapeMath.Format(expected)}.");
    }

    public static void Floats(string what, float[] expected, float[] actual, int[]? shape = null, double rtol = Rtol, double atol = Atol)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {actual.Length} elements, expected {expected.Length}.");
        int bad = 0, first = -1;
        double worst = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            bool ok = double.IsNaN(e) ? double.IsNaN(a)
                : double.IsInfinity(e) ? e == a
                : Math.Abs(a - e) <= atol + rtol * Math.Abs(e);
            if (ok) continue;
            bad++;
            double excess = double.IsNaN(a) || double.IsInfinity(a) || double.IsNaN(e) || double.IsInfinity(e) ? double.PositiveInfinity : Math.Abs(a - e) / (atol + rtol * Math.Abs(e));
            if (first < 0 || excess > worst) { worst = excess; first = i; }
        }
        if (bad == 0) return;
        var index = shape is { Length: > 0 } ? " " + Index(first, shape) : "";
        Assert.Fail($"{what}: {bad} of {expected.Length} elements differ (rtol {rtol:G3}, atol {atol:G3}); worst at element {first}{index}: " +
                    $"expected {expected[first]:G9}, actual {actual[first]:G9} (|diff| {Math.Abs((double)actual[first] - expected[first]):G3}).");
    }

    public static void Ints(string what, int[] expected, int[] actual, int[]? shape = null)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {actual.Length} elements, expected {expected.Length}.");
        for (int i = 0; i < expected.Length; i++)
            if (expected[i] != actual[i])
                Assert.Fail($"{what}: element {i}{(shape is { Length: > 0 } ? " " + Index(i, shape) : "")}: expected {expected[i]}, actual {actual[i]}.");
    }

    private static string Index(int flat, int[] shape)
    {
        var idx = new int[shape.Length];
        ShapeMath.Unravel(flat, shape, idx);
        return ShapeMath.Format(idx);
    }
}
