using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

// Reductions over dimensions. The kernels see the data as (outer, r, inner): reduced dimensions that are
// already a contiguous block are reduced in place; any other set is first permuted to the end.
public sealed unsafe partial class Tensor
{
    /// <summary>Sum of all elements (a 0-d tensor).</summary>
    public Tensor Sum() => Sum(Enumerable.Range(0, Rank).ToArray());

    public Tensor Sum(int dim, bool keepDim = false) => Sum([dim], keepDim);

    public Tensor Sum(int[] dims, bool keepDim = false)
    {
        RequireFloat("Sum");
        var reduce = NormalizeDims(dims);
        var (source, outer, r, inner) = ReductionLayout(reduce);
        var keptShape = KeepDimShape(reduce);
        var y = Empty(keepDim ? keptShape : DropDims(reduce), DType.Float32, Device);
        if (y.Count > 0) KernelsFor("Sum", source).Sum(source.Data, y.Data, outer, r, inner);
        GC.KeepAlive(source);
        if (GradMode.Needed(this))
        {
            var inShape = _shape;
            y.Record("Sum", [this], g => [g.Reshape(keptShape).Expand(inShape)]);
        }
        return y;
    }

    /// <summary>Mean of all elements.</summary>
    public Tensor Mean() => Mean(Enumerable.Range(0, Rank).ToArray());

    public Tensor Mean(int dim, bool keepDim = false) => Mean([dim], keepDim);

    public Tensor Mean(int[] dims, bool keepDim = false)
    {
        var reduce = NormalizeDims(dims);
        long n = 1;
        foreach (var d in reduce) n *= _shape[d];
        return Sum(reduce, keepDim).Mul(1f / n);
    }

    /// <summary>Variance over <paramref name="dims"/> (unbiased by default, like PyTorch).</summary>
    public Tensor Var(int[] dims, bool keepDim = false, bool unbiased = true)
    {
        var reduce = NormalizeDims(dims);
        long n = 1;
        foreach (var d in reduce) n *= _shape[d];
        var centered = Sub(Mean(reduce, keepDim: true));
        // As in PyTorch, n - 1 = 0 (one element, unbiased) divides by zero and gives NaN rather than a made-up 0.
        return centered.Square().Sum(reduce, keepDim).Mul(1f / (unbiased ? n - 1 : n));
    }

    /// <summary>Largest value along <paramref name="dim"/> and where it is (first occurrence; NaN wins).</summary>
    public (Tensor Values, Tensor Indices) Max(int dim, bool keepDim = false)
    {
        RequireFloat("Max");
        int d = NormalizeDim(dim);
        if (Rank == 0)
        {
            var (v, i) = Reshape(1).Max(0);
            return (v.Reshape(), i.Reshape());
        }
        if (Rank > 0 && _shape[d] == 0) throw new ArgumentException($"Max over dimension {d} of size 0 (shape {ShapeString}).");
        var (source, outer, r, inner) = ReductionLayout([d]);
        var keptShape = KeepDimShape([d]);
        var outShape = keepDim ? keptShape : DropDims([d]);
        var values = Empty(outShape, DType.Float32, Device);
        var indices = Empty(outShape.ToArray(), DType.Int32, Device);
        if (values.Count > 0) KernelsFor("Max", source).Max(source.Data, values.Data, indices.IntData, outer, r, inner);
        GC.KeepAlive(source);
        if (GradMode.Needed(this))
        {
            var inShape = _shape;
            values.Record("Max", [this], g =>
            {
                // Route each output's gradient to the position that won (a loop on the host: no kernel for it yet).
                var gc = g.Contiguous();
                gc.RequireHost("The backward of Max(dim)");
                var dx = Zeros(inShape.ToArray());
                float* pdx = dx.Data, pg = gc.Data;
                int* pi = indices.IntData;
                for (int o = 0; o < outer; o++)
                    for (int i = 0; i < inner; i++)
                        pdx[((long)o * r + pi[o * inner + i]) * inner + i] += pg[o * inner + i];
                GC.KeepAlive(gc);
                return [dx];
            });
        }
        return (values, indices);
    }

