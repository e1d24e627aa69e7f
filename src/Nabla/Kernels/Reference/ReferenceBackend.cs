namespace Nabla.Kernels.Reference;

/// <summary>
/// The naive kernels: plain loops, one element at a time, double-precision accumulators. They define what
/// every kernel computes and are the oracle the optimised <see cref="Cpu.CpuBackend"/> is tested against.
/// Never optimise this file; clarity is its only job.
/// </summary>
public sealed unsafe class ReferenceBackend : IKernelBackend
{
    public static readonly ReferenceBackend Instance = new();
    public string Name => "reference";

    public void Fill(float* y, float value, long n)
    {
        for (long i = 0; i < n; i++) y[i] = value;
    }

    public void AddInt(int* x, int value, long n)
    {
        for (long i = 0; i < n; i++) x[i] += value;
    }

    public void Copy(float* src, ReadOnlySpan<int> srcStrides, float* dst, ReadOnlySpan<int> dstStrides, ReadOnlySpan<int> shape, bool accumulate)
    {
        long count = ShapeMath.Count(shape);
        Span<int> index = stackalloc int[shape.Length];
        for (long flat = 0; flat < count; flat++)
        {
            ShapeMath.Unravel(flat, shape, index);
            long s = ShapeMath.Offset(index, srcStrides), d = ShapeMath.Offset(index, dstStrides);
            if (accumulate) dst[d] += src[s];
            else dst[d] = src[s];
        }
    }

    public void Unary<F>(float alpha, float* x, float* y, long n) where F : struct, IUnaryFunction
    {
        for (long i = 0; i < n; i++) y[i] = (float)F.Forward(x[i], alpha);
    }

    public void UnaryBackward<F>(float alpha, float* x, float* y, float* dy, float* dx, long n) where F : struct, IUnaryFunction
    {
        for (long i = 0; i < n; i++)
            dx[i] = (float)(dy[i] * F.Derivative(x[i], y == null ? 0f : y[i], alpha));
    }

    public void Binary(BinaryOp op, float* a, ReadOnlySpan<int> aStrides, float* b, ReadOnlySpan<int> bStrides, float* y, ReadOnlySpan<int> shape)
    {
        long count = ShapeMath.Count(shape);
        Span<int> index = stackalloc int[shape.Length];
        for (long flat = 0; flat < count; flat++)
        {
            ShapeMath.Unravel(flat, shape, index);
            y[flat] = ScalarMath.Binary(op, a[ShapeMath.Offset(index, aStrides)], b[ShapeMath.Offset(index, bStrides)]);
        }
    }

