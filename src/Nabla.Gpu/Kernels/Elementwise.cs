using ILGPU;
using Nabla.Kernels;

namespace Nabla.Gpu.Kernels;

/// <summary>
/// Up to <see cref="MaxRank"/> dimensions of a strided loop with two operands (A, B): the shape and both operands'
/// strides, right-aligned (leading unused dimensions have size 1), after merging dimensions that are contiguous in
/// both operands and dropping size-1 ones (<see cref="Create"/>), so most copies and broadcasts end up 1- or 2-D.
/// Fields rather than arrays: a kernel argument must be a plain value.
/// </summary>
internal struct StridedLayout
{
    public const int MaxRank = 6;
    public int S0, S1, S2, S3, S4, S5;
    public int A0, A1, A2, A3, A4, A5;
    public int B0, B1, B2, B3, B4, B5;

    /// <summary>The offsets in A and B of element <paramref name="flat"/> in row-major order.</summary>
    public readonly void Offsets(long flat, out long a, out long b)
    {
        a = 0;
        b = 0;
        Step(ref flat, S5, A5, B5, ref a, ref b);
        Step(ref flat, S4, A4, B4, ref a, ref b);
        Step(ref flat, S3, A3, B3, ref a, ref b);
        Step(ref flat, S2, A2, B2, ref a, ref b);
        Step(ref flat, S1, A1, B1, ref a, ref b);
        a += flat * A0;
        b += flat * B0;
    }

    private static void Step(ref long rest, int size, int strideA, int strideB, ref long a, ref long b)
    {
        if (size == 1) return;
        long i = rest % size;
        rest /= size;
        a += i * strideA;
        b += i * strideB;
    }

    /// <summary>The layout of a loop over <paramref name="shape"/>, or throws naming the op when it has more than
    /// <see cref="MaxRank"/> dimensions that cannot be merged.</summary>
    public static StridedLayout Create(string op, ReadOnlySpan<int> shape, ReadOnlySpan<int> stridesA, ReadOnlySpan<int> stridesB)
    {
        Span<int> s = stackalloc int[shape.Length], a = stackalloc int[shape.Length], b = stackalloc int[shape.Length];
        int rank = 0;
        for (int d = 0; d < shape.Length; d++)
        {
            if (shape[d] == 1) continue;
            // Merge into the previous kept dimension when stepping it equals stepping this one shape[d] times.
            if (rank > 0 && a[rank - 1] == stridesA[d] * shape[d] && b[rank - 1] == stridesB[d] * shape[d])
            {
                s[rank - 1] *= shape[d];
                a[rank - 1] = stridesA[d];
                b[rank - 1] = stridesB[d];
                continue;
            }
            s[rank] = shape[d];
            a[rank] = stridesA[d];
            b[rank] = stridesB[d];
            rank++;
        }
        if (rank > MaxRank)
            throw new NotSupportedException($"{op} on the GPU: {rank} dimensions remain after merging contiguous ones; at most {MaxRank} are supported.");
        Span<int> fs = stackalloc int[MaxRank], fa = stackalloc int[MaxRank], fb = stackalloc int[MaxRank];
        fs.Fill(1);
        for (int d = 0; d < rank; d++)
        {
            fs[MaxRank - rank + d] = s[d];
            fa[MaxRank - rank + d] = a[d];
            fb[MaxRank - rank + d] = b[d];
        }
        return new StridedLayout
        {
            S0 = fs[0], S1 = fs[1], S2 = fs[2], S3 = fs[3], S4 = fs[4], S5 = fs[5],
            A0 = fa[0], A1 = fa[1], A2 = fa[2], A3 = fa[3], A4 = fa[4], A5 = fa[5],
            B0 = fb[0], B1 = fb[1], B2 = fb[2], B3 = fb[3], B4 = fb[4], B5 = fb[5],
        };
    }
}

/// <summary>The scalars of one AdamW step; the bias corrections are computed on the host in double.</summary>
internal struct AdamWArgs
{
    public float Lr, Beta1, Beta2, Eps, WeightDecay, Correction1, Correction2;
}

/// <summary>One thread per element: fill, strided copy, the element-wise functions, strided binary ops, AdamW.
/// Each is memory-bound with a single obvious form, so there is one version of each.</summary>
internal static class Elementwise
{
    public static void Fill(Index1D i, ArrayView<float> y, float value) => y[i] = value;