    /// <summary>Smallest value along <paramref name="dim"/> and where it is.</summary>
    public (Tensor Values, Tensor Indices) Min(int dim, bool keepDim = false)
    {
        var (values, indices) = Neg().Max(dim, keepDim);
        return (values.Neg(), indices);
    }

    /// <summary>Largest element. As in PyTorch, the gradient is shared evenly by every element equal to it.</summary>
    public Tensor Max() => ExtremeOfAll(max: true);

    /// <summary>Smallest element. As in PyTorch, the gradient is shared evenly by every element equal to it.</summary>
    public Tensor Min() => ExtremeOfAll(max: false);

    private Tensor ExtremeOfAll(bool max)
    {
        RequireFloat(max ? "Max" : "Min");
        if (Count == 0) throw new ArgumentException($"{(max ? "Max" : "Min")}() of an empty tensor (shape {ShapeString}).");
        Tensor y;
        using (GradMode.NoGrad())
            y = max ? Reshape(-1).Max(0).Values : Reshape(-1).Neg().Max(0).Values.Neg();
        if (GradMode.Needed(this))
        {
            var x = this;
            y.Record(max ? "Max" : "Min", [x], g =>
            {
                // Ties split the gradient (PyTorch's evenly_distribute_backward); a NaN result is matched by NaNs.
                var mask = float.IsNaN(y.Item())
                    ? Scalar(1f, x.Device).Sub(Binary(BinaryOp.Equal, x, x))
                    : Binary(BinaryOp.Equal, x, y);
                return [mask.Mul(g.Div(mask.Sum()))];
            });
        }
        return y;
    }

    /// <summary>Index of the largest value along <paramref name="dim"/> (Int32).</summary>
    public Tensor ArgMax(int dim, bool keepDim = false)
    {
        using var _ = GradMode.NoGrad();
        return Max(dim, keepDim).Indices;
    }

    /// <summary>Index of the largest element of the flattened tensor.</summary>
    public int ArgMax() => Reshape(-1).ArgMax(0).ToIntArray()[0];

    private int[] NormalizeDims(int[] dims)
    {
        var set = new SortedSet<int>();
        foreach (var dim in dims)
            if (!set.Add(NormalizeDim(dim))) throw new ArgumentException($"Dimension {dim} appears twice in the reduction.");
        // A 0-d tensor accepts dimension 0 (or -1), as in PyTorch, but has no dimension to reduce.
        return Rank == 0 ? [] : set.ToArray();
    }

    private int[] KeepDimShape(int[] reduce)
    {
        var s = _shape.ToArray();
        foreach (var d in reduce) s[d] = 1;
        return s;
    }

    private int[] DropDims(int[] reduce) => _shape.Where((_, i) => Array.IndexOf(reduce, i) < 0).ToArray();

    /// <summary>A contiguous tensor and (outer, r, inner) such that reducing the middle index reduces <paramref name="reduce"/>.</summary>
    private (Tensor Source, int Outer, int R, int Inner) ReductionLayout(int[] reduce)
    {
        bool block = reduce.Length == 0 || reduce[^1] - reduce[0] == reduce.Length - 1;
        if (block && IsContiguous)
        {
            int first = reduce.Length == 0 ? Rank : reduce[0], last = reduce.Length == 0 ? Rank - 1 : reduce[^1];
            long outer = 1, r = 1, inner = 1;
            for (int d = 0; d < first; d++) outer *= _shape[d];
            for (int d = first; d <= last; d++) r *= _shape[d];
            for (int d = last + 1; d < Rank; d++) inner *= _shape[d];
            return (this, (int)outer, (int)r, (int)inner);
        }
        using var _ = GradMode.NoGrad();
        var order = Enumerable.Range(0, Rank).Where(d => Array.IndexOf(reduce, d) < 0).Concat(reduce).ToArray();
        var moved = Permute(order).Contiguous();
        long rr = 1, kept = 1;
        for (int d = 0; d < Rank; d++)
            if (Array.IndexOf(reduce, d) >= 0) rr *= _shape[d]; else kept *= _shape[d];
        return (moved, (int)kept, (int)rr, 1);
    }
}
