using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla.NN;

/// <summary>Which recurrence a layer runs, for <see cref="FusedRecurrence"/>.</summary>
internal enum RecurrentCellKind { RnnTanh, RnnRelu, Lstm, Gru }

/// <summary>
/// One layer in one direction of an RNN, LSTM or GRU as a single autograd node with its own backward through time
/// (what cuDNN and oneDNN do; the per-step graph of <see cref="RecurrentBase"/>'s plain path is the oracle it is tested
/// against). Forward: the input projection of all steps is one GEMM into a gates buffer (T, B, G·H); each step adds
/// h·W_hhᵀ + b_hh with one GEMM and runs the cell's point-wise kernel, which leaves the activated gates in that buffer
/// for the backward. Backward: per step the cell's backward kernel and one GEMM dGates·W_hh for the gradient of the
/// previous state; then dW_hh, dW_ih and dX are one GEMM each over all steps, the biases one column sum.
/// <para>Variable lengths follow packed sequences: at a padded step (t ≥ length) a row keeps its state, outputs zero,
/// and in the backward passes its state gradient straight through with zero gate gradients.</para>
/// </summary>
internal static unsafe class FusedRecurrence
{
    /// <summary>Runs the layer. <paramref name="input"/> (T, B, in); <paramref name="h0"/> (B, S) with S the state
    /// size (hidden, or an LSTM's projection size); <paramref name="c0"/> (B, H) for an LSTM, else null. Returns the
    /// output (T, B, S) and the final states (B, S) and (B, H) — views of one tensor that the node produces.</summary>
    public static (Tensor Output, Tensor Hidden, Tensor? Cell) Layer(RecurrentCellKind kind, Tensor input, Tensor inputWeight, Tensor? inputBias,
        Tensor hiddenWeight, Tensor? hiddenBias, Tensor? projectionWeight, Tensor h0, Tensor? c0, int[]? lengths, bool reverse)
    {
        var kernels = Tensor.KernelsFor("Fused recurrent layer", input, inputWeight, hiddenWeight, h0);
        var device = input.Device;
        bool lstm = kind == RecurrentCellKind.Lstm, gru = kind == RecurrentCellKind.Gru;
        int T = input.Size(0), B = input.Size(1), I = input.Size(2);
        int GH = hiddenWeight.Size(0), S = hiddenWeight.Size(1), H = lstm ? GH / 4 : gru ? GH / 3 : GH;
        long stepGates = (long)B * GH, stepState = (long)B * S, stepCell = (long)B * H;

        var x = input.Contiguous();
        var (wIh, wHh, wHr) = (inputWeight.Contiguous(), hiddenWeight.Contiguous(), projectionWeight?.Contiguous());
        var (bIh, bHh) = (inputBias?.Contiguous(), hiddenBias?.Contiguous());
        float* BiasOf(Tensor? bias) => bias == null ? null : bias.Data;
        var moves = new StepRows(kernels, device, lengths, T, B, Math.Max(S, H));

        // Saved for the backward: activated gates, the state entering each step, an LSTM's cells and pre-projection h.
        var gates = Tensor.Empty([T, B, GH], DType.Float32, device);
        var hiddenGates = gru ? Tensor.Empty([T, B, GH], DType.Float32, device) : null; // W_hh h + b_hh, kept apart for GRU's r∘(W_hn h + b_hn)
        var statesBefore = Tensor.Empty([T, B, S], DType.Float32, device);
        var cellsBefore = lstm ? Tensor.Empty([T, B, H], DType.Float32, device) : null;
        var cells = lstm ? Tensor.Empty([T, B, H], DType.Float32, device) : null;
        var unprojected = lstm && wHr != null ? Tensor.Empty([T, B, H], DType.Float32, device) : null;
        var hidden = h0.Contiguous().Clone();
        var cell = lstm ? c0!.Contiguous().Clone() : null;
        var packed = Tensor.Empty([(int)(T * stepState + stepState + (lstm ? stepCell : 0))], DType.Float32, device); // [output | h_T | c_T]
        float* y = packed.Data;

        kernels.Gemm(false, true, T * B, GH, I, x.Data, I, 0, wIh.Data, I, 0, gates.Data, GH, 0, 1, false, BiasOf(bIh));
        for (int s = 0; s < T; s++)
        {
            int t = reverse ? T - 1 - s : s;
            float* g = gates.Data + t * stepGates, hBefore = statesBefore.Data + t * stepState, yt = y + t * stepState;
            moves.Copy(hidden.Data, hBefore, stepState);
            if (gru)
            {
                float* hg = hiddenGates!.Data + t * stepGates;
                kernels.Gemm(false, true, B, GH, S, hBefore, S, 0, wHh.Data, S, 0, hg, GH, 0, 1, false, BiasOf(bHh));
                kernels.GruCell(g, hg, hBefore, yt, B, H);
            }
            else
            {
                kernels.Gemm(false, true, B, GH, S, hBefore, S, 0, wHh.Data, S, 0, g, GH, 0, 1, true, BiasOf(bHh));
                if (lstm)
                {
                    float* cBefore = cellsBefore!.Data + t * stepCell;
                    moves.Copy(cell!.Data, cBefore, stepCell);
                    float* hCell = unprojected == null ? yt : unprojected.Data + t * stepCell;
                    kernels.LstmCell(g, cBefore, cells!.Data + t * stepCell, hCell, B, H);
                    if (wHr != null) kernels.Gemm(false, true, B, S, H, hCell, H, 0, wHr.Data, H, 0, yt, S, 0, 1, false, null);
                }
                else
                {
                    if (kind == RecurrentCellKind.RnnTanh) kernels.Unary<Functions.Tanh>(0, g, g, stepGates);
                    else kernels.Unary<Functions.Relu>(0, g, g, stepGates);
                    moves.Copy(g, yt, stepGates);
                }
            }
            moves.CopyActive(t, yt, hidden.Data, S);
            if (lstm) moves.CopyActive(t, cells!.Data + t * stepCell, cell!.Data, H);
            moves.ClearInactive(t, yt, S);
        }
        moves.Copy(hidden.Data, y + T * stepState, stepState);
        if (lstm) moves.Copy(cell!.Data, y + T * stepState + stepState, stepCell);

        Tensor?[] inputs = [input, inputWeight, inputBias, hiddenWeight, hiddenBias, projectionWeight, h0, c0];
        if (GradMode.Needed(inputs.OfType<Tensor>().ToArray()))
        {
            packed.Record(lstm ? "Lstm" : gru ? "Gru" : "Rnn", inputs, grad =>
            {
                var dPacked = grad.Contiguous();
                float* dy = dPacked.Data;
                var dGates = Tensor.Empty([T, B, GH], DType.Float32, device);
                var dHiddenGates = gru ? Tensor.Empty([T, B, GH], DType.Float32, device) : dGates; // the gradient reaching W_hh h + b_hh
                var dh = Tensor.Empty([B, S], DType.Float32, device);
                var dhBefore = Tensor.Empty([B, S], DType.Float32, device);
                moves.Copy(dy + T * stepState, dh.Data, stepState);
                var dc = lstm ? Tensor.Empty([B, H], DType.Float32, device) : null;
                var dcBefore = lstm ? Tensor.Empty([B, H], DType.Float32, device) : null;
                if (lstm) moves.Copy(dy + T * stepState + stepState, dc!.Data, stepCell);
                var dUnprojected = unprojected != null ? Tensor.Empty([B, H], DType.Float32, device) : null;
                var dOutputs = unprojected != null ? Tensor.Empty([T, B, S], DType.Float32, device) : null; // dh at each step, for dW_hr
                for (int s = 0; s < T; s++)
                {
                    int t = reverse ? s : T - 1 - s;
                    float* g = gates.Data + t * stepGates, dg = dGates.Data + t * stepGates, dhg = dHiddenGates.Data + t * stepGates;
                    moves.AddActive(t, dy + t * stepState, dh.Data, S);
                    if (lstm)
                    {
                        float* dhCell = dh.Data;
                        if (dUnprojected != null)
                        {
                            float* dOut = dOutputs!.Data + t * stepState;
                            moves.Copy(dh.Data, dOut, stepState);
                            moves.ClearInactive(t, dOut, S);
                            kernels.Gemm(false, false, B, H, S, dh.Data, S, 0, wHr!.Data, H, 0, dUnprojected.Data, H, 0, 1, false, null);
                            dhCell = dUnprojected.Data;
                        }
                        kernels.LstmCellBackward(g, cellsBefore!.Data + t * stepCell, cells!.Data + t * stepCell, dhCell, dc!.Data, dg, dcBefore!.Data, B, H);
                        moves.Clear(dhBefore.Data, stepState);
                    }
                    else if (gru)
                        kernels.GruCellBackward(g, hiddenGates!.Data + t * stepGates, statesBefore.Data + t * stepState, dh.Data, dg, dhg, dhBefore.Data, B, H);
                    else
                    {
                        if (kind == RecurrentCellKind.RnnTanh) kernels.UnaryBackward<Functions.Tanh>(0, g, g, dh.Data, dg, stepGates);
                        else kernels.UnaryBackward<Functions.Relu>(0, g, g, dh.Data, dg, stepGates);
                        moves.Clear(dhBefore.Data, stepState);
                    }
                    moves.ClearInactive(t, dg, GH);
                    if (gru) moves.ClearInactive(t, dhg, GH);
                    moves.CopyInactive(t, dh.Data, dhBefore.Data, S);
                    if (lstm) moves.CopyInactive(t, dc!.Data, dcBefore!.Data, H);
                    kernels.Gemm(false, false, B, S, GH, dhg, GH, 0, wHh.Data, S, 0, dhBefore.Data, S, 0, 1, true, null);
                    (dh, dhBefore) = (dhBefore, dh);
                    if (lstm) (dc, dcBefore) = (dcBefore, dc);
                }

                var grads = new Tensor?[inputs.Length];
                int rows = T * B;
                if (inputs[0]!.RequiresGrad)
                {
                    var dx = Tensor.Empty([T, B, I], DType.Float32, device);
                    kernels.Gemm(false, false, rows, I, GH, dGates.Data, GH, 0, wIh.Data, I, 0, dx.Data, I, 0, 1, false, null);
                    grads[0] = dx;
                }
                grads[1] = inputWeight.RequiresGrad ? WeightGradient(kernels, dGates, x, GH, I, rows) : null;
                grads[2] = inputBias is { RequiresGrad: true } ? ColumnSums(kernels, dGates, GH, rows) : null;
                grads[3] = hiddenWeight.RequiresGrad ? WeightGradient(kernels, dHiddenGates, statesBefore, GH, S, rows) : null;
                grads[4] = hiddenBias is { RequiresGrad: true } ? ColumnSums(kernels, dHiddenGates, GH, rows) : null;
                grads[5] = projectionWeight is { RequiresGrad: true } ? WeightGradient(kernels, dOutputs!, unprojected!, S, H, rows) : null;
                grads[6] = h0.RequiresGrad ? dh : null;
                grads[7] = c0 is { RequiresGrad: true } ? dc : null;
                GC.KeepAlive(dPacked); GC.KeepAlive(dHiddenGates); GC.KeepAlive(dUnprojected);
                return grads;
            }, saved: [gates, hiddenGates, statesBefore, cellsBefore, cells, unprojected, x.IfCopyOf(input)]);
        }
        GC.KeepAlive(x); GC.KeepAlive(wIh); GC.KeepAlive(wHh); GC.KeepAlive(wHr); GC.KeepAlive(bIh); GC.KeepAlive(bHh);
        GC.KeepAlive(gates); GC.KeepAlive(hiddenGates); GC.KeepAlive(statesBefore); GC.KeepAlive(cellsBefore); GC.KeepAlive(cells);
        GC.KeepAlive(unprojected); GC.KeepAlive(hidden); GC.KeepAlive(cell);

        var output = packed.Narrow(0, 0, (int)(T * stepState)).View(T, B, S);
        var hFinal = packed.Narrow(0, (int)(T * stepState), (int)stepState).View(B, S);
        var cFinal = lstm ? packed.Narrow(0, (int)(T * stepState + stepState), (int)stepCell).View(B, H) : null;
        return (output, hFinal, cFinal);
    }

