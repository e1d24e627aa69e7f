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
        input.RequireHost("The fused recurrent kernels (host code between the steps)");
        bool lstm = kind == RecurrentCellKind.Lstm, gru = kind == RecurrentCellKind.Gru;
        int T = input.Size(0), B = input.Size(1), I = input.Size(2);
        int GH = hiddenWeight.Size(0), S = hiddenWeight.Size(1), H = lstm ? GH / 4 : gru ? GH / 3 : GH;
        long stepGates = (long)B * GH, stepState = (long)B * S, stepCell = (long)B * H;

        var x = input.Contiguous();
        var (wIh, wHh, wHr) = (inputWeight.Contiguous(), hiddenWeight.Contiguous(), projectionWeight?.Contiguous());
        var (bIh, bHh) = (inputBias?.Contiguous(), hiddenBias?.Contiguous());
        float* BiasOf(Tensor? bias) => bias == null ? null : bias.Data;

        // Saved for the backward: activated gates, the state entering each step, an LSTM's cells and pre-projection h.
        var gates = Tensor.Empty([T, B, GH]);
        var hiddenGates = gru ? Tensor.Empty([T, B, GH]) : null; // W_hh h + b_hh, kept apart for GRU's r∘(W_hn h + b_hn)
        var statesBefore = Tensor.Empty([T, B, S]);
        var cellsBefore = lstm ? Tensor.Empty([T, B, H]) : null;
        var cells = lstm ? Tensor.Empty([T, B, H]) : null;
        var unprojected = lstm && wHr != null ? Tensor.Empty([T, B, H]) : null;
        var hidden = h0.Contiguous().Clone();
        var cell = lstm ? c0!.Contiguous().Clone() : null;
        var packed = Tensor.Empty([(int)(T * stepState + stepState + (lstm ? stepCell : 0))]); // [output | h_T | c_T]
        float* y = packed.Data;

        kernels.Gemm(false, true, T * B, GH, I, x.Data, I, 0, wIh.Data, I, 0, gates.Data, GH, 0, 1, false, BiasOf(bIh));
        for (int s = 0; s < T; s++)
        {
            int t = reverse ? T - 1 - s : s;
            float* g = gates.Data + t * stepGates, hBefore = statesBefore.Data + t * stepState, yt = y + t * stepState;
            Copy(hidden.Data, hBefore, stepState);
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
                    Copy(cell!.Data, cBefore, stepCell);
                    float* hCell = unprojected == null ? yt : unprojected.Data + t * stepCell;
                    kernels.LstmCell(g, cBefore, cells!.Data + t * stepCell, hCell, B, H);
                    if (wHr != null) kernels.Gemm(false, true, B, S, H, hCell, H, 0, wHr.Data, H, 0, yt, S, 0, 1, false, null);
                }
                else
                {
                    if (kind == RecurrentCellKind.RnnTanh) kernels.Unary<Functions.Tanh>(0, g, g, stepGates);
                    else kernels.Unary<Functions.Relu>(0, g, g, stepGates);
                    Copy(g, yt, stepGates);
                }
            }
            for (int b = 0; b < B; b++)
            {
                if (Active(lengths, t, b))
                {
                    Copy(yt + (long)b * S, hidden.Data + (long)b * S, S);
                    if (lstm) Copy(cells!.Data + t * stepCell + (long)b * H, cell!.Data + (long)b * H, H);
                }
                else new Span<float>(yt + (long)b * S, S).Clear();
            }
        }
        Copy(hidden.Data, y + T * stepState, stepState);
        if (lstm) Copy(cell!.Data, y + T * stepState + stepState, stepCell);

        Tensor?[] inputs = [input, inputWeight, inputBias, hiddenWeight, hiddenBias, projectionWeight, h0, c0];
        if (GradMode.Needed(inputs.OfType<Tensor>().ToArray()))
        {
            packed.Record(lstm ? "Lstm" : gru ? "Gru" : "Rnn", inputs, grad =>
            {
                var dPacked = grad.Contiguous();
                float* dy = dPacked.Data;
                var dGates = Tensor.Empty([T, B, GH]);
                var dHiddenGates = gru ? Tensor.Empty([T, B, GH]) : dGates; // the gradient reaching W_hh h + b_hh
                var dh = Tensor.Empty([B, S]);
                var dhBefore = Tensor.Empty([B, S]);
                Copy(dy + T * stepState, dh.Data, stepState);
                var dc = lstm ? Tensor.Empty([B, H]) : null;
                var dcBefore = lstm ? Tensor.Empty([B, H]) : null;
                if (lstm) Copy(dy + T * stepState + stepState, dc!.Data, stepCell);
                var dUnprojected = unprojected != null ? Tensor.Empty([B, H]) : null;
                var dOutputs = unprojected != null ? Tensor.Empty([T, B, S]) : null; // dh at each step, for dW_hr
                for (int s = 0; s < T; s++)
                {
                    int t = reverse ? s : T - 1 - s;
                    float* g = gates.Data + t * stepGates, dg = dGates.Data + t * stepGates, dhg = dHiddenGates.Data + t * stepGates;
                    for (int b = 0; b < B; b++)
                        if (Active(lengths, t, b))
                            Add(dy + t * stepState + (long)b * S, dh.Data + (long)b * S, S);
                    if (lstm)
                    {
                        float* dhCell = dh.Data;
                        if (dUnprojected != null)
                        {
                            float* dOut = dOutputs!.Data + t * stepState;
                            Copy(dh.Data, dOut, stepState);
                            for (int b = 0; b < B; b++)
                                if (!Active(lengths, t, b)) new Span<float>(dOut + (long)b * S, S).Clear();
                            kernels.Gemm(false, false, B, H, S, dh.Data, S, 0, wHr!.Data, H, 0, dUnprojected.Data, H, 0, 1, false, null);
                            dhCell = dUnprojected.Data;
                        }
                        kernels.LstmCellBackward(g, cellsBefore!.Data + t * stepCell, cells!.Data + t * stepCell, dhCell, dc!.Data, dg, dcBefore!.Data, B, H);
                        new Span<float>(dhBefore.Data, (int)stepState).Clear();
                    }
                    else if (gru)
                        kernels.GruCellBackward(g, hiddenGates!.Data + t * stepGates, statesBefore.Data + t * stepState, dh.Data, dg, dhg, dhBefore.Data, B, H);
                    else
                    {
                        if (kind == RecurrentCellKind.RnnTanh) kernels.UnaryBackward<Functions.Tanh>(0, g, g, dh.Data, dg, stepGates);
                        else kernels.UnaryBackward<Functions.Relu>(0, g, g, dh.Data, dg, stepGates);
                        new Span<float>(dhBefore.Data, (int)stepState).Clear();
                    }
                    for (int b = 0; b < B; b++)
                    {
                        if (Active(lengths, t, b)) continue;
                        new Span<float>(dg + (long)b * GH, GH).Clear();
                        if (gru) new Span<float>(dhg + (long)b * GH, GH).Clear();
                        Copy(dh.Data + (long)b * S, dhBefore.Data + (long)b * S, S);
                        if (lstm) Copy(dc!.Data + (long)b * H, dcBefore!.Data + (long)b * H, H);
                    }
                    kernels.Gemm(false, false, B, S, GH, dhg, GH, 0, wHh.Data, S, 0, dhBefore.Data, S, 0, 1, true, null);
                    (dh, dhBefore) = (dhBefore, dh);
                    if (lstm) (dc, dcBefore) = (dcBefore, dc);
                }

                var grads = new Tensor?[inputs.Length];
                int rows = T * B;
                if (inputs[0]!.RequiresGrad)
                {
                    var dx = Tensor.Empty([T, B, I]);
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

    private static bool Active(int[]? lengths, int t, int b) => lengths == null || t < lengths[b];

    private static void Copy(float* from, float* to, long n) => new ReadOnlySpan<float>(from, (int)n).CopyTo(new Span<float>(to, (int)n));

    private static void Add(float* from, float* to, int n) =>
        System.Numerics.Tensors.TensorPrimitives.Add(new ReadOnlySpan<float>(from, n), new ReadOnlySpan<float>(to, n), new Span<float>(to, n));

    /// <summary>dW (out, in) = Σ over all rows of dGatesᵀ·x: one GEMM over every step.</summary>
    private static Tensor WeightGradient(IKernelBackend kernels, Tensor dOut, Tensor x, int outFeatures, int inFeatures, int rows)
    {
        var dw = Tensor.Empty([outFeatures, inFeatures]);
        kernels.Gemm(true, false, outFeatures, inFeatures, rows, dOut.Data, outFeatures, 0, x.Data, inFeatures, 0, dw.Data, inFeatures, 0, 1, false, null);
        return dw;
    }

    private static Tensor ColumnSums(IKernelBackend kernels, Tensor dOut, int features, int rows)
    {
        var db = Tensor.Empty([features]);
        kernels.Sum(dOut.Data, db.Data, 1, rows, features);
        return db;
    }
}
