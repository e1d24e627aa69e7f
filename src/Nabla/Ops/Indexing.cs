using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

// Joining, picking and selecting elements.
public sealed unsafe partial class Tensor
{
    /// <summary>Joins tensors along an existing dimension; all other sizes must agree.</summary>
    public static Tensor Concat(IReadOnlyList<Tensor> tensors, int dim = 0)
    {
        if (tensors.Count == 0) throw new ArgumentException("Concat needs at least one tensor.");
        var first = tensors[0];
        int d = first.NormalizeDim(dim);
        var shape = first._shape.ToArray();
        shape[d] = 0;
        foreach (var t in tensors)
        {
            if (t.Rank != first.Rank || t.DType != first.DType)
                throw new ArgumentException($"Concat: tensor {t.ShapeString} ({t.DType}) does not match {first.ShapeString} ({first.DType}).");
            for (int i = 0; i < t.Rank; i++)
                if (i != d && t._shape[i] != first._shape[i])
                    throw new ArgumentException($"Concat along dimension {d}: sizes differ in dimension {i} ({first.ShapeString} vs {t.ShapeString}).");
            shape[d] += t._shape[d];
        }
        var y = Empty(shape, first.DType, first.Device);
        int offset = 0;
        using (GradMode.NoGrad())
        {
            foreach (var t in tensors)
            {
                if (t.Count > 0) y.Narrow(d, offset, t._shape[d]).CopyFromUnchecked(t, accumulate: false);
                offset += t._shape[d];
            }
        }
        if (GradMode.Needed(tensors))
        {
            var sizes = tensors.Select(t => t._shape[d]).ToArray();
            y.Record("Concat", tensors.ToArray(), g =>
            {
                var grads = new Tensor?[sizes.Length];
                int o = 0;
                for (int i = 0; i < sizes.Length; i++) { grads[i] = g.Narrow(d, o, sizes[i]); o += sizes[i]; }
                return grads;
            });
        }
        return y;
    }

    /// <summary>Joins tensors of one shape along a new dimension.</summary>
    public static Tensor Stack(IReadOnlyList<Tensor> tensors, int dim = 0)
    {
        if (tensors.Count == 0) throw new ArgumentException("Stack needs at least one tensor.");
        int d = tensors[0].NormalizeDim(dim, tensors[0].Rank + 1);
        foreach (var t in tensors)
            if (!t.Shape.SequenceEqual(tensors[0].Shape))
                throw new ArgumentException($"Stack: all tensors must have one shape ({tensors[0].ShapeString} vs {t.ShapeString}).");
        return Concat(tensors.Select(t => t.Unsqueeze(d)).ToArray(), d);
    }

    /// <summary>out[i][j][k] = this[index[i][j][k]][j][k] for dim 0 (and likewise for other dims), like
    /// <c>torch.gather</c>. index is Int32 with this tensor's rank.</summary>
    public Tensor Gather(int dim, Tensor index)
    {
        RequireFloat("Gather");
        if (index.DType != DType.Int32) throw new ArgumentException($"Gather: index must be Int32, got {index.DType}.");
        int d = NormalizeDim(dim);
        if (index.Rank != Rank) throw new ArgumentException($"Gather: index {index.ShapeString} must have the rank of the input {ShapeString}.");
        for (int i = 0; i < Rank; i++)
            if (i != d && index._shape[i] > _shape[i])
                throw new ArgumentException($"Gather: index {index.ShapeString} is larger than the input {ShapeString} in dimension {i}.");
        RequireHost("Gather"); // a loop on the host: no kernel for it yet
        var idx = index.Contiguous();
        var y = Empty(index._shape.ToArray());
        var offsets = GatherOffsets(idx, d, "Gather");
        float* src = Data, dst = y.Data;
        for (int i = 0; i < y.Count; i++) dst[i] = src[offsets[i]];
        GC.KeepAlive(this);
        if (GradMode.Needed(this))
        {
            var inShape = _shape;
            var inStrides = ShapeMath.ContiguousStrides(_shape);
            var gatherOffsets = GatherOffsets(idx, d, "Gather", inStrides);
            y.Record("Gather", [this], g =>
            {
                var dx = Zeros(inShape.ToArray());
                var gc = g.Contiguous();
                float* pg = gc.Data, pdx = dx.Data;
                for (int i = 0; i < gatherOffsets.Length; i++) pdx[gatherOffsets[i]] += pg[i];
                GC.KeepAlive(gc);
                return [dx];
            });
        }
        return y;
    }

    /// <summary>Element offsets (in this tensor's strides, or <paramref name="strides"/>) that a gather along
    /// <paramref name="d"/> reads, one per index element, with bounds checked.</summary>
    private long[] GatherOffsets(Tensor idx, int d, string op, int[]? strides = null)
    {
        strides ??= _strides;
        var offsets = new long[idx.Count];
        Span<int> pos = stackalloc int[Rank];
        int* ip = idx.IntData;
        for (int i = 0; i < idx.Count; i++)
        {
            ShapeMath.Unravel(i, idx._shape, pos);
            int v = ip[i];
            if (v < 0) v += _shape[d];
            if ((uint)v >= (uint)_shape[d])
                throw new IndexOutOfRangeException($"{op}: index {ip[i]} is out of bounds for dimension {d} with size {_shape[d]}.");
            pos[d] = v;
            offsets[i] = ShapeMath.Offset(pos, strides);
        }
        return offsets;
    }

