using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

public static unsafe partial class F
{
    /// <summary>
    /// Batch normalisation of x (N, C, ...) per channel, then ·weight + bias (both (C) or null). In training the
    /// batch's mean and biased variance normalise, and the running statistics (if given) move towards the batch's
    /// by <paramref name="momentum"/>, with the unbiased variance, as in PyTorch. Otherwise the running statistics
    /// normalise.
    /// </summary>
    public static Tensor BatchNorm(Tensor x, Tensor? runningMean, Tensor? runningVar, Tensor? weight = null, Tensor? bias = null,
        bool training = false, float momentum = 0.1f, float eps = 1e-5f)
    {
        x.RequireFloat("BatchNorm");
        if (x.Rank < 2) throw new ArgumentException($"BatchNorm: input must be (batch, channels, ...), got {x.ShapeString}.");
        int N = x.Size(0), C = x.Size(1), spatial = N * C == 0 ? 0 : x.Count / (N * C);
        foreach (var (t, name) in new[] { (runningMean, "running_mean"), (runningVar, "running_var"), (weight, "weight"), (bias, "bias") })
            if (t != null && (t.Rank != 1 || t.Size(0) != C || !t.IsContiguous))
                throw new ArgumentException($"BatchNorm: {name} {t.ShapeString} must be a contiguous vector of the {C} channels of input {x.ShapeString}.");
        if (!training && (runningMean == null || runningVar == null))
            throw new ArgumentException("BatchNorm: evaluation mode needs running_mean and running_var.");
        long count = (long)N * spatial;
        if (training && count <= 1)
            throw new ArgumentException($"BatchNorm: training needs more than one value per channel, input {x.ShapeString} has {count}.");

        var xc = x.Contiguous();
        var backend = Backend.Current;
        var mean = Tensor.Empty([C]);
        var rstd = Tensor.Empty([C]);
        float* m = mean.Data, r = rstd.Data;
        if (training)
        {
            var variance = Tensor.Empty([C]);
            float* v = variance.Data;
            backend.BatchNormStatistics(xc.Data, m, v, N, C, spatial);
            for (int c = 0; c < C; c++) r[c] = 1f / MathF.Sqrt(v[c] + eps);
            if (runningMean != null && runningVar != null)
            {
                float* rm = runningMean.Data, rv = runningVar.Data;
                float unbiased = (float)count / (count - 1);
                for (int c = 0; c < C; c++)
                {
                    rm[c] = (1 - momentum) * rm[c] + momentum * m[c];
                    rv[c] = (1 - momentum) * rv[c] + momentum * v[c] * unbiased;
                }
            }
        }
        else
        {
            float* rm = runningMean!.Data, rv = runningVar!.Data;
            for (int c = 0; c < C; c++) { m[c] = rm[c]; r[c] = 1f / MathF.Sqrt(rv[c] + eps); }
        }
        GC.KeepAlive(runningMean); GC.KeepAlive(runningVar);

        var y = Tensor.Empty(x.Shape.ToArray());
        if (y.Count > 0)
            backend.BatchNorm(xc.Data, m, r, weight == null ? null : weight.Data, bias == null ? null : bias.Data, y.Data, N, C, spatial);
        GC.KeepAlive(xc); GC.KeepAlive(weight); GC.KeepAlive(bias);
        if (GradMode.Needed(x, weight, bias))
        {
            y.Record("BatchNorm", [x, weight, bias], dy =>
            {
                var dyc = dy.Contiguous();
                var dx = x.RequiresGrad ? Tensor.Empty(x.Shape.ToArray()) : null;
                // The kernel computes the per-channel sums dx needs anyway; dw and db cost nothing extra.
                var dw = Tensor.Empty([C]);
                var db = Tensor.Empty([C]);
                if (dyc.Count > 0)
                    Backend.Current.BatchNormBackward(dyc.Data, xc.Data, mean.Data, rstd.Data, weight == null ? null : weight.Data,
                        dx == null ? null : dx.Data, dw.Data, db.Data, N, C, spatial, training);
                else { dw.Zero(); db.Zero(); }
                GC.KeepAlive(dyc); GC.KeepAlive(xc); GC.KeepAlive(weight);
                return [dx, weight is { RequiresGrad: true } ? dw : null, bias is { RequiresGrad: true } ? db : null];
            }, saved: [mean, rstd, xc.IfCopyOf(x)]);
        }
        return y;
    }
}
