using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

/// <summary>How a loss turns per-element losses into its result.</summary>
public enum Reduction
{
    Mean,
    Sum,
    None,
}

/// <summary>
/// Functional forms of the layers and losses (PyTorch's <c>torch.nn.functional</c>): stateless, every
/// parameter passed in. Modules in <c>Nabla.NN</c> hold the parameters and call these.
/// </summary>
public static unsafe partial class F
{
    /// <summary>y = x·Wᵀ + b. x: (..., in), weight: (out, in), bias: (out) or null.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null) => Tensor.Linear(x, weight, bias);

    public static Tensor Relu(Tensor x) => x.Relu();
    public static Tensor Gelu(Tensor x, GeluApproximation approximate = GeluApproximation.None) => x.Gelu(approximate);
    public static Tensor Softmax(Tensor x, int dim = -1) => x.Softmax(dim);
    public static Tensor LogSoftmax(Tensor x, int dim = -1) => x.LogSoftmax(dim);

    // ---------------------------------------------------------------- losses

    /// <summary>
    /// Cross-entropy between logits and class indices, fused with the log-softmax (one pass, stable).
    /// logits: (N, C), or (C) with a 0-d/1-element target, or (N, C, d1, ...) with targets (N, d1, ...).
    /// Targets equal to <paramref name="ignoreIndex"/> contribute nothing (and are not counted by the mean).
    /// With label smoothing ε the target distribution is (1-ε)·onehot + ε/C.
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets, Reduction reduction = Reduction.Mean, int ignoreIndex = -100, float labelSmoothing = 0f)
    {
        logits.RequireFloat("CrossEntropy");
        if (targets.DType != DType.Int32)
            throw new ArgumentException($"CrossEntropy: targets must be class indices (Int32), got {targets.DType}; build them with Tensor.FromArray(int[]).");
        if (labelSmoothing is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(labelSmoothing), "Label smoothing must be in [0, 1].");
        if (logits.Rank == 1)
        {
            var single = CrossEntropy(logits.Unsqueeze(0), targets.Reshape(1), reduction, ignoreIndex, labelSmoothing);
            return reduction == Reduction.None ? single.Reshape() : single;
        }
        if (logits.Rank > 2)
        {
            // (N, C, d1, ...) -> (N·d1·..., C) with the class dimension last
            int c = logits.Size(1);
            var order = new[] { 0 }.Concat(Enumerable.Range(2, logits.Rank - 2)).Append(1).ToArray();
            var flat = logits.Permute(order).Reshape(-1, c);
            var expected = logits.Shape.ToArray().Where((_, i) => i != 1).ToArray();
            if (!targets.Shape.SequenceEqual(expected))
                throw new ArgumentException($"CrossEntropy: targets {targets.ShapeString} do not match logits {logits.ShapeString} (expected {ShapeMath.Format(expected)}).");
            var loss = CrossEntropy(flat, targets.Reshape(-1), reduction, ignoreIndex, labelSmoothing);
            return reduction == Reduction.None ? loss.Reshape(expected) : loss;
        }
        int rows = logits.Size(0), classes = logits.Size(1);
        if (targets.Rank != 1 || targets.Size(0) != rows)
            throw new ArgumentException($"CrossEntropy: targets {targets.ShapeString} do not match logits {logits.ShapeString} (expected [{rows}]).");
        var z = logits.Contiguous();
        var t = targets.Contiguous();
        var kernels = Tensor.KernelsFor("CrossEntropy", z, t);
        var perRow = Tensor.Empty([rows], DType.Float32, z.Device);
        if (rows > 0) kernels.CrossEntropy(z.Data, t.IntData, perRow.Data, rows, classes, ignoreIndex, labelSmoothing);
        int counted = CountNotIgnored(t, ignoreIndex);
        Tensor result;
        using (GradMode.NoGrad())
        {
            result = reduction switch
            {
                Reduction.None => perRow,
                Reduction.Sum => perRow.Sum(),
                _ => perRow.Sum().Mul(1f / counted),
            };
        }
        if (GradMode.Needed(logits))
        {
            result.Record("CrossEntropy", [logits], g =>
            {
                // dloss per row: the incoming gradient, spread over rows as the reduction did
                var dRow = reduction == Reduction.None ? g.Contiguous()
                    : g.Mul(reduction == Reduction.Mean ? 1f / counted : 1f).Expand(rows).Contiguous();
                var dz = Tensor.Empty([rows, classes], DType.Float32, z.Device);
                if (rows > 0) Tensor.KernelsFor("CrossEntropy backward", z, dRow).CrossEntropyBackward(z.Data, t.IntData, dRow.Data, dz.Data, rows, classes, ignoreIndex, labelSmoothing);
                GC.KeepAlive(dRow);
                return [dz];
            }, saved: [z.IfCopyOf(logits), t.IfCopyOf(targets)]);
        }
        GC.KeepAlive(z);
        GC.KeepAlive(t);
        return result;
    }

    /// <summary>How many of the (contiguous, Int32) targets are not <paramref name="ignoreIndex"/>: the divisor of the
    /// mean. Targets on a device are read back to the host for it (a few bytes per row, and a wait for the device).</summary>
    private static int CountNotIgnored(Tensor targets, int ignoreIndex)
    {
        int counted = 0;
        if (targets.Device.IsCpu)
        {
            int* tp = targets.IntData;
            for (int i = 0; i < targets.Count; i++) if (tp[i] != ignoreIndex) counted++;
            GC.KeepAlive(targets);
        }
        else
            foreach (int target in targets.ToIntArray()) if (target != ignoreIndex) counted++;
        return counted;
    }

    /// <summary>Mean squared error ((input - target)²), reduced.</summary>
    public static Tensor MseLoss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean)
    {
        CheckSameShape(input, target, "MseLoss");
        return Reduce(input.Sub(target).Square(), reduction);
    }

    /// <summary>Binary cross-entropy on logits: max(x,0) - x·y + log(1 + e^-|x|), stable for any x; the
    /// gradient is (sigmoid(x) - y).</summary>
    public static Tensor BinaryCrossEntropyWithLogits(Tensor logits, Tensor target, Reduction reduction = Reduction.Mean)
    {
        CheckSameShape(logits, target, "BinaryCrossEntropyWithLogits");
        Tensor loss;
        using (GradMode.NoGrad())
            loss = logits.Relu().Sub(logits.Mul(target)).Add(logits.Abs().Neg().Exp().Add(1f).Log());
        if (GradMode.Needed(logits, target))
        {
            loss.Record("BinaryCrossEntropyWithLogits", [logits, target], g => [
                logits.RequiresGrad ? g.Mul(logits.Sigmoid().Sub(target)) : null,
                target.RequiresGrad ? g.Mul(logits).Neg() : null]);
        }
        return Reduce(loss, reduction);
    }

    private static Tensor Reduce(Tensor loss, Reduction reduction) => reduction switch
    {
        Reduction.None => loss,
        Reduction.Sum => loss.Sum(),
        _ => loss.Mean(),
    };

    private static void CheckSameShape(Tensor a, Tensor b, string op)
    {
        if (!a.Shape.SequenceEqual(b.Shape))
            throw new ArgumentException($"{op}: input {a.ShapeString} and target {b.ShapeString} must have the same shape.");
    }

    // ---------------------------------------------------------------- normalisation

    /// <summary>Layer normalisation over the last <c>normalizedShape.Length</c> dimensions, then ·weight + bias.</summary>
    public static Tensor LayerNorm(Tensor x, int[] normalizedShape, Tensor? weight = null, Tensor? bias = null, float eps = 1e-5f)
    {
        x.RequireFloat("LayerNorm");
        int k = normalizedShape.Length;
        if (k == 0 || x.Rank < k || !x.Shape[^k..].SequenceEqual(normalizedShape))
            throw new ArgumentException($"LayerNorm: input {x.ShapeString} does not end in the normalized shape {ShapeMath.Format(normalizedShape)}.");
        int cols = (int)ShapeMath.Count(normalizedShape), rows = cols == 0 ? 0 : x.Count / cols;
        foreach (var (p, name) in new[] { (weight, "weight"), (bias, "bias") })
            if (p != null && p.Count != cols)
                throw new ArgumentException($"LayerNorm: {name} {p.ShapeString} does not match the normalized shape {ShapeMath.Format(normalizedShape)}.");
        var xc = x.Contiguous();
        var w = weight?.Contiguous();
        var b = bias?.Contiguous();
        var kernels = Tensor.KernelsFor("LayerNorm", xc, w, b);
        var y = Tensor.Empty(x.Shape.ToArray(), DType.Float32, x.Device);
        var mean = Tensor.Empty([rows], DType.Float32, x.Device);
        var rstd = Tensor.Empty([rows], DType.Float32, x.Device);
        if (y.Count > 0)
            kernels.LayerNorm(xc.Data, w == null ? null : w.Data, b == null ? null : b.Data, y.Data, mean.Data, rstd.Data, rows, cols, eps);
        GC.KeepAlive(xc);
        GC.KeepAlive(w);
        GC.KeepAlive(b);
        if (GradMode.Needed(x, weight, bias))
        {
            y.Record("LayerNorm", [x, weight, bias], g =>
            {
                var gc = g.Contiguous();
                var dx = Tensor.Empty(x.Shape.ToArray(), DType.Float32, x.Device);
                var dw = weight is { RequiresGrad: true } ? Tensor.ZerosLike(weight) : null;
                var db = bias is { RequiresGrad: true } ? Tensor.ZerosLike(bias) : null;
                if (dx.Count > 0)
                    Tensor.KernelsFor("LayerNorm backward", xc, gc, w).LayerNormBackward(gc.Data, xc.Data, w == null ? null : w.Data, mean.Data, rstd.Data, dx.Data,
                        dw == null ? null : dw.Data, db == null ? null : db.Data, rows, cols);
                GC.KeepAlive(gc);
                return [dx, dw, db];
            }, saved: [mean, rstd, xc.IfCopyOf(x), weight == null ? null : w!.IfCopyOf(weight)]);
        }
        return y;
    }

    // ---------------------------------------------------------------- embedding and dropout

    /// <summary>Rows of <paramref name="weight"/> (vocab, dim) picked by <paramref name="indices"/> (Int32, any
    /// shape); the result has shape indices.shape + [dim].</summary>
    public static Tensor Embedding(Tensor indices, Tensor weight)
    {
        if (indices.DType != DType.Int32) throw new ArgumentException($"Embedding: indices must be Int32, got {indices.DType}.");
        weight.RequireFloat("Embedding");
        if (weight.Rank != 2) throw new ArgumentException($"Embedding: weight must be 2-D (rows, dim), got {weight.ShapeString}.");
        int rows = weight.Size(0), dim = weight.Size(1);
        var idx = indices.Contiguous();
        var w = weight.Contiguous();
        var kernels = Tensor.KernelsFor("Embedding", w, idx);
        var y = Tensor.Empty(indices.Shape.ToArray().Append(dim).ToArray(), DType.Float32, w.Device);
        if (idx.Count > 0) kernels.Embedding(w.Data, idx.IntData, y.Data, idx.Count, dim, rows);
        GC.KeepAlive(w);
        GC.KeepAlive(idx);
        if (GradMode.Needed(weight))
        {
            y.Record("Embedding", [weight], g =>
            {
                var gc = g.Contiguous();
                var dw = Tensor.Zeros([rows, dim], w.Device);
                if (idx.Count > 0) Tensor.KernelsFor("Embedding backward", gc, idx).EmbeddingBackward(gc.Data, idx.IntData, dw.Data, idx.Count, dim);
                GC.KeepAlive(gc);
                GC.KeepAlive(idx);
                return [dw];
            }, saved: [idx.IfCopyOf(indices)]);
        }
        return y;
    }

    /// <summary>Zeroes each element with probability <paramref name="p"/> and scales the rest by 1/(1-p), in
    /// training; the identity otherwise.</summary>
    public static Tensor Dropout(Tensor x, float p, bool training = true, Generator? generator = null)
    {
        if (p is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(p), $"Dropout probability must be in [0, 1], got {p}.");
        if (!training || p == 0) return x;
        if (p == 1) return x.Mul(0f);
        var gen = generator ?? Generator.Default;
        var mask = Tensor.Empty(x.Shape.ToArray()); // drawn on the host, then moved to x's device
        float keep = 1f / (1f - p);
        float* m = mask.Data;
        for (int i = 0; i < mask.Count; i++) m[i] = gen.NextFloat() >= p ? keep : 0f;
        return x.Mul(mask.To(x.Device));
    }

    /// <summary>
    /// Channel-wise dropout (PyTorch's Dropout2d): in training each channel of each sample of x (N, C, ...) is
    /// zeroed as a whole with probability <paramref name="p"/> and the rest are scaled by 1/(1-p); the identity
    /// otherwise. Neighbouring pixels of a feature map are strongly correlated, so dropping single pixels barely
    /// regularises a convolutional network; dropping whole maps does (Tompson et al., 2015).
    /// </summary>
    public static Tensor Dropout2d(Tensor x, float p, bool training = true, Generator? generator = null)
    {
        if (p is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(p), $"Dropout2d probability must be in [0, 1], got {p}.");
        if (x.Rank < 3) throw new ArgumentException($"Dropout2d: input must be (batch, channels, ...spatial), got {x.ShapeString}.");
        if (!training || p == 0) return x;
        if (p == 1) return x.Mul(0f);
        var gen = generator ?? Generator.Default;
        int N = x.Size(0), C = x.Size(1);
        float keep = 1f / (1f - p);
        var mask = new float[N * C];
        for (int i = 0; i < mask.Length; i++) mask[i] = gen.NextFloat() >= p ? keep : 0f;
        var maskShape = new int[x.Rank];
        Array.Fill(maskShape, 1);
        (maskShape[0], maskShape[1]) = (N, C);
        return x.Mul(Tensor.FromArray(mask, maskShape).To(x.Device)); // broadcast over the spatial dimensions
    }
}
