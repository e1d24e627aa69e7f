using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

public sealed unsafe partial class Tensor
{
    /// <summary>exp(x) / Σ exp(x) along <paramref name="dim"/>.</summary>
    public Tensor Softmax(int dim = -1) => SoftmaxAlong(dim, log: false);

    /// <summary>x - log Σ exp(x) along <paramref name="dim"/> (computed stably, never as log(softmax)).</summary>
    public Tensor LogSoftmax(int dim = -1) => SoftmaxAlong(dim, log: true);

    private Tensor SoftmaxAlong(int dim, bool log)
    {
        RequireFloat(log ? "LogSoftmax" : "Softmax");
        if (Rank == 0) return Reshape(1).SoftmaxAlong(0, log).Reshape();
        int d = NormalizeDim(dim);
        if (d != Rank - 1) return Transpose(d, -1).SoftmaxAlong(-1, log).Transpose(d, -1);
        var x = Contiguous();
        int cols = _shape[^1], rows = cols == 0 ? 0 : Count / cols;
        var y = Empty(_shape.ToArray(), DType.Float32, Device);
        if (y.Count > 0) KernelsFor(log ? "LogSoftmax" : "Softmax", x).Softmax(x.Data, y.Data, rows, cols, log);
        GC.KeepAlive(x);
        if (GradMode.Needed(this))
        {
            y.Record(log ? "LogSoftmax" : "Softmax", [this], g =>
            {
                var gc = g.Contiguous();
                var dx = Empty(y._shape.ToArray(), DType.Float32, y.Device);
                if (dx.Count > 0) KernelsFor(log ? "LogSoftmax backward" : "Softmax backward", y, gc).SoftmaxBackward(y.Data, gc.Data, dx.Data, rows, cols, log);
                GC.KeepAlive(gc);
                return [dx];
            });
        }
        return y;
    }
}
