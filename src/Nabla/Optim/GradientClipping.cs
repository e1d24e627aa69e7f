using System.Numerics;
using Nabla.Autograd;

namespace Nabla.Optim;

public static class GradientClipping
{
    /// <summary>
    /// The global L2 norm of the parameters' gradients, with the squares of host gradients summed in double: a float
    /// sum overflows to ∞ once gradients pass ~1.8e19, long before they stop being finite. Gradients on a device are
    /// squared and summed there, in float (so such a norm comes out ∞ and nothing is clipped), and read back once.
    /// </summary>
    public static double TotalNorm(IEnumerable<Tensor> parameters)
    {
        using var _ = GradMode.NoGrad();
        double sumSquares = 0;
        Tensor? onDevice = null; // Σ g² of the device gradients so far, kept on their device
        foreach (var p in parameters)
        {
            if (p.Grad is not { } g) continue;
            if (g.Device.IsCpu)
            {
                sumSquares += SumOfSquares(g.Contiguous().AsSpan());
                continue;
            }
            var squares = g.Square().Sum();
            if (onDevice != null && !ReferenceEquals(onDevice.Device, g.Device))
            {
                sumSquares += onDevice.Item();
                onDevice = null;
            }
            onDevice = onDevice == null ? squares : onDevice.Add(squares);
        }
        if (onDevice != null) sumSquares += onDevice.Item();
        return Math.Sqrt(sumSquares);
    }

    /// <summary>
    /// Scales all gradients so that their global L2 norm is at most <paramref name="maxNorm"/> and returns the
    /// norm before clipping (like <c>clip_grad_norm_</c>). A NaN or infinite norm is returned as is and
    /// nothing is scaled, so the caller can stop on it. <paramref name="totalNorm"/> passes a norm already
    /// measured by <see cref="TotalNorm"/> to save a pass over the gradients.
    /// </summary>
    public static float ClipGradNorm(IEnumerable<Tensor> parameters, float maxNorm, double? totalNorm = null)
    {
        var grads = parameters.Where(p => p.Grad != null).Select(p => p.Grad!).ToList();
        double norm = totalNorm ?? TotalNorm(parameters);
        if (!double.IsFinite(norm)) return (float)norm;
        double scale = maxNorm / (norm + 1e-6);
        if (scale < 1)
        {
            using var _ = GradMode.NoGrad();
            foreach (var g in grads) g.MulInPlace((float)scale);
        }
        return (float)norm;
    }

    /// <summary>Σ x² in double: squares of gradients above ~1.8e19 overflow float even when the norm itself is
    /// representable.</summary>
    internal static double SumOfSquares(ReadOnlySpan<float> values)
    {
        var sum = Vector<double>.Zero;
        int i = 0;
        for (; i + Vector<float>.Count <= values.Length; i += Vector<float>.Count)
        {
            Vector.Widen(new Vector<float>(values[i..]), out var low, out var high);
            sum += low * low + high * high;
        }
        double total = Vector.Sum(sum);
        for (; i < values.Length; i++) total += (double)values[i] * values[i];
        return total;
    }
}
