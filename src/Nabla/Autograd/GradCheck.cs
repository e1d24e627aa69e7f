namespace Nabla.Autograd;

/// <summary>The worst disagreement a gradient check found.</summary>
public sealed record GradCheckResult(bool Passed, double MaxError, string Where)
{
    public override string ToString() => Passed ? $"gradients agree (max error {MaxError:G3})" : $"gradients differ: {Where}";
}

/// <summary>
/// Finite-difference gradient checking: compares the gradient autograd computes for each input against
/// central differences (f(x+ε) - f(x-ε)) / 2ε of a random projection of the output, element by element.
/// Float32 limits the precision, so use ε around 1e-2..1e-3 and tolerances around 1e-2.
/// </summary>
public static class GradCheck
{
    public static GradCheckResult Check(Func<Tensor[], Tensor> f, Tensor[] inputs, float eps = 1e-3f,
        double atol = 1e-3, double rtol = 1e-2, int seed = 0)
    {
        foreach (var x in inputs)
            if (!x.RequiresGrad || !x.IsContiguous) throw new ArgumentException("GradCheck inputs must be contiguous leaves with RequiresGrad.");
        // Project the output onto a fixed random direction so every output element matters.
        var probe = f(inputs);
        var weights = Tensor.Randn(new Generator((ulong)seed), probe.Shape.ToArray());
        Tensor Objective() => f(inputs).Mul(weights).Sum();

        foreach (var x in inputs) x.Grad = null;
        Objective().Backward();
        var analytic = inputs.Select(x => x.Grad?.ToArray() ?? new float[x.Count]).ToArray();

        double maxError = 0, worstExcess = 0;
        string where = "";
        using var _ = GradMode.NoGrad();
        for (int k = 0; k < inputs.Length; k++)
        {
            for (int i = 0; i < inputs[k].Count; i++)
            {
                float saved = inputs[k].AsSpan()[i];
                inputs[k].AsSpan()[i] = saved + eps;
                double plus = Objective().Item();
                inputs[k].AsSpan()[i] = saved - eps;
                double minus = Objective().Item();
                inputs[k].AsSpan()[i] = saved;
                double numeric = (plus - minus) / (2 * eps);
                double error = Math.Abs(numeric - analytic[k][i]);
                maxError = Math.Max(maxError, error);
                double excess = error - (atol + rtol * Math.Abs(numeric));
                if (excess > worstExcess)
                {
                    worstExcess = excess;
                    where = $"input {k} element {i}: autograd {analytic[k][i]:G6}, finite difference {numeric:G6}";
                }
            }
        }
        bool passed = worstExcess == 0;
        return new GradCheckResult(passed, maxError, where);
    }
}