    /// <summary>
    /// The copies, sums and clears of state between the steps, and the row selections of packed sequences (a row of
    /// the batch whose sequence has ended keeps its state). In host memory these are span operations, row by row (the
    /// CPU path as fast as it was); on any other device they are the device's kernels on whole (B, width) blocks, a
    /// row selection being a product with a (B, 1) mask of the rows active at the step, so the number of launches
    /// does not grow with the batch.
    /// </summary>
    private sealed class StepRows
    {
        private readonly IKernelBackend _kernels;
        private readonly bool _host;
        private readonly int[]? _lengths;
        private readonly int _batch;
        private readonly Tensor? _active, _inactive; // (T, B) on the device: 1 where t < length, else 0; and 1 minus that
        private readonly Tensor? _scratch;           // (B, widest)

        public StepRows(IKernelBackend kernels, Device device, int[]? lengths, int steps, int batch, int widest)
        {
            (_kernels, _host, _lengths, _batch) = (kernels, device.IsCpu, lengths, batch);
            if (_host || lengths == null) return;
            var active = new float[steps * batch];
            for (int t = 0; t < steps; t++)
                for (int b = 0; b < batch; b++) active[t * batch + b] = t < lengths[b] ? 1f : 0f;
            _active = Tensor.FromArray(active, steps, batch).To(device);
            _inactive = Tensor.FromArray(active.Select(a => 1f - a).ToArray(), steps, batch).To(device);
            _scratch = Tensor.Empty([batch, widest], DType.Float32, device);
        }

