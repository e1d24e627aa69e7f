namespace Nabla.Kernels;

/// <summary>
/// Everything the ops need from a compute device, as plain functions over raw buffers: no tensors, no
/// autograd. <see cref="Reference.ReferenceBackend"/> is the naive spec (plain loops); <see cref="Cpu.CpuBackend"/>
/// is the optimised implementation tested against it. A GPU backend implements the same interface.
/// Conventions: row-major; "rows × cols" buffers are contiguous; a reduction over a dimension sees the data as
/// (outer, r, inner); outputs are written, not accumulated, unless the parameter says otherwise.
/// </summary>
public unsafe interface IKernelBackend
{
    string Name { get; }

    /// <summary>y[i] = value.</summary>
    void Fill(float* y, float value, long n);

    /// <summary>x[i] += value over n Int32 elements: counters that live with a model on its device (batch norm's
    /// num_batches_tracked), so counting needs no read back to the host.</summary>
    void AddInt(int* x, int value, long n);

    /// <summary>dst = src (or dst += src when <paramref name="accumulate"/>), both strided, over <paramref name="shape"/>.
    /// Works for any 4-byte element type. With <paramref name="accumulate"/> and overlapping destination
    /// elements (the backward of an unfold) every contribution is added.</summary>
    void Copy(float* src, ReadOnlySpan<int> srcStrides, float* dst, ReadOnlySpan<int> dstStrides, ReadOnlySpan<int> shape, bool accumulate);

    /// <summary>y = F(x) over n contiguous elements (F's parameter, if any, is <paramref name="alpha"/>).</summary>
    void Unary<F>(float alpha, float* x, float* y, long n) where F : struct, IUnaryFunction;

    /// <summary>dx = dy · F'(x); <paramref name="y"/> is F(x) (some derivatives use it; it may be null for the others).</summary>
    void UnaryBackward<F>(float alpha, float* x, float* y, float* dy, float* dx, long n) where F : struct, IUnaryFunction;

    /// <summary>y = a ∘ b over <paramref name="shape"/>; y is contiguous, a and b are strided (stride 0 = broadcast).</summary>
    void Binary(BinaryOp op, float* a, ReadOnlySpan<int> aStrides, float* b, ReadOnlySpan<int> bStrides, float* y, ReadOnlySpan<int> shape);

    /// <summary>y[o, i] = Σ_r x[o, r, i].</summary>
    void Sum(float* x, float* y, int outer, int r, int inner);

    /// <summary>y[o, i] = max_r x[o, r, i] and argmax[o, i] = the first r reaching it (NaN wins, as in PyTorch).</summary>
    void Max(float* x, float* y, int* argmax, int outer, int r, int inner);

    /// <summary>Row-wise softmax (or log-softmax) of a rows × cols matrix.</summary>
    void Softmax(float* x, float* y, int rows, int cols, bool log);

    /// <summary>dx from dy and the forward output y of <see cref="Softmax"/>.</summary>
    void SoftmaxBackward(float* y, float* dy, float* dx, int rows, int cols, bool log);

    /// <summary>Per-row cross-entropy of logits (rows × classes) against class indices; rows whose target is
    /// <paramref name="ignoreIndex"/> get loss 0. With label smoothing ε the target distribution is
    /// (1-ε)·onehot + ε/classes. Throws on a target outside [0, classes).</summary>
    void CrossEntropy(float* logits, int* targets, float* loss, int rows, int classes, int ignoreIndex, float smoothing);

    /// <summary>dlogits[r] = dloss[r] · (softmax(logits[r]) - target distribution); 0 for ignored rows.</summary>
    void CrossEntropyBackward(float* logits, int* targets, float* dloss, float* dlogits, int rows, int classes, int ignoreIndex, float smoothing);

    /// <summary>Layer norm over the last dimension: y = (x - mean) · rstd · w + b. w and b may be null.
    /// Writes the per-row mean and rstd = 1/sqrt(var + eps) for the backward.</summary>
    void LayerNorm(float* x, float* w, float* b, float* y, float* mean, float* rstd, int rows, int cols, float eps);