    public static void AddInt(Index1D i, ArrayView<int> x, int value) => x[i] += value;

    /// <summary>B = A over the layout (A is the source); with <paramref name="accumulate"/>, B += A atomically, since
    /// several source elements may land on one destination (the backward of an unfold).</summary>
    public static void Copy(Index1D i, ArrayView<float> src, ArrayView<float> dst, StridedLayout layout, int accumulate)
    {
        layout.Offsets(i, out long s, out long d);
        if (accumulate != 0) Atomic.Add(ref dst[d], src[s]);
        else dst[d] = src[s];
    }

    /// <summary>Version 1: y = F(x) through F's spec, in double precision (the oracle of version 2): ILGPU compiles the
    /// static abstract call of the generic function type into the kernel, so every <see cref="IUnaryFunction"/> runs
    /// here without a per-function kernel.</summary>
    public static void UnaryV1Spec<F>(Index1D i, ArrayView<float> x, ArrayView<float> y, float alpha) where F : struct, IUnaryFunction =>
        y[i] = (float)F.Forward(x[i], alpha);

    /// <summary>Version 1 of dx = dy·F'(x, y), in double; <paramref name="hasY"/> = 0 when the caller passed no y (the
    /// derivative then sees 0).</summary>
    public static void UnaryBackwardV1Spec<F>(Index1D i, ArrayView<float> x, ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx,
        float alpha, int hasY) where F : struct, IUnaryFunction =>
        dx[i] = (float)(dy[i] * F.Derivative(x[i], hasY != 0 ? y[i] : 0f, alpha));

    /// <summary>Version 2: y = F(x) through F's vector form on one float <see cref="Lane"/>, the CPU backend's
    /// arithmetic and precision (a few ulps from the spec), at the GPU's float rate.</summary>
    public static void UnaryV2Float<F>(Index1D i, ArrayView<float> x, ArrayView<float> y, float alpha) where F : struct, IUnaryFunction =>
        y[i] = F.Forward(new Lane(x[i]), new Lane(alpha)).V;

    /// <summary>Version 2 of the backward, in float.</summary>
    public static void UnaryBackwardV2Float<F>(Index1D i, ArrayView<float> x, ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx,
        float alpha, int hasY) where F : struct, IUnaryFunction =>
        dx[i] = F.Backward(new Lane(x[i]), new Lane(hasY != 0 ? y[i] : 0f), new Lane(dy[i]), new Lane(alpha)).V;

    /// <summary>y[i] = a ∘ b with a at layout offset A and b at offset B (stride 0 broadcasts).</summary>
    public static void Binary(Index1D i, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, StridedLayout layout, int op)
    {
        layout.Offsets(i, out long ai, out long bi);
        y[i] = Apply((BinaryOp)op, a[ai], b[bi]);
    }

    private static float Apply(BinaryOp op, float a, float b)
    {
        switch (op)
        {
            case BinaryOp.Add: return a + b;
            case BinaryOp.Sub: return a - b;
            case BinaryOp.Mul: return a * b;
            case BinaryOp.Div: return a / b;
            case BinaryOp.Pow: return MathF.Pow(a, b);
            case BinaryOp.Maximum: return float.IsNaN(a) || float.IsNaN(b) ? float.NaN : a > b ? a : b;
            case BinaryOp.Minimum: return float.IsNaN(a) || float.IsNaN(b) ? float.NaN : a < b ? a : b;
            case BinaryOp.Greater: return a > b ? 1f : 0f;
            case BinaryOp.Less: return a < b ? 1f : 0f;
            default: return a == b ? 1f : 0f; // BinaryOp.Equal (the host checks the op)
        }
    }

    public static void AdamW(Index1D i, ArrayView<float> p, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, AdamWArgs s)
    {
        float gi = g[i];
        float mi = s.Beta1 * m[i] + (1 - s.Beta1) * gi;
        float vi = s.Beta2 * v[i] + (1 - s.Beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        float mHat = mi / s.Correction1, vHat = vi / s.Correction2;
        p[i] -= s.Lr * (s.WeightDecay * p[i] + mHat / (MathF.Sqrt(vHat) + s.Eps));
    }
}