        public void Copy(float* from, float* to, long n)
        {
            if (_host) new ReadOnlySpan<float>(from, (int)n).CopyTo(new Span<float>(to, (int)n));
            else _kernels.Copy(from, [1], to, [1], [checked((int)n)], accumulate: false);
        }

        /// <summary>to += from.</summary>
        public void Add(float* from, float* to, long n)
        {
            if (_host) System.Numerics.Tensors.TensorPrimitives.Add(new ReadOnlySpan<float>(from, (int)n), new ReadOnlySpan<float>(to, (int)n), new Span<float>(to, (int)n));
            else _kernels.Copy(from, [1], to, [1], [checked((int)n)], accumulate: true);
        }

        public void Clear(float* p, long n)
        {
            if (_host) new Span<float>(p, (int)n).Clear();
            else _kernels.Fill(p, 0, n);
        }

        private bool Active(int t, int b) => _lengths == null || t < _lengths[b];

        /// <summary>Row b of <paramref name="to"/> = row b of <paramref name="from"/> for the rows active at step t (every row
        /// without lengths); rows are <paramref name="width"/> wide.</summary>
        public void CopyActive(int t, float* from, float* to, int width)
        {
            if (_lengths == null) Copy(from, to, (long)_batch * width);
            else if (_host)
            {
                for (int b = 0; b < _batch; b++)
                    if (Active(t, b)) Copy(from + (long)b * width, to + (long)b * width, width);
            }
            else Blend(from, to, width, Mask(_active!, t), Mask(_inactive!, t));
        }

