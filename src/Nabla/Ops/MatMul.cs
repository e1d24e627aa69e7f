using System.Numerics.Tensors;
using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

// Matrix products. The GEMM kernel reads transposed operands through their strides, so A.T, B.T and
// batched views reach it without a copy.
public sealed unsafe partial class Tensor
{
    /// <summary>Matrix product with NumPy/PyTorch semantics: 1-D operands are promoted to a row/column
    /// vector (and the added dimension removed again), leading dimensions broadcast as batch dimensions.</summary>
    public Tensor MatMul(Tensor other)
    {
        RequireFloat("MatMul");
        other.RequireFloat("MatMul");
        if (Rank == 0 || other.Rank == 0) throw new ArgumentException($"MatMul needs at least 1-D operands, got {ShapeString} and {other.ShapeString}.");
        var a = Rank == 1 ? Unsqueeze(0) : this;
        var b = other.Rank == 1 ? other.Unsqueeze(1) : other;
        var y = MatMulCore(a, b);
        if (Rank == 1) y = y.Squeeze(-2);
        if (other.Rank == 1) y = y.Squeeze(-1);
        return y;
    }

    public Tensor MatMul(Tensor other, bool transposeOther) => transposeOther ? MatMul(other.T) : MatMul(other);

    /// <summary>(..., m, k) @ (..., k, n) with broadcast batch dimensions.</summary>
    private static Tensor MatMulCore(Tensor a, Tensor b)
    {
        int m = a._shape[^2], k = a._shape[^1], k2 = b._shape[^2], n = b._shape[^1];
        if (k != k2)
            throw new ArgumentException($"MatMul: shapes {a.ShapeString} and {b.ShapeString} cannot be multiplied ({m}x{k} and {k2}x{n}).");
        var batchShape = BroadcastShape(a._shape.AsSpan(0, a.Rank - 2), b._shape.AsSpan(0, b.Rank - 2), "MatMul (batch dimensions)");
        var outShape = batchShape.Append(m).Append(n).ToArray();
        var kernels = KernelsFor("MatMul", a, b);
        var y = Empty(outShape, DType.Float32, a.Device);
        if (y.Count > 0)
        {
            if (k == 0) kernels.Fill(y.Data, 0f, y.Count);
            else Gemm(kernels, a, b, batchShape, m, n, k, y.Data, bias: null, accumulate: false);
        }
        if (GradMode.Needed(a, b))
        {
            y.Record("MatMul", [a, b], g => [
                a.RequiresGrad ? MatMulCore(g, b.Transpose(-2, -1)).SumTo(a._shape) : null,
                b.RequiresGrad ? MatMulCore(a.Transpose(-2, -1), g).SumTo(b._shape) : null]);
        }
        return y;
    }

    /// <summary>C (contiguous, batch × m × n) = A @ B over broadcast batch dimensions, one kernel call when the
    /// batch dimensions of both operands collapse to a single stride, else one call per batch entry.</summary>
    private static void Gemm(IKernelBackend backend, Tensor a, Tensor b, int[] batchShape, int m, int n, int k, float* c, float* bias, bool accumulate)
    {
        var aOp = GemmOperand.Of(a);
        var bOp = GemmOperand.Of(b);
        var aBatch = aOp.Tensor.BroadcastStrides(batchShape.Append(m).Append(k).ToArray()).AsSpan(0, batchShape.Length).ToArray();
        var bBatch = bOp.Tensor.BroadcastStrides(batchShape.Append(k).Append(n).ToArray()).AsSpan(0, batchShape.Length).ToArray();
        long batch = ShapeMath.Count(batchShape);
        if (CollapseBatch(batchShape, aBatch, out long sa) && CollapseBatch(batchShape, bBatch, out long sb))
        {
            backend.Gemm(aOp.Trans, bOp.Trans, m, n, k, aOp.Tensor.Data, aOp.Ld, sa, bOp.Tensor.Data, bOp.Ld, sb,
                c, n, (long)m * n, (int)batch, accumulate, bias);
        }
        else
        {
            Span<int> index = stackalloc int[batchShape.Length];
            for (long p = 0; p < batch; p++)
            {
                ShapeMath.Unravel(p, batchShape, index);
                backend.Gemm(aOp.Trans, bOp.Trans, m, n, k,
                    aOp.Tensor.Data + ShapeMath.Offset(index, aBatch), aOp.Ld, 0,
                    bOp.Tensor.Data + ShapeMath.Offset(index, bBatch), bOp.Ld, 0,
                    c + p * m * n, n, 0, 1, accumulate, bias);
            }
        }
        GC.KeepAlive(aOp.Tensor);
        GC.KeepAlive(bOp.Tensor);
    }