    public void Sum(float* x, float* y, int outer, int r, int inner)
    {
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                double acc = 0;
                for (int k = 0; k < r; k++) acc += x[((long)o * r + k) * inner + i];
                y[(long)o * inner + i] = (float)acc;
            }
    }

    public void Max(float* x, float* y, int* argmax, int outer, int r, int inner)
    {
        for (int o = 0; o < outer; o++)
            for (int i = 0; i < inner; i++)
            {
                float best = float.NegativeInfinity;
                int at = 0;
                for (int k = 0; k < r; k++)
                {
                    float v = x[((long)o * r + k) * inner + i];
                    if (float.IsNaN(best)) break;
                    if (v > best || float.IsNaN(v) || k == 0) { best = v; at = k; }
                }
                y[(long)o * inner + i] = best;
                if (argmax != null) argmax[(long)o * inner + i] = at;
            }
    }

    public void Softmax(float* x, float* y, int rows, int cols, bool log)
    {
        for (int r = 0; r < rows; r++)
        {
            float* xr = x + (long)r * cols, yr = y + (long)r * cols;
            double max = double.NegativeInfinity;
            for (int c = 0; c < cols; c++) max = Math.Max(max, xr[c]);
            double sum = 0;
            for (int c = 0; c < cols; c++) sum += Math.Exp(xr[c] - max);
            for (int c = 0; c < cols; c++)
                yr[c] = log ? (float)(xr[c] - max - Math.Log(sum)) : (float)(Math.Exp(xr[c] - max) / sum);
        }
    }

    public void SoftmaxBackward(float* y, float* dy, float* dx, int rows, int cols, bool log)
    {
        for (int r = 0; r < rows; r++)
        {
            float* yr = y + (long)r * cols, dyr = dy + (long)r * cols, dxr = dx + (long)r * cols;
            if (log)
            {
                // y = x - logsumexp(x): dx = dy - softmax · Σdy
                double sum = 0;
                for (int c = 0; c < cols; c++) sum += dyr[c];
                for (int c = 0; c < cols; c++) dxr[c] = (float)(dyr[c] - Math.Exp(yr[c]) * sum);
            }
            else
            {
                // dx = y · (dy - Σ y·dy)
                double dot = 0;
                for (int c = 0; c < cols; c++) dot += (double)yr[c] * dyr[c];
                for (int c = 0; c < cols; c++) dxr[c] = (float)(yr[c] * (dyr[c] - dot));
            }
        }
    }

    public void CrossEntropy(float* logits, int* targets, float* loss, int rows, int classes, int ignoreIndex, float smoothing)
    {
        for (int r = 0; r < rows; r++)
        {
            int t = targets[r];
            if (t == ignoreIndex) { loss[r] = 0; continue; }
            CheckTarget(t, r, classes);
            float* z = logits + (long)r * classes;
            double max = double.NegativeInfinity;
            for (int c = 0; c < classes; c++) max = Math.Max(max, z[c]);
            double sum = 0, sumLogits = 0;
            for (int c = 0; c < classes; c++) { sum += Math.Exp(z[c] - max); sumLogits += z[c]; }
            double logSumExp = max + Math.Log(sum);
            // -Σ q_c log p_c with q = (1-ε) onehot + ε/C
            double nll = logSumExp - z[t];
            double uniform = logSumExp - sumLogits / classes;
            loss[r] = (float)((1 - smoothing) * nll + smoothing * uniform);
        }
    }

    public void CrossEntropyBackward(float* logits, int* targets, float* dloss, float* dlogits, int rows, int classes, int ignoreIndex, float smoothing)
    {
        for (int r = 0; r < rows; r++)
        {
            float* z = logits + (long)r * classes, dz = dlogits + (long)r * classes;
            int t = targets[r];
            if (t == ignoreIndex) { for (int c = 0; c < classes; c++) dz[c] = 0; continue; }
            CheckTarget(t, r, classes);
            double max = double.NegativeInfinity;
            for (int c = 0; c < classes; c++) max = Math.Max(max, z[c]);
            double sum = 0;
            for (int c = 0; c < classes; c++) sum += Math.Exp(z[c] - max);
            for (int c = 0; c < classes; c++)
            {
                double p = Math.Exp(z[c] - max) / sum;
                double q = smoothing / classes + (c == t ? 1 - smoothing : 0);
                dz[c] = (float)(dloss[r] * (p - q));
            }
        }
    }

    internal static void CheckTarget(int t, int row, int classes)
    {
        if ((uint)t >= (uint)classes)
            throw new ArgumentOutOfRangeException("target", $"Target {t} at row {row} is outside the {classes} classes [0, {classes}).");
    }

    public void LayerNorm(float* x, float* w, float* b, float* y, float* mean, float* rstd, int rows, int cols, float eps)
    {
        for (int r = 0; r < rows; r++)
        {
            float* xr = x + (long)r * cols, yr = y + (long)r * cols;
            double m = 0;
            for (int c = 0; c < cols; c++) m += xr[c];
            m /= cols;
            double v = 0;
            for (int c = 0; c < cols; c++) v += (xr[c] - m) * (xr[c] - m);
            v /= cols;
            double s = 1.0 / Math.Sqrt(v + eps);
            for (int c = 0; c < cols; c++)
            {
                double n = (xr[c] - m) * s;
                yr[c] = (float)(n * (w == null ? 1 : w[c]) + (b == null ? 0 : b[c]));
            }
            mean[r] = (float)m;
            rstd[r] = (float)s;
        }
    }

    public void LayerNormBackward(float* dy, float* x, float* w, float* mean, float* rstd, float* dx, float* dw, float* db, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            float* xr = x + (long)r * cols, dyr = dy + (long)r * cols, dxr = dx + (long)r * cols;
            double m = mean[r], s = rstd[r];
            // With n = (x - mean)·rstd and g = dy·w: dx = rstd · (g - mean(g) - n · mean(g·n)).
            double gMean = 0, gnMean = 0;
            for (int c = 0; c < cols; c++)
            {
                double n = (xr[c] - m) * s;
                double g = dyr[c] * (w == null ? 1 : w[c]);
                gMean += g;
                gnMean += g * n;
            }
            gMean /= cols;
            gnMean /= cols;
            for (int c = 0; c < cols; c++)
            {
                double n = (xr[c] - m) * s;
                double g = dyr[c] * (w == null ? 1 : w[c]);
                dxr[c] = (float)(s * (g - gMean - n * gnMean));
                if (dw != null) dw[c] += (float)(dyr[c] * n);
                if (db != null) db[c] += dyr[c];
            }
        }
    }

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    public void LstmCell(float* gates, float* cPrev, float* c, float* h, int batch, int hidden)
    {
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < hidden; j++)
            {
                float* g = gates + (long)b * 4 * hidden + j;
                long k = (long)b * hidden + j;
                g[0] = (float)Sigmoid(g[0]);
                g[hidden] = (float)Sigmoid(g[hidden]);
                g[2 * hidden] = (float)Math.Tanh(g[2 * hidden]);
                g[3 * hidden] = (float)Sigmoid(g[3 * hidden]);
                c[k] = (float)((double)g[hidden] * cPrev[k] + (double)g[0] * g[2 * hidden]);
                h[k] = (float)(g[3 * hidden] * Math.Tanh(c[k]));
            }
    }

    public void LstmCellBackward(float* gates, float* cPrev, float* c, float* dh, float* dc, float* dGates, float* dcPrev, int batch, int hidden)
    {
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < hidden; j++)
            {
                long k = (long)b * hidden + j, row = (long)b * 4 * hidden + j;
                double i = gates[row], f = gates[row + hidden], g = gates[row + 2 * hidden], o = gates[row + 3 * hidden];
                double tanhC = Math.Tanh(c[k]);
                double dcTotal = dc[k] + dh[k] * o * (1 - tanhC * tanhC);
                dGates[row] = (float)(dcTotal * g * i * (1 - i));
                dGates[row + hidden] = (float)(dcTotal * cPrev[k] * f * (1 - f));
                dGates[row + 2 * hidden] = (float)(dcTotal * i * (1 - g * g));
                dGates[row + 3 * hidden] = (float)(dh[k] * tanhC * o * (1 - o));
                dcPrev[k] = (float)(dcTotal * f);
            }
    }

    public void GruCell(float* inputGates, float* hiddenGates, float* hPrev, float* h, int batch, int hidden)
    {
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < hidden; j++)
            {
                long k = (long)b * hidden + j, row = (long)b * 3 * hidden + j;
                double r = Sigmoid((double)inputGates[row] + hiddenGates[row]);
                double z = Sigmoid((double)inputGates[row + hidden] + hiddenGates[row + hidden]);
                double n = Math.Tanh(inputGates[row + 2 * hidden] + r * hiddenGates[row + 2 * hidden]);
                inputGates[row] = (float)r;
                inputGates[row + hidden] = (float)z;
                inputGates[row + 2 * hidden] = (float)n;
                h[k] = (float)((1 - z) * n + z * hPrev[k]);
            }
    }

    public void GruCellBackward(float* gates, float* hiddenGates, float* hPrev, float* dh, float* dInputGates, float* dHiddenGates, float* dhPrev,
        int batch, int hidden)
    {
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < hidden; j++)
            {
                long k = (long)b * hidden + j, row = (long)b * 3 * hidden + j;
                double r = gates[row], z = gates[row + hidden], n = gates[row + 2 * hidden];
                double dnPre = dh[k] * (1 - z) * (1 - n * n);
                double dzPre = dh[k] * (hPrev[k] - n) * z * (1 - z);
                double drPre = dnPre * hiddenGates[row + 2 * hidden] * r * (1 - r);
                dInputGates[row] = dHiddenGates[row] = (float)drPre;
                dInputGates[row + hidden] = dHiddenGates[row + hidden] = (float)dzPre;
                dInputGates[row + 2 * hidden] = (float)dnPre;
                dHiddenGates[row + 2 * hidden] = (float)(dnPre * r);
                dhPrev[k] = (float)(dh[k] * z);
            }
    }

    public void Gemm(bool transA, bool transB, int m, int n, int k,
        float* a, int lda, long strideA, float* b, int ldb, long strideB, float* c, int ldc, long strideC,
        int batch, bool accumulate, float* bias)
    {
        for (int p = 0; p < batch; p++)
        {
            float* A = a + p * strideA, B = b + p * strideB, C = c + p * strideC;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double acc = 0;
                    for (int q = 0; q < k; q++)
                    {
                        float av = transA ? A[(long)q * lda + i] : A[(long)i * lda + q];
                        float bv = transB ? B[(long)j * ldb + q] : B[(long)q * ldb + j];
                        acc += (double)av * bv;
                    }
                    if (bias != null) acc += bias[j];
                    if (accumulate) acc += C[(long)i * ldc + j];
                    C[(long)i * ldc + j] = (float)acc;
                }
        }
    }

    public void Embedding(float* table, int* idx, float* y, int n, int dim, int rows)
    {
        for (int i = 0; i < n; i++)
        {
            int row = idx[i];
            if ((uint)row >= (uint)rows)
                throw new ArgumentOutOfRangeException("index", $"Index {row} at position {i} is outside the table's {rows} rows.");
            for (int d = 0; d < dim; d++) y[(long)i * dim + d] = table[(long)row * dim + d];
        }
    }

    public void EmbeddingBackward(float* dy, int* idx, float* dtable, int n, int dim)
    {
        for (int i = 0; i < n; i++)
            for (int d = 0; d < dim; d++) dtable[(long)idx[i] * dim + d] += dy[(long)i * dim + d];
    }

    public void AdamW(float* p, float* g, float* m, float* v, long n, float lr, float beta1, float beta2, float eps, float weightDecay, int step)
    {
        double bc1 = 1 - Math.Pow(beta1, step), bc2 = 1 - Math.Pow(beta2, step);
        for (long i = 0; i < n; i++)
        {
            m[i] = beta1 * m[i] + (1 - beta1) * g[i];
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
            double mHat = m[i] / bc1, vHat = v[i] / bc2;
            p[i] = (float)(p[i] - lr * (weightDecay * p[i] + mHat / (Math.Sqrt(vHat) + eps)));
        }
    }

    public void Attention(in AttentionLayout l, float* q, float* k, float* v, float* o, float* lse)
    {
        var scores = new double[l.Tk];
        for (int b = 0; b < l.Batch; b++)
            for (int h = 0; h < l.Heads; h++)
                for (int i = 0; i < l.Tq; i++)
                {
                    float* qi = q + l.Q.Of(b, h, i);
                    int visible = l.VisibleKeys(i);
                    double max = double.NegativeInfinity;
                    for (int j = 0; j < visible; j++)
                    {
                        float* kj = k + l.K.Of(b, h, j);
                        double dot = 0;
                        for (int d = 0; d < l.HeadDim; d++) dot += (double)qi[d] * kj[d];
                        scores[j] = dot * l.Scale;
                        max = Math.Max(max, scores[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < visible; j++) sum += Math.Exp(scores[j] - max);
                    float* oi = o + l.O.Of(b, h, i);
                    for (int d = 0; d < l.HeadDim; d++)
                    {
                        double acc = 0;
                        for (int j = 0; j < visible; j++) acc += Math.Exp(scores[j] - max) / sum * v[l.V.Of(b, h, j) + d];
                        oi[d] = visible == 0 ? 0 : (float)acc;
                    }
                    lse[((long)b * l.Heads + h) * l.Tq + i] = visible == 0 ? float.NegativeInfinity : (float)(max + Math.Log(sum));
                }
    }

    public void AttentionBackward(in AttentionLayout l, float* q, float* k, float* v, float* o, float* lse, float* dout,
        float* dq, float* dk, float* dv)
    {
        int D = l.HeadDim;
        for (int b = 0; b < l.Batch; b++)
            for (int h = 0; h < l.Heads; h++)
            {
                for (int j = 0; j < l.Tk; j++)
                    for (int d = 0; d < D; d++) { dk[l.K.Of(b, h, j) + d] = 0; dv[l.V.Of(b, h, j) + d] = 0; }
                for (int i = 0; i < l.Tq; i++)
                {
                    float* qi = q + l.Q.Of(b, h, i), oi = o + l.O.Of(b, h, i), doi = dout + l.O.Of(b, h, i), dqi = dq + l.Q.Of(b, h, i);
                    double rowLse = lse[((long)b * l.Heads + h) * l.Tq + i];
                    // D_i = Σ_j p_ij·(do_i·v_j) = do_i·o_i
                    double di = 0;
                    for (int d = 0; d < D; d++) di += (double)doi[d] * oi[d];
                    var dqAcc = new double[D];
                    for (int j = 0; j < l.VisibleKeys(i); j++)
                    {
                        float* kj = k + l.K.Of(b, h, j), vj = v + l.V.Of(b, h, j);
                        double s = 0, dp = 0;
                        for (int d = 0; d < D; d++) { s += (double)qi[d] * kj[d]; dp += (double)doi[d] * vj[d]; }
                        double p = Math.Exp(s * l.Scale - rowLse);
                        double ds = p * (dp - di);
                        for (int d = 0; d < D; d++)
                        {
                            dqAcc[d] += ds * kj[d] * l.Scale;
                            dk[l.K.Of(b, h, j) + d] += (float)(ds * qi[d] * l.Scale);
                            dv[l.V.Of(b, h, j) + d] += (float)(p * doi[d]);
                        }
                    }
                    for (int d = 0; d < D; d++) dqi[d] = (float)dqAcc[d];
                }
            }
    }

    // ---------------------------------------------------------------- convolution and pooling

    public void Col2Im(in Conv2dGeometry g, float* col, float* dx)
    {
        int OH = g.OutHeight, OW = g.OutWidth;
        for (long i = 0; i < (long)g.Planes * g.Height * g.Width; i++) dx[i] = 0;
        for (int plane = 0; plane < g.Planes; plane++)
            for (int i = 0; i < g.KernelH; i++)
                for (int j = 0; j < g.KernelW; j++)
                    for (int oh = 0; oh < OH; oh++)
                        for (int ow = 0; ow < OW; ow++)
                        {
                            int ih = oh * g.StrideH - g.PadH + i * g.DilationH, iw = ow * g.StrideW - g.PadW + j * g.DilationW;
                            if (ih < 0 || ih >= g.Height || iw < 0 || iw >= g.Width) continue;
                            long c = (((long)plane * g.KernelH + i) * g.KernelW + j) * OH * OW + (long)oh * OW + ow;
                            dx[((long)plane * g.Height + ih) * g.Width + iw] += col[c];
                        }
    }

    public void WinogradInput(in Conv2dGeometry g, float* x, float* v)
    {
        var bt = Winograd.InputMatrix;
        long P = g.Tiles;
        float* d = stackalloc float[16];
        for (int n = 0; n < g.Batch; n++)
            for (int c = 0; c < g.Channels; c++)
                for (int th = 0; th < g.TileRows; th++)
                    for (int tw = 0; tw < g.TileCols; tw++)
                    {
                        for (int r = 0; r < 4; r++)
                            for (int s = 0; s < 4; s++)
                            {
                                int ih = 2 * th - g.PadH + r, iw = 2 * tw - g.PadW + s;
                                bool inside = ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width;
                                d[r * 4 + s] = inside ? x[(((long)n * g.Channels + c) * g.Height + ih) * g.Width + iw] : 0;
                            }
                        long p = ((long)n * g.TileRows + th) * g.TileCols + tw;
                        for (int a = 0; a < 4; a++)
                            for (int b = 0; b < 4; b++)
                            {
                                double sum = 0;
                                for (int r = 0; r < 4; r++)
                                    for (int s = 0; s < 4; s++) sum += bt[a, r] * d[r * 4 + s] * bt[b, s];
                                v[(a * 4 + b) * Winograd.SliceStride(g.Channels, g.Tiles) + c * P + p] = (float)sum;
                            }
                    }
    }

    public void WinogradOutput(in Conv2dGeometry g, float* m, float* bias, float* y)
    {
        var at = Winograd.OutputMatrix;
        long P = g.Tiles;
        int OH = g.OutHeight, OW = g.OutWidth;
        for (int n = 0; n < g.Batch; n++)
            for (int o = 0; o < g.OutChannels; o++)
                for (int th = 0; th < g.TileRows; th++)
                    for (int tw = 0; tw < g.TileCols; tw++)
                    {
                        long p = ((long)n * g.TileRows + th) * g.TileCols + tw;
                        for (int i = 0; i < 2; i++)
                            for (int j = 0; j < 2; j++)
                            {
                                int oh = 2 * th + i, ow = 2 * tw + j;
                                if (oh >= OH || ow >= OW) continue;
                                double sum = bias == null ? 0 : bias[o];
                                for (int a = 0; a < 4; a++)
                                    for (int b = 0; b < 4; b++) sum += at[i, a] * m[(a * 4 + b) * Winograd.SliceStride(g.OutChannels, g.Tiles) + o * P + p] * at[j, b];
                                y[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow] = (float)sum;
                            }
                    }
    }

    public void WinogradOutputAdjoint(in Conv2dGeometry g, float* dy, float* dm)
    {
        var at = Winograd.OutputMatrix;
        long P = g.Tiles;
        int OH = g.OutHeight, OW = g.OutWidth;
        for (int n = 0; n < g.Batch; n++)
            for (int o = 0; o < g.OutChannels; o++)
                for (int th = 0; th < g.TileRows; th++)
                    for (int tw = 0; tw < g.TileCols; tw++)
                    {
                        long p = ((long)n * g.TileRows + th) * g.TileCols + tw;
                        for (int a = 0; a < 4; a++)
                            for (int b = 0; b < 4; b++)
                            {
                                double sum = 0;
                                for (int i = 0; i < 2; i++)
                                    for (int j = 0; j < 2; j++)
                                    {
                                        int oh = 2 * th + i, ow = 2 * tw + j;
                                        if (oh < OH && ow < OW) sum += at[i, a] * dy[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow] * at[j, b];
                                    }
                                dm[(a * 4 + b) * Winograd.SliceStride(g.OutChannels, g.Tiles) + o * P + p] = (float)sum;
                            }
                    }
    }

    public void WinogradKernels(in Conv2dGeometry g, float* w, float* u, bool inputGradient)
    {
        var gm = Winograd.KernelMatrix;
        int O = g.OutChannels, C = g.Channels;
        for (int o = 0; o < O; o++)
            for (int c = 0; c < C; c++)
            {
                float* k = w + ((long)o * C + c) * 9;
                long at = inputGradient ? (long)c * O + o : (long)o * C + c;
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++)
                    {
                        double sum = 0;
                        for (int r = 0; r < 3; r++)
                            for (int s = 0; s < 3; s++) sum += gm[a, r] * k[inputGradient ? 8 - (r * 3 + s) : r * 3 + s] * gm[b, s];
                        u[(a * 4 + b) * (long)O * C + at] = (float)sum;
                    }
            }
    }

    public void WinogradKernelGradient(in Conv2dGeometry g, float* du, float* dw)
    {
        var gm = Winograd.KernelMatrix;
        long pairs = (long)g.OutChannels * g.Channels;
        for (long pair = 0; pair < pairs; pair++)
            for (int r = 0; r < 3; r++)
                for (int s = 0; s < 3; s++)
                {
                    double sum = 0;
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++) sum += gm[a, r] * du[(a * 4 + b) * pairs + pair] * gm[b, s];
                    dw[pair * 9 + r * 3 + s] = (float)sum;
                }
    }

    public void DirectConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y)
    {
        int OH = g.OutHeight, OW = g.OutWidth;
        for (int n = 0; n < g.Batch; n++)
            for (int o = 0; o < g.OutChannels; o++)
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++)
                    {
                        double acc = bias == null ? 0 : bias[o];
                        for (int c = 0; c < g.Channels; c++)
                            for (int i = 0; i < g.KernelH; i++)
                                for (int j = 0; j < g.KernelW; j++)
                                {
                                    int ih = oh * g.StrideH - g.PadH + i * g.DilationH, iw = ow * g.StrideW - g.PadW + j * g.DilationW;
                                    if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width)
                                        acc += (double)w[(((long)o * g.Channels + c) * g.KernelH + i) * g.KernelW + j] *
                                            x[(((long)n * g.Channels + c) * g.Height + ih) * g.Width + iw];
                                }
                        y[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow] = (float)acc;
                    }
    }

    public void DirectConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx)
    {
        int OH = g.OutHeight, OW = g.OutWidth;
        for (int n = 0; n < g.Batch; n++)
            for (int c = 0; c < g.Channels; c++)
                for (int ih = 0; ih < g.Height; ih++)
                    for (int iw = 0; iw < g.Width; iw++)
                    {
                        // Every (output, tap) that read this input position.
                        double acc = 0;
                        for (int o = 0; o < g.OutChannels; o++)
                            for (int i = 0; i < g.KernelH; i++)
                                for (int j = 0; j < g.KernelW; j++)
                                {
                                    int rh = ih + g.PadH - i * g.DilationH, rw = iw + g.PadW - j * g.DilationW;
                                    if (rh < 0 || rw < 0 || rh % g.StrideH != 0 || rw % g.StrideW != 0) continue;
                                    int oh = rh / g.StrideH, ow = rw / g.StrideW;
                                    if (oh < OH && ow < OW)
                                        acc += (double)w[(((long)o * g.Channels + c) * g.KernelH + i) * g.KernelW + j] *
                                            dy[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow];
                                }
                        dx[(((long)n * g.Channels + c) * g.Height + ih) * g.Width + iw] = (float)acc;
                    }
    }

    public void DirectConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw)
    {
        int OH = g.OutHeight, OW = g.OutWidth;
        for (int o = 0; o < g.OutChannels; o++)
            for (int c = 0; c < g.Channels; c++)
                for (int i = 0; i < g.KernelH; i++)
                    for (int j = 0; j < g.KernelW; j++)
                    {
                        double acc = 0;
                        for (int n = 0; n < g.Batch; n++)
                            for (int oh = 0; oh < OH; oh++)
                                for (int ow = 0; ow < OW; ow++)
                                {
                                    int ih = oh * g.StrideH - g.PadH + i * g.DilationH, iw = ow * g.StrideW - g.PadW + j * g.DilationW;
                                    if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width)
                                        acc += (double)dy[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow] *
                                            x[(((long)n * g.Channels + c) * g.Height + ih) * g.Width + iw];
                                }
                        dw[(((long)o * g.Channels + c) * g.KernelH + i) * g.KernelW + j] = (float)acc;
                    }
    }

    public void DepthwiseConv2d(in Conv2dGeometry g, float* x, float* w, float* bias, float* y)
    {
        int OH = g.OutHeight, OW = g.OutWidth, multiplier = g.OutChannels / g.Channels;
        for (int n = 0; n < g.Batch; n++)
            for (int o = 0; o < g.OutChannels; o++)
            {
                float* xp = x + ((long)n * g.Channels + o / multiplier) * g.Height * g.Width;
                float* wo = w + (long)o * g.KernelH * g.KernelW;
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++)
                    {
                        double acc = bias == null ? 0 : bias[o];
                        for (int i = 0; i < g.KernelH; i++)
                            for (int j = 0; j < g.KernelW; j++)
                            {
                                int ih = oh * g.StrideH - g.PadH + i * g.DilationH, iw = ow * g.StrideW - g.PadW + j * g.DilationW;
                                if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width)
                                    acc += (double)wo[i * g.KernelW + j] * xp[(long)ih * g.Width + iw];
                            }
                        y[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow] = (float)acc;
                    }
            }
    }

    public void DepthwiseConv2dBackwardInput(in Conv2dGeometry g, float* dy, float* w, float* dx)
    {
        int OH = g.OutHeight, OW = g.OutWidth, multiplier = g.OutChannels / g.Channels;
        for (long i = 0; i < (long)g.Planes * g.Height * g.Width; i++) dx[i] = 0;
        for (int n = 0; n < g.Batch; n++)
            for (int o = 0; o < g.OutChannels; o++)
            {
                float* dxp = dx + ((long)n * g.Channels + o / multiplier) * g.Height * g.Width;
                float* wo = w + (long)o * g.KernelH * g.KernelW;
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++)
                    {
                        float d = dy[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow];
                        for (int i = 0; i < g.KernelH; i++)
                            for (int j = 0; j < g.KernelW; j++)
                            {
                                int ih = oh * g.StrideH - g.PadH + i * g.DilationH, iw = ow * g.StrideW - g.PadW + j * g.DilationW;
                                if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width)
                                    dxp[(long)ih * g.Width + iw] += wo[i * g.KernelW + j] * d;
                            }
                    }
            }
    }

    public void DepthwiseConv2dBackwardWeight(in Conv2dGeometry g, float* dy, float* x, float* dw)
    {
        int OH = g.OutHeight, OW = g.OutWidth, multiplier = g.OutChannels / g.Channels;
        for (int o = 0; o < g.OutChannels; o++)
            for (int i = 0; i < g.KernelH; i++)
                for (int j = 0; j < g.KernelW; j++)
                {
                    double acc = 0;
                    for (int n = 0; n < g.Batch; n++)
                    {
                        float* xp = x + ((long)n * g.Channels + o / multiplier) * g.Height * g.Width;
                        for (int oh = 0; oh < OH; oh++)
                            for (int ow = 0; ow < OW; ow++)
                            {
                                int ih = oh * g.StrideH - g.PadH + i * g.DilationH, iw = ow * g.StrideW - g.PadW + j * g.DilationW;
                                if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width)
                                    acc += (double)dy[(((long)n * g.OutChannels + o) * OH + oh) * OW + ow] * xp[(long)ih * g.Width + iw];
                            }
                    }
                    dw[((long)o * g.KernelH + i) * g.KernelW + j] = (float)acc;
                }
    }

    public void MaxPool2d(in Conv2dGeometry g, float* x, float* y, int* argmax)
    {
        int OH = g.OutHeight, OW = g.OutWidth;
        for (int plane = 0; plane < g.Planes; plane++)
        {
            float* xp = x + (long)plane * g.Height * g.Width;
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++)
                {
                    float best = float.NegativeInfinity;
                    int at = -1;
                    for (int i = 0; i < g.KernelH; i++)
                        for (int j = 0; j < g.KernelW; j++)
                        {
                            int ih = oh * g.StrideH - g.PadH + i * g.DilationH, iw = ow * g.StrideW - g.PadW + j * g.DilationW;
                            if (ih < 0 || ih >= g.Height || iw < 0 || iw >= g.Width) continue;
                            int index = ih * g.Width + iw;
                            if (at < 0) at = index;
                            float v = xp[index];
                            if (v > best || float.IsNaN(v)) { best = v; at = index; }
                        }
                    long o = ((long)plane * OH + oh) * OW + ow;
                    y[o] = best;
                    argmax[o] = at;
                }
        }
    }

    public void MaxPool2dBackward(in Conv2dGeometry g, float* dy, int* argmax, float* dx)
    {
        long planeOut = (long)g.OutHeight * g.OutWidth, planeIn = (long)g.Height * g.Width;
        for (long i = 0; i < g.Planes * planeIn; i++) dx[i] = 0;
        for (int plane = 0; plane < g.Planes; plane++)
            for (long o = 0; o < planeOut; o++)
                dx[plane * planeIn + argmax[plane * planeOut + o]] += dy[plane * planeOut + o];
    }

    public void AvgPool2d(in Conv2dGeometry g, bool countIncludePad, float* x, float* y)
    {
        int OH = g.OutHeight, OW = g.OutWidth;
        for (int plane = 0; plane < g.Planes; plane++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++)
                {
                    double sum = 0;
                    int inside = 0;
                    for (int i = 0; i < g.KernelH; i++)
                        for (int j = 0; j < g.KernelW; j++)
                        {
                            int ih = oh * g.StrideH - g.PadH + i, iw = ow * g.StrideW - g.PadW + j;
                            if (ih < 0 || ih >= g.Height || iw < 0 || iw >= g.Width) continue;
                            sum += x[((long)plane * g.Height + ih) * g.Width + iw];
                            inside++;
                        }
                    int divisor = countIncludePad ? g.KernelH * g.KernelW : inside;
                    y[((long)plane * OH + oh) * OW + ow] = inside == 0 ? 0 : (float)(sum / divisor);
                }
    }

    public void AvgPool2dBackward(in Conv2dGeometry g, bool countIncludePad, float* dy, float* dx)
    {
        int OH = g.OutHeight, OW = g.OutWidth;
        for (long i = 0; i < (long)g.Planes * g.Height * g.Width; i++) dx[i] = 0;
        for (int plane = 0; plane < g.Planes; plane++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++)
                {
                    int inside = 0;
                    for (int i = 0; i < g.KernelH; i++)
                        for (int j = 0; j < g.KernelW; j++)
                        {
                            int ih = oh * g.StrideH - g.PadH + i, iw = ow * g.StrideW - g.PadW + j;
                            if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width) inside++;
                        }
                    if (inside == 0) continue;
                    float share = dy[((long)plane * OH + oh) * OW + ow] / (countIncludePad ? g.KernelH * g.KernelW : inside);
                    for (int i = 0; i < g.KernelH; i++)
                        for (int j = 0; j < g.KernelW; j++)
                        {
                            int ih = oh * g.StrideH - g.PadH + i, iw = ow * g.StrideW - g.PadW + j;
                            if (ih >= 0 && ih < g.Height && iw >= 0 && iw < g.Width)
                                dx[((long)plane * g.Height + ih) * g.Width + iw] += share;
                        }
                }
    }

    /// <summary>Input range [start, end) that adaptive pooling output <paramref name="o"/> of <paramref name="outSize"/> averages.</summary>
    internal static (int Start, int End) AdaptiveWindow(int o, int size, int outSize) =>
        ((int)((long)o * size / outSize), (int)(((long)(o + 1) * size + outSize - 1) / outSize));

    public void AdaptiveAvgPool2d(int planes, int height, int width, int outHeight, int outWidth, float* x, float* y)
    {
        for (int plane = 0; plane < planes; plane++)
            for (int oh = 0; oh < outHeight; oh++)
                for (int ow = 0; ow < outWidth; ow++)
                {
                    var (h0, h1) = AdaptiveWindow(oh, height, outHeight);
                    var (w0, w1) = AdaptiveWindow(ow, width, outWidth);
                    double sum = 0;
                    for (int ih = h0; ih < h1; ih++)
                        for (int iw = w0; iw < w1; iw++) sum += x[((long)plane * height + ih) * width + iw];
                    y[((long)plane * outHeight + oh) * outWidth + ow] = (float)(sum / ((h1 - h0) * (w1 - w0)));
                }
    }

    public void AdaptiveAvgPool2dBackward(int planes, int height, int width, int outHeight, int outWidth, float* dy, float* dx)
    {
        for (long i = 0; i < (long)planes * height * width; i++) dx[i] = 0;
        for (int plane = 0; plane < planes; plane++)
            for (int oh = 0; oh < outHeight; oh++)
                for (int ow = 0; ow < outWidth; ow++)
                {
                    var (h0, h1) = AdaptiveWindow(oh, height, outHeight);
                    var (w0, w1) = AdaptiveWindow(ow, width, outWidth);
                    float share = dy[((long)plane * outHeight + oh) * outWidth + ow] / ((h1 - h0) * (w1 - w0));
                    for (int ih = h0; ih < h1; ih++)
                        for (int iw = w0; iw < w1; iw++) dx[((long)plane * height + ih) * width + iw] += share;
                }
    }

    // ---------------------------------------------------------------- batch normalisation

    public void BatchNormStatistics(float* x, float* mean, float* variance, int batch, int channels, int spatial)
    {
        long count = (long)batch * spatial;
        for (int c = 0; c < channels; c++)
        {
            double sum = 0;
            for (int n = 0; n < batch; n++)
                for (int s = 0; s < spatial; s++) sum += x[((long)n * channels + c) * spatial + s];
            double m = sum / count, squares = 0;
            for (int n = 0; n < batch; n++)
                for (int s = 0; s < spatial; s++)
                {
                    double d = x[((long)n * channels + c) * spatial + s] - m;
                    squares += d * d;
                }
            mean[c] = (float)m;
            variance[c] = (float)(squares / count);
        }
    }

    public void BatchNorm(float* x, float* mean, float* rstd, float* w, float* b, float* residual, bool relu, float* y, int batch, int channels, int spatial)
    {
        for (int n = 0; n < batch; n++)
            for (int c = 0; c < channels; c++)
                for (int s = 0; s < spatial; s++)
                {
                    long i = ((long)n * channels + c) * spatial + s;
                    double normalized = (x[i] - (double)mean[c]) * rstd[c];
                    double v = normalized * (w == null ? 1 : w[c]) + (b == null ? 0 : b[c]) + (residual == null ? 0 : residual[i]);
                    y[i] = (float)(relu ? Math.Max(v, 0) : v);
                }
    }

    public void BatchNormBackward(float* dy, float* x, float* mean, float* rstd, float* w, float* reluOutput, float* dx, float* dResidual, float* dw, float* db,
        int batch, int channels, int spatial, bool batchStatistics)
    {
        long count = (long)batch * spatial;
        // The gradient reaching the normalisation: through the ReLU's mask.
        static double Through(float* dy, float* reluOutput, long i) => reluOutput == null || reluOutput[i] > 0 ? dy[i] : 0;
        for (int c = 0; c < channels; c++)
        {
            double dySum = 0, dyNormalizedSum = 0;
            for (int n = 0; n < batch; n++)
                for (int s = 0; s < spatial; s++)
                {
                    long i = ((long)n * channels + c) * spatial + s;
                    dySum += Through(dy, reluOutput, i);
                    dyNormalizedSum += Through(dy, reluOutput, i) * ((x[i] - (double)mean[c]) * rstd[c]);
                    if (dResidual != null) dResidual[i] = (float)Through(dy, reluOutput, i);
                }
            if (dw != null) dw[c] = (float)dyNormalizedSum;
            if (db != null) db[c] = (float)dySum;
            if (dx == null) continue;
            double scale = (w == null ? 1 : w[c]) * (double)rstd[c];
            for (int n = 0; n < batch; n++)
                for (int s = 0; s < spatial; s++)
                {
                    long i = ((long)n * channels + c) * spatial + s;
                    double g = Through(dy, reluOutput, i);
                    if (batchStatistics)
                        g -= dySum / count + (x[i] - (double)mean[c]) * rstd[c] * (dyNormalizedSum / count);
                    dx[i] = (float)(scale * g);
                }
        }
    }
}
