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
    /// <para>
    /// <paramref name="residual"/> (x's shape) is added to the result and <paramref name="relu"/> applies max(·, 0)
    /// after it: relu(bn(x) + residual), the end of a ResNet block, in one pass over the data (forward and
    /// backward) instead of three, with no intermediate tensor kept for the backward.
    /// </para>
    /// </summary>
    public static Tensor BatchNorm(Tensor x, Tensor? runningMean, Tensor? runningVar, Tensor? weight = null, Tensor? bias = null,
        bool training = false, float momentum = 0.1f, float eps = 1e-5f, Tensor? residual = null, bool relu = false)
    {
        x.RequireFloat("BatchNorm");
        if (x.Rank < 2) throw new ArgumentException($"BatchNorm: input must be (batch, channels, ...), got {x.ShapeString}.");
        int N = x.Size(0), C = x.Size(1), spatial = N * C == 0 ? 0 : x.Count / (N * C);
        foreach (var (t, name) in new[] { (runningMean, "running_mean"), (runningVar, "running_var"), (weight, "weight"), (bias, "bias") })
            if (t != null && (t.Rank != 1 || t.Size(0) != C || !t.IsContiguous))
                throw new ArgumentException($"BatchNorm: {name} {t.ShapeString} must be a contiguous vector of the {C} channels of input {x.ShapeString}.");
        if (!training && (runningMean == null || runningVar == null))
            throw new ArgumentException("BatchNorm: evaluation mode needs running_mean and running_var.");
        if (residual != null && !residual.Shape.SequenceEqual(x.Shape))
            throw new ArgumentException($"BatchNorm: the residual {residual.ShapeString} must have the input's shape {x.ShapeString}.");
        long count = (long)N * spatial;
        if (training && count <= 1)
            throw new ArgumentException($"BatchNorm: training needs more than one value per channel, input {x.ShapeString} has {count}.");

        var xc = x.Contiguous();
        var rc = residual?.Contiguous();
        var backend = Tensor.KernelsFor("BatchNorm", xc, weight, bias, runningMean, runningVar);
        if (rc != null) Tensor.KernelsFor("BatchNorm", xc, rc);
        Tensor mean, rstd;
        using (GradMode.NoGrad())
        {
            // The per-channel arithmetic around the kernels is made of ops, so it runs wherever x lives.
            if (training)
            {
                mean = Tensor.Empty([C], DType.Float32, x.Device);
                var variance = Tensor.Empty([C], DType.Float32, x.Device);
                backend.BatchNormStatistics(xc.Data, mean.Data, variance.Data, N, C, spatial);
                rstd = ReciprocalSqrt(variance, eps);
                if (runningMean != null && runningVar != null)
                {
                    float unbiased = (float)count / (count - 1);
                    runningMean.CopyFrom(runningMean.Mul(1 - momentum).Add(mean.Mul(momentum)));
                    runningVar.CopyFrom(runningVar.Mul(1 - momentum).Add(variance.Mul(momentum).Mul(unbiased)));
                }
            }
            else
            {
                mean = runningMean!.Clone(); // saved for the backward, which releases it: not the buffer itself
                rstd = ReciprocalSqrt(runningVar!, eps);
            }
        }
        float* m = mean.Data, r = rstd.Data;

        var y = Tensor.Empty(x.Shape.ToArray(), DType.Float32, x.Device);
        if (y.Count > 0)
            backend.BatchNorm(xc.Data, m, r, weight == null ? null : weight.Data, bias == null ? null : bias.Data, rc == null ? null : rc.Data, relu,
                y.Data, N, C, spatial);
        GC.KeepAlive(xc); GC.KeepAlive(rc); GC.KeepAlive(weight); GC.KeepAlive(bias); GC.KeepAlive(mean); GC.KeepAlive(rstd);
        if (GradMode.Needed(x, weight, bias) || (residual != null && GradMode.Needed(residual)))
        {
            // The ReLU's mask is y > 0: y itself is kept (the next layer holds it anyway), no mask tensor.
            var reluOutput = relu ? y : null;
            y.Record("BatchNorm", [x, weight, bias, residual], dy =>
            {
                var dyc = dy.Contiguous();
                var dx = x.RequiresGrad ? Tensor.Empty(x.Shape.ToArray(), DType.Float32, x.Device) : null;
                var dr = residual is { RequiresGrad: true } ? Tensor.Empty(x.Shape.ToArray(), DType.Float32, x.Device) : null;
                // The kernel computes the per-channel sums dx needs anyway; dw and db cost nothing extra.
                var dw = Tensor.Empty([C], DType.Float32, x.Device);
                var db = Tensor.Empty([C], DType.Float32, x.Device);
                if (dyc.Count > 0)
                    Tensor.KernelsFor("BatchNorm backward", xc, dyc, weight).BatchNormBackward(dyc.Data, xc.Data, mean.Data, rstd.Data,
                        weight == null ? null : weight.Data, reluOutput == null ? null : reluOutput.Data, dx == null ? null : dx.Data,
                        dr == null ? null : dr.Data, dw.Data, db.Data, N, C, spatial, training);
                else { dw.Zero(); db.Zero(); }
                GC.KeepAlive(dyc); GC.KeepAlive(xc); GC.KeepAlive(weight); GC.KeepAlive(reluOutput);
                return [dx, weight is { RequiresGrad: true } ? dw : null, bias is { RequiresGrad: true } ? db : null, dr];
            }, saved: [mean, rstd, xc.IfCopyOf(x)]);
        }
        return y;
    }

    /// <summary>1/sqrt(variance + eps) per channel.</summary>
    private static Tensor ReciprocalSqrt(Tensor variance, float eps) => Tensor.Scalar(1f, variance.Device).Div(variance.Add(eps).Sqrt());
}