    /// <summary>Whether batch entry p sits at p·stride for one stride (true for contiguous or fully broadcast batches).</summary>
    private static bool CollapseBatch(int[] shape, int[] strides, out long stride)
    {
        stride = 0;
        long expected = -1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            if (shape[d] == 1) continue;
            if (expected < 0) { stride = strides[d]; expected = (long)strides[d] * shape[d]; continue; }
            if (strides[d] != expected) return false;
            expected *= shape[d];
        }
        return true;
    }

    /// <summary>How the GEMM kernel reads the last two dimensions of a tensor: directly (row stride Ld),
    /// transposed (column stride Ld), or, for other strides, from a contiguous copy.</summary>
    private readonly record struct GemmOperand(Tensor Tensor, bool Trans, int Ld)
    {
        public static GemmOperand Of(Tensor t)
        {
            int rows = t._shape[^2], cols = t._shape[^1], sr = t._strides[^2], sc = t._strides[^1];
            if ((cols == 1 || sc == 1) && (rows == 1 || sr >= cols)) return new(t, false, rows == 1 ? Math.Max(cols, 1) : sr);
            if ((rows == 1 || sr == 1) && (cols == 1 || sc >= rows)) return new(t, true, cols == 1 ? Math.Max(rows, 1) : sc);
            using var _ = GradMode.NoGrad();
            var copy = t.Contiguous();
            return new(copy, false, Math.Max(cols, 1));
        }
    }

    /// <summary>y = x @ Wᵀ + b, the dense layer, as one GEMM with the bias added in its epilogue.
    /// x: (..., in), weight: (out, in), bias: (out) or null.</summary>
    internal static Tensor Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        x.RequireFloat("Linear");
        if (weight.Rank != 2) throw new ArgumentException($"Linear: weight must be 2-D (out, in), got {weight.ShapeString}.");
        int outF = weight._shape[0], inF = weight._shape[1];
        if (x.Rank == 0 || x._shape[^1] != inF)
            throw new ArgumentException($"Linear: input {x.ShapeString} does not end in the layer's {inF} input features (weight {weight.ShapeString}).");
        if (bias != null && (bias.Rank != 1 || bias._shape[0] != outF))
            throw new ArgumentException($"Linear: bias {bias.ShapeString} does not match the {outF} output features.");
        Tensor x2, y;
        using (GradMode.NoGrad())
        {
            x2 = x.Reshape(-1, inF);
            int rows = x2._shape[0];
            var kernels = KernelsFor("Linear", x, weight, bias);
            y = Empty(x._shape[..^1].Append(outF).ToArray(), DType.Float32, x.Device);
            if (y.Count > 0)
            {
                var b = bias?.Contiguous();
                if (inF == 0)
                {
                    if (b != null) y.CopyFromUnchecked(b, accumulate: false); else y.Zero();
                }
                else Gemm(kernels, x2, weight.T, [], rows, outF, inF, y.Data, b == null ? null : b.Data, accumulate: false);
                GC.KeepAlive(b);
                GC.KeepAlive(x2);
            }
        }
        if (GradMode.Needed(x, weight, bias))
        {
            y.Record("Linear", [x, weight, bias], g =>
            {
                var g2 = g.Reshape(-1, outF);
                return [
                    x.RequiresGrad ? MatMulCore(g2, weight).Reshape(x._shape) : null,
                    weight.RequiresGrad ? MatMulCore(g2.T, x2) : null,
                    bias is { RequiresGrad: true } ? g2.Sum(0) : null];
            }, saved: [x2.IfCopyOf(x)]);
        }
        return y;
    }

    /// <summary>
    /// LoRA's low-rank update added to a base layer's output: baseOutput + s·(x·Aᵀ)·Bᵀ, with x: (..., in), A: (r, in),
    /// B: (out, r). The sum is written into <paramref name="baseOutput"/>'s memory, so an adapted layer holds one
    /// (..., out) activation, as the plain layer does, instead of three (the base output, the adapter's, their sum):
    /// in a step whose activations dominate, that is what keeps LoRA's peak memory below full fine-tuning's. Saved for
    /// the backward: x (the caller's activation) and h = s·x·Aᵀ, (N, r).
    /// <para>The caller owns <paramref name="baseOutput"/>: a contiguous output just made by a layer whose backward
    /// does not read its own output (<see cref="NN.Linear"/>, a quantised linear layer), and read by nothing else
    /// afterwards, since its values change.</para>
    /// </summary>
    internal static Tensor AddLowRank(Tensor baseOutput, Tensor x, Tensor a, Tensor b, float scaling)
    {
        x.RequireFloat("LoRA");
        if (a.Rank != 2 || b.Rank != 2 || b._shape[1] != a._shape[0])
            throw new ArgumentException($"LoRA: A {a.ShapeString} and B {b.ShapeString} are not (r, in) and (out, r).");
        int r = a._shape[0], inF = a._shape[1], outF = b._shape[0];
        if (x.Rank == 0 || x._shape[^1] != inF || baseOutput._shape[^1] != outF || baseOutput.Count / Math.Max(outF, 1) != x.Count / Math.Max(inF, 1))
            throw new ArgumentException($"LoRA: input {x.ShapeString} and base output {baseOutput.ShapeString} do not match A {a.ShapeString} and B {b.ShapeString}.");
        if (!baseOutput.IsContiguous) throw new ArgumentException("LoRA: the base layer's output must be contiguous (it is written in place).");
        Tensor x2, h;
        using (GradMode.NoGrad())
        {
            var kernels = KernelsFor("LoRA", baseOutput, x, a, b);
            x2 = x.Reshape(-1, inF);
            int rows = x2._shape[0];
            h = MatMulCore(x2, a.T).MulInPlace(scaling);                                   // (N, r)
            if (baseOutput.Count > 0 && r > 0)
                Gemm(kernels, h, b.T, [], rows, outF, r, baseOutput.Data, bias: null, accumulate: true);
            GC.KeepAlive(baseOutput);
        }
        if (!GradMode.Needed([baseOutput, x, a, b])) return baseOutput;
        var y = baseOutput.MakeView([.. baseOutput._shape], [.. baseOutput._strides], baseOutput.Offset); // baseOutput keeps its own grad node
        return y.Record("LoRA", [baseOutput, x, a, b], g =>
        {
            var g2 = g.Reshape(-1, outF);
            var gradH = MatMulCore(g2, b);                                                   // (N, r)
            var gradB = b.RequiresGrad ? MatMulCore(g2.T, h) : null;                         // (out, r)
            gradH.MulInPlace(scaling);                                                       // now ∂L/∂(x·Aᵀ)
            return [
                baseOutput.RequiresGrad ? g : null,
                x.RequiresGrad ? MatMulCore(gradH, a).Reshape(x._shape) : null,
                a.RequiresGrad ? MatMulCore(gradH.T, x2) : null,
                gradB];
        }, saved: [h, x2.IfCopyOf(x)]);
    }

    /// <summary>
    /// DoRA's output: z ⊙ scale + bias over the last dimension, z: (..., out), scale and bias: (out). One op, so a DoRA
    /// layer keeps two (..., out) activations (z, which the backward reads for the scale's gradient, and the output)
    /// instead of three for a product and a sum.
    /// </summary>
    internal static Tensor ScaleColumnsAddBias(Tensor z, Tensor scale, Tensor? bias)
    {
        int outF = z._shape[^1];
        if (scale.Rank != 1 || scale._shape[0] != outF || bias is { } b0 && (b0.Rank != 1 || b0._shape[0] != outF))
            throw new ArgumentException($"DoRA: scale {scale.ShapeString} and bias {bias?.ShapeString ?? "none"} do not match the output {z.ShapeString}.");
        Tensor y;
        using (GradMode.NoGrad())
        {
            y = z.Mul(scale);
            if (bias != null) y.AddInPlaceUnchecked(bias);
        }
        if (!GradMode.Needed(z, scale, bias)) return y;
        return y.Record("DoRA scale", [z, scale, bias], g =>
        {
            var rows = g.Reshape(-1, outF);
            return [
                z.RequiresGrad ? g.Mul(scale) : null,
                scale.RequiresGrad ? ColumnDots(rows, z.Reshape(-1, outF)) : null,
                bias is { RequiresGrad: true } ? rows.Sum(0) : null];
        });
    }

    /// <summary>Σ_n a[n, o]·b[n, o] for each column o of two (N, out) matrices, without an (N, out) product (on the CPU).</summary>
    private static Tensor ColumnDots(Tensor a, Tensor b)
    {
        if (!a.Device.IsCpu) return a.Mul(b).Sum(0);
        int outF = a._shape[1];
        var sums = new float[outF];
        ReadOnlySpan<float> x = a.Contiguous().AsSpan(), y = b.Contiguous().AsSpan();
        for (int row = 0; row < a._shape[0]; row++)
            TensorPrimitives.MultiplyAdd(x.Slice(row * outF, outF), y.Slice(row * outF, outF), sums, sums);
        return FromArray(sums);
    }
}
