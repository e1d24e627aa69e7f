namespace Nabla.Tests.Ops;

/// <summary>Element-wise comparison of float results with a relative tolerance.</summary>
public static class Close
{
    /// <summary>
    /// Asserts |actual - expected| ≤ rtol·(|expected| + rms(expected)) + atol element by element. The rms term makes
    /// the tolerance relative to the tensor's scale for elements that are sums cancelling to nearly zero, whose own
    /// magnitude says nothing about the rounding error they carry; atol covers tensors that are exactly zero in
    /// exact arithmetic but not after rounding.
    /// </summary>
    public static void Assert(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double rtol, string what, double atol = 0)
    {
        Xunit.Assert.Equal(expected.Length, actual.Length);
        double squares = 0;
        int finite = 0;
        foreach (var e in expected)
            if (float.IsFinite(e)) { squares += (double)e * e; finite++; }
        double rms = finite == 0 ? 0 : Math.Sqrt(squares / finite);
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            if (a == e || (double.IsNaN(e) && double.IsNaN(a))) continue;
            double tolerance = rtol * (Math.Abs(e) + rms) + atol;
            if (!(Math.Abs(a - e) <= tolerance))
                Xunit.Assert.Fail($"{what}[{i}]: expected {e:G9}, got {a:G9} (difference {Math.Abs(a - e):G3}, tolerance {tolerance:G3})");
        }
    }

    public static void Assert(Tensor expected, Tensor actual, double rtol, string what, double atol = 0)
    {
        Xunit.Assert.True(expected.Shape.SequenceEqual(actual.Shape), $"{what}: expected shape {expected.ShapeString}, got {actual.ShapeString}");
        Assert(expected.ToArray(), actual.ToArray(), rtol, what, atol);
    }
}