    /// <summary>Backward of <see cref="LayerNorm"/>: writes dx; accumulates (+=) into dw and db when they are not null.</summary>
    void LayerNormBackward(float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db, int rows, int cols);

    /// <summary>
    /// C = op(A)·op(B) (+ C when <paramref name="accumulate"/>) (+ bias[j]) for <paramref name="batch"/> matrices.
    /// op(A) is m × k: A is m × k with row stride lda, or, if <paramref name="transA"/>, k × m with row stride lda.
    /// op(B) is k × n likewise. C is m × n with row stride ldc. Matrix i of a batch starts at
    /// A + i·strideA (and so on); a stride of 0 shares one matrix across the batch.
    /// </summary>
    void Gemm(bool transA, bool transB, int m, int n, int k,
        float* a, int lda, long strideA, float* b, int ldb, long strideB, float* c, int ldc, long strideC,
        int batch, bool accumulate, float* bias);

    /// <summary>Scaled-dot-product attention: o = softmax(scale·q·kᵀ (masked if causal))·v, plus the log-sum-exp
    /// of each query's scores for the backward. See <see cref="AttentionLayout"/>.</summary>
    void Attention(in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse);

    /// <summary>Backward of <see cref="Attention"/>: writes dq, dk, dv (laid out like q, k, v) from dout (laid
    /// out like o), recomputing the probabilities from q, k and lse.</summary>
    void AttentionBackward(in AttentionLayout layout, float* q, float* k, float* v, float* o, float* lse, float* dout,
        float* dq, float* dk, float* dv);

    /// <summary>y[i, :] = table[idx[i], :] for n indices into a table of rows × dim.</summary>
    void Embedding(float* table, int* idx, float* y, int n, int dim, int rows);

    /// <summary>dtable[idx[i], :] += dy[i, :].</summary>
    void EmbeddingBackward(float* dy, int* idx, float* dtable, int n, int dim);

    /// <summary>One AdamW step over n parameters: m, v updated in place, then
    /// p -= lr·(m̂/(sqrt(v̂)+eps) + weightDecay·p) (decoupled decay; pass weightDecay 0 for Adam with L2 done outside).</summary>
    void AdamW(float* p, float* g, float* m, float* v, long n, float lr, float beta1, float beta2, float eps, float weightDecay, int step);

    // ---------------------------------------------------------------- recurrent cells: the point-wise part of one time step
    // over a batch (the GEMMs around it are Gemm calls); every buffer is batch rows of its width, contiguous.

    /// <summary>LSTM step (PyTorch's gate order i, f, g, o): <paramref name="gates"/> (batch, 4·hidden) holds the
    /// pre-activations and is overwritten with the activations σ(i), σ(f), tanh(g), σ(o) for the backward; then
    /// c = f∘cPrev + i∘g and h = o∘tanh(c).</summary>
    void LstmCell(float* gates, float* cPrev, float* c, float* h, int batch, int hidden);

    /// <summary>Backward of <see cref="LstmCell"/> from its activated gates, cPrev and c, the gradient dh reaching h and dc
    /// reaching c from later steps: writes the pre-activation gradients dGates (batch, 4·hidden) and
    /// dcPrev = (dc + dh∘o∘(1 - tanh²c))∘f.</summary>
    void LstmCellBackward(float* gates, float* cPrev, float* c, float* dh, float* dc, float* dGates, float* dcPrev, int batch, int hidden);

    /// <summary>GRU step (gate order r, z, n): <paramref name="inputGates"/> (batch, 3·hidden) = W_i x + b_i is overwritten
    /// with r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r∘h_n), where <paramref name="hiddenGates"/> = W_h hPrev + b_h;
    /// h = (1 - z)∘n + z∘hPrev.</summary>
    void GruCell(float* inputGates, float* hiddenGates, float* hPrev, float* h, int batch, int hidden);