        /// <summary>The same for the rows that are not active at step t.</summary>
        public void CopyInactive(int t, float* from, float* to, int width)
        {
            if (_lengths == null) return;
            if (_host)
            {
                for (int b = 0; b < _batch; b++)
                    if (!Active(t, b)) Copy(from + (long)b * width, to + (long)b * width, width);
            }
            else Blend(from, to, width, Mask(_inactive!, t), Mask(_active!, t));
        }

        /// <summary>Row b of <paramref name="to"/> += row b of <paramref name="from"/> for the rows active at step t.</summary>
        public void AddActive(int t, float* from, float* to, int width)
        {
            if (_lengths == null) Add(from, to, (long)_batch * width);
            else if (_host)
            {
                for (int b = 0; b < _batch; b++)
                    if (Active(t, b)) Add(from + (long)b * width, to + (long)b * width, width);
            }
            else
            {
                RowProduct(from, Mask(_active!, t), _scratch!.Data, width);
                _kernels.Binary(BinaryOp.Add, to, [width, 1], _scratch.Data, [width, 1], to, [_batch, width]);
            }
        }

        /// <summary>Zeros the rows of <paramref name="p"/> that are not active at step t.</summary>
        public void ClearInactive(int t, float* p, int width)
        {
            if (_lengths == null) return;
            if (_host)
            {
                for (int b = 0; b < _batch; b++)
                    if (!Active(t, b)) Clear(p + (long)b * width, width);
            }
            else RowProduct(p, Mask(_active!, t), p, width);
        }

        private float* Mask(Tensor masks, int t) => masks.Data + (long)t * _batch;

        /// <summary>y[b, :] = x[b, :]·mask[b].</summary>
        private void RowProduct(float* x, float* mask, float* y, int width) =>
            _kernels.Binary(BinaryOp.Mul, x, [width, 1], mask, [1, 0], y, [_batch, width]);

        /// <summary>to = to·keep + from·take, row by row (keep and take are complementary 0/1 masks).</summary>
        private void Blend(float* from, float* to, int width, float* take, float* keep)
        {
            RowProduct(to, keep, to, width);
            RowProduct(from, take, _scratch!.Data, width);
            _kernels.Binary(BinaryOp.Add, to, [width, 1], _scratch.Data, [width, 1], to, [_batch, width]);
        }
    }

    /// <summary>dW (out, in) = Σ over all rows of dGatesᵀ·x: one GEMM over every step.</summary>
    private static Tensor WeightGradient(IKernelBackend kernels, Tensor dOut, Tensor x, int outFeatures, int inFeatures, int rows)
    {
        var dw = Tensor.Empty([outFeatures, inFeatures], DType.Float32, dOut.Device);
        kernels.Gemm(true, false, outFeatures, inFeatures, rows, dOut.Data, outFeatures, 0, x.Data, inFeatures, 0, dw.Data, inFeatures, 0, 1, false, null);
        return dw;
    }

    private static Tensor ColumnSums(IKernelBackend kernels, Tensor dOut, int features, int rows)
    {
        var db = Tensor.Empty([features], DType.Float32, dOut.Device);
        kernels.Sum(dOut.Data, db.Data, 1, rows, features);
        return db;
    }
}