    /// <summary>The entries <paramref name="index"/> (1-D Int32) of dimension <paramref name="dim"/>.</summary>
    public Tensor IndexSelect(int dim, Tensor index)
    {
        if (index.Rank != 1) throw new ArgumentException($"IndexSelect: index must be 1-D, got {index.ShapeString}.");
        int d = NormalizeDim(dim);
        // Move the dimension to the front, pick rows with the embedding kernel, move it back.
        var moved = Transpose(0, d);
        var rows = moved.Reshape(_shape[d], -1);
        var picked = F.Embedding(index, rows);
        var shape = moved._shape.ToArray();
        shape[0] = index.Count;
        return picked.Reshape(shape).Transpose(0, d);
    }

    /// <summary>A copy of this (rows, cols) tensor whose rows <paramref name="index"/> (1-D Int32, no repeats) are the
    /// rows of <paramref name="source"/> (index.Count, cols): torch's index_copy along dimension 0. The gradient
    /// reaches source through those rows and this tensor through the others.</summary>
    public Tensor IndexCopy(Tensor index, Tensor source)
    {
        RequireFloat("IndexCopy");
        source.RequireFloat("IndexCopy");
        RequireHost("IndexCopy"); // a row copy on the host: no kernel for it yet
        source.RequireHost("IndexCopy");
        if (Rank != 2 || index.Rank != 1 || index.DType != DType.Int32 || source.Rank != 2 || source._shape[0] != index.Count || source._shape[1] != _shape[1])
            throw new ArgumentException($"IndexCopy: expected a 2-D tensor, a 1-D Int32 index of n rows and a source (n, {(Rank == 2 ? _shape[1] : "cols")}); got {ShapeString}, {index.DType} {index.ShapeString} and {source.ShapeString}.");
        var rows = index.ToIntArray();
        if (rows.Any(r => (uint)r >= (uint)_shape[0]))
            throw new IndexOutOfRangeException($"IndexCopy: index {rows.First(r => (uint)r >= (uint)_shape[0])} is out of bounds for {_shape[0]} rows.");
        if (rows.Distinct().Count() != rows.Length) throw new ArgumentException("IndexCopy: the index repeats a row, so which source row lands there would be arbitrary.");
        Tensor y;
        using (GradMode.NoGrad())
        {
            y = Clone();
            var src = source.Contiguous();
            int cols = _shape[1];
            for (int i = 0; i < rows.Length; i++)
                Buffer.MemoryCopy(src.Data + (long)i * cols, y.Data + (long)rows[i] * cols, cols * sizeof(float), cols * sizeof(float));
            GC.KeepAlive(src);
        }
        if (GradMode.Needed(this, source))
        {
            y.Record("IndexCopy", [this, source], g =>
            {
                Tensor? gradSelf = null;
                if (RequiresGrad)
                    using (GradMode.NoGrad()) gradSelf = g.IndexCopy(index, Zeros(rows.Length, _shape[1]));
                return [gradSelf, source.RequiresGrad ? g.IndexSelect(0, index) : null];
            });
        }
        return y;
    }

    /// <summary>Element-wise choice: a where condition ≠ 0, else b (all three broadcast).</summary>
    public static Tensor Where(Tensor condition, Tensor a, Tensor b)
    {
        a.RequireFloat("Where");
        b.RequireFloat("Where");
        var shape = BroadcastShape(BroadcastShape(condition._shape, a._shape, "Where"), b._shape, "Where");
        Tensor c, av, bv;
        using (GradMode.NoGrad())
        {
            c = (condition.DType == DType.Int32 ? condition.To(DType.Float32) : condition).Expand(shape).Contiguous();
            av = a.Expand(shape).Contiguous();
            bv = b.Expand(shape).Contiguous();
        }
        var y = Select(c, av, bv);
        if (GradMode.Needed(a, b))
        {
            y.Record("Where", [a, b], g =>
            {
                var gc = g.Contiguous();
                var zero = Zeros(shape);
                return [
                    a.RequiresGrad ? Select(c, gc, zero).SumTo(a._shape) : null,
                    b.RequiresGrad ? Select(c, zero, gc).SumTo(b._shape) : null];
            });
        }
        return y;
    }

    private static Tensor Select(Tensor c, Tensor a, Tensor b)
    {
        KernelsFor("Where", c, a, b);
        c.RequireHost("Where"); // a loop on the host: no kernel for it yet
        var y = Empty(c._shape.ToArray());
        float* pc = c.Data, pa = a.Data, pb = b.Data, py = y.Data;
        for (int i = 0; i < y.Count; i++) py[i] = pc[i] != 0 ? pa[i] : pb[i];
        GC.KeepAlive(c); GC.KeepAlive(a); GC.KeepAlive(b);
        return y;
    }
}