    /// <summary>Backward of <see cref="GruCell"/> from its activated gates, hiddenGates, hPrev and dh: writes the
    /// gradients of the input gates' and the hidden gates' pre-activations (they differ in n: dh_n = dx_n∘r) and the
    /// direct part of dhPrev, dh∘z (the part through W_h is the caller's GEMM).</summary>
    void GruCellBackward(float* gates, float* hiddenGates, float* hPrev, float* dh, float* dInputGates, float* dHiddenGates, float* dhPrev,
        int batch, int hidden);

    // ---------------------------------------------------------------- convolution and pooling (NCHW, see Conv2dGeometry)

    /// <summary>The backward of im2col: dx (Batch, Channels, Height, Width) = for each input position, the sum of
    /// the entries of col (Batch, Channels, KernelH, KernelW, OutHeight, OutWidth) whose window tap reads it
    /// (entries that fall on padding are dropped). Writes dx.</summary>
    void Col2Im(in Conv2dGeometry g, float* col, float* dx);

    /// <summary>Winograd F(2×2, 3×3) input transform (see <see cref="Winograd"/>; g must <see cref="Conv2dGeometry.SuitsWinograd"/>):
    /// v (16, Channels, Tiles; slices <see cref="Winograd.SliceStride"/> apart)[ξ, c, p] = (Bᵀ d B)[ξ], d the 4×4 patch of x (Batch, Channels, Height, Width) at input row
    /// 2·th - PadH, column 2·tw - PadW of image n (positions outside the input are zeros). Writes v.</summary>
    void WinogradInput(in Conv2dGeometry g, float* x, float* v);

    /// <summary>Winograd output transform: y (Batch, OutChannels, OutHeight, OutWidth) at row 2·th + i, column 2·tw + j
    /// = (Aᵀ m A)[i, j] + bias[o] from m (16, OutChannels, Tiles), for the outputs inside the image (bias may be null).</summary>
    void WinogradOutput(in Conv2dGeometry g, float* m, float* bias, float* y);

    /// <summary>The adjoint of <see cref="WinogradOutput"/>, for the weight gradient: dm (16, OutChannels, Tiles)[ξ, o, p]
    /// = (A e Aᵀ)[ξ], e the 2×2 block of dy at row 2·th, column 2·tw (zeros past the edge). Writes dm.</summary>
    void WinogradOutputAdjoint(in Conv2dGeometry g, float* dy, float* dm);

    /// <summary>Winograd kernel transform of a weight w (OutChannels, Channels, 3, 3): u (16, OutChannels, Channels)
    /// [ξ, o, c] = (G w[o, c] Gᵀ)[ξ]; with <paramref name="inputGradient"/>, the kernels of the input gradient
    /// instead, u (16, Channels, OutChannels)[ξ, c, o] from w[o, c] rotated by 180°. Writes u.</summary>
    void WinogradKernels(in Conv2dGeometry g, float* w, float* u, bool inputGradient);

    /// <summary>The adjoint of <see cref="WinogradKernels"/> (without rotation), for the weight gradient:
    /// dw (OutChannels, Channels, 3, 3)[o, c] = Gᵀ du[·, o, c] G. Writes dw.</summary>
    void WinogradKernelGradient(in Conv2dGeometry g, float* du, float* dw);

    /// <summary>Direct convolution (g must <see cref="Conv2dGeometry.SuitsDirect"/>): y (Batch, OutChannels, OutHeight,
    /// OutWidth) = the cross-correlation of x (Batch, Channels, Height, Width) with w (OutChannels, Channels, KernelH,
    /// KernelW), plus bias[o] (bias may be null), with no im2col matrix.</summary>
    void DirectConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y);

    /// <summary>dx of <see cref="DirectConv2d"/> from dy (written, not accumulated).</summary>
    void DirectConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx);

    /// <summary>dw of <see cref="DirectConv2d"/> from dy and x, summed over the batch (written, not accumulated).</summary>
    void DirectConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw);

    /// <summary>Depthwise convolution (Groups = Channels, OutChannels = multiplier·Channels): output channel o
    /// filters input channel o / multiplier with its own KernelH × KernelW weights w (OutChannels, 1, KernelH,
    /// KernelW), plus bias[o] (bias may be null).</summary>
    void DepthwiseConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y);

    /// <summary>dx of <see cref="DepthwiseConv2d"/> from dy (written, not accumulated).</summary>
    void DepthwiseConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx);

    /// <summary>dw of <see cref="DepthwiseConv2d"/> from dy and x (written, not accumulated).</summary>
    void DepthwiseConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw);

    /// <summary>Max pooling: y = the largest input in each window (padding counts as -∞) and argmax = its position
    /// h·Width + w in the plane: the first maximum in row-major window order, a NaN winning (the last one), as in
    /// PyTorch; a window with no value above -∞ points at its first position inside the input.</summary>
    void MaxPool2d(in Conv2dGeometry g, float* x, float* y, int* argmax);

    /// <summary>dx[argmax] += dy for each output (dx is written: zeros plus the routed gradients).</summary>
    void MaxPool2dBackward(in Conv2dGeometry g, float* dy, int* argmax, float* dx);

    /// <summary>Average pooling (Dilation 1): the window's sum divided by KernelH·KernelW when
    /// <paramref name="countIncludePad"/>, else by the number of its positions inside the input.</summary>
    void AvgPool2d(in Conv2dGeometry g, bool countIncludePad, float* x, float* y);

    /// <summary>dx of <see cref="AvgPool2d"/> (written).</summary>
    void AvgPool2dBackward(in Conv2dGeometry g, bool countIncludePad, float* dy, float* dx);

    /// <summary>Adaptive average pooling of <paramref name="planes"/> planes (height × width) to outHeight × outWidth:
    /// output row o averages input rows [⌊o·height/outHeight⌋, ⌈(o+1)·height/outHeight⌉), columns likewise.</summary>
    void AdaptiveAvgPool2d(int planes, int height, int width, int outHeight, int outWidth, float* x, float* y);

    /// <summary>dx of <see cref="AdaptiveAvgPool2d"/> (written).</summary>
    void AdaptiveAvgPool2dBackward(int planes, int height, int width, int outHeight, int outWidth, float* dy, float* dx);

    // ---------------------------------------------------------------- batch normalisation over (batch, channels, spatial)

    /// <summary>Per-channel mean and biased variance of x (batch, channels, spatial) over batch and spatial.</summary>
    void BatchNormStatistics(float* x, float* mean, float* variance, int batch, int channels, int spatial);

    /// <summary>y = (x - mean[c])·rstd[c]·w[c] + b[c] (+ residual) (then max(·, 0) with <paramref name="relu"/>);
    /// w, b and residual may be null (1, 0 and 0). The residual sum and the ReLU are the epilogue of a ResNet block
    /// (relu(bn(conv(x)) + shortcut)) in the same pass over the data.</summary>
    void BatchNorm(float* x, float* mean, float* rstd, float* w, float* b, float* residual, bool relu, float* y, int batch, int channels, int spatial);

    /// <summary>Backward of <see cref="BatchNorm"/>: writes dx, dw = Σ g·x̂ and db = Σ g per channel, and dResidual = g,
    /// each when not null (x̂ = (x - mean)·rstd), where g is the gradient reaching the normalisation: dy, or with
    /// <paramref name="reluOutput"/> (the forward's y, which had the ReLU) dy where y > 0 and 0 elsewhere. With
    /// <paramref name="batchStatistics"/> the mean and rstd were computed from this batch (training), so dx includes
    /// their derivatives: dx = w·rstd·(g - mean(g) - x̂·mean(g·x̂)); otherwise (running statistics) dx = w·rstd·g.</summary>
    void BatchNormBackward(float* dy, float* x, float* mean, float* rstd, float* w, float* reluOutput, float* dx, float* dResidual, float* dw, float* db,
        int batch, int channels, int spatial, bool batchStatistics);
}
