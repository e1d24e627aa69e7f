using Nabla.Autograd;
using Nabla.Kernels;
using Nabla.Kernels.Reference;
using Nabla.NN;
using Nabla.Tests.Kernels;
using Close = Nabla.Tests.Ops.Close;

namespace Nabla.Tests.NN;

/// <summary>
/// The fused recurrence (one autograd node per layer and direction, CPU kernels under each instruction set the machine
/// has) against the per-step graph of autograd ops run on the reference kernels: outputs, final states and every
/// gradient, for each cell kind with several layers, both directions, variable lengths, initial states, projections
/// and batch-first input. Hidden size 19 covers vector lanes and a scalar tail. The PyTorch parity of the default
/// (fused) path is <see cref="RecurrentParityTests"/>.
/// </summary>
[Collection(KernelSettingsCollection.Name)]
public class RecurrentFusedTests
{
    private const int Steps = 6, Batch = 3, Input = 7, Hidden = 19;

    private static readonly Dictionary<string, Func<RecurrentBase>> Layers = new()
    {
        ["rnn-tanh-2layer-bidirectional-batchfirst"] = () => new RNN(Input, Hidden, 2, batchFirst: true, bidirectional: true, generator: new Generator(1)),
        ["rnn-relu"] = () => new RNN(Input, Hidden, nonlinearity: RnnNonlinearity.Relu, generator: new Generator(2)),
        ["lstm-2layer-bidirectional"] = () => new LSTM(Input, Hidden, 2, bidirectional: true, generator: new Generator(3)),
        ["lstm-projection-2layer-bidirectional"] = () => new LSTM(Input, Hidden, 2, bidirectional: true, projSize: 5, generator: new Generator(4)),
        ["gru-2layer-bidirectional-batchfirst-nobias"] = () => new GRU(Input, Hidden, 2, bias: false, batchFirst: true, bidirectional: true, generator: new Generator(5)),
        ["gru"] = () => new GRU(Input, Hidden, generator: new Generator(6)),
    };

    public static TheoryData<Isa, string, bool> Cases()
    {
        var data = new TheoryData<Isa, string, bool>();
        foreach (var isa in TestIsas.Available)
            foreach (var name in Layers.Keys)
                foreach (bool packed in new[] { false, true })
                    data.Add(isa, name, packed);
        return data;
    }

    private sealed record Result(Tensor Output, Tensor[] Finals, Dictionary<string, Tensor> Gradients);

    /// <summary>Runs <paramref name="layer"/> on fixed inputs and a fixed random projection of its outputs as the loss.</summary>
    private static Result Run(RecurrentBase layer, int[]? lengths)
    {
        var g = new Generator(42);
        int directions = layer.Bidirectional ? 2 : 1, states = layer.NumLayers * directions;
        int stateSize = layer is LSTM { ProjSize: > 0 } lstm ? lstm.ProjSize : Hidden;
        var x = (layer.BatchFirst ? Tensor.Randn(g, Batch, Steps, Input) : Tensor.Randn(g, Steps, Batch, Input)).RequiresGrad_();
        var h0 = Tensor.Randn(g, states, Batch, stateSize).RequiresGrad_();
        var c0 = Tensor.Randn(g, states, Batch, Hidden).RequiresGrad_();
        Tensor output;
        Tensor[] finals;
        switch (layer)
        {
            case LSTM l: { var (o, h, c) = l.Forward(x, h0, c0, lengths); (output, finals) = (o, [h, c]); break; }
            case GRU l: { var (o, h) = l.Forward(x, h0, lengths); (output, finals) = (o, [h]); break; }
            default: { var (o, h) = ((RNN)layer).Forward(x, h0, lengths); (output, finals) = (o, [h]); break; }
        }
        var loss = output.Mul(Tensor.Randn(g, output.Shape.ToArray())).Sum();
        foreach (var final in finals) loss = loss.Add(final.Mul(Tensor.Randn(g, final.Shape.ToArray())).Sum());
        loss.Backward();
        var gradients = layer.NamedParameters().ToDictionary(p => p.Name, p => p.Parameter.Grad!);
        gradients["x"] = x.Grad!;
        gradients["h0"] = h0.Grad!;
        if (layer is LSTM) gradients["c0"] = c0.Grad!;
        return new Result(output, finals, gradients);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void FusedMatchesPerStepGraph(Isa isa, string name, bool packed)
    {
        int[]? lengths = packed ? [Steps, 2, 4] : null;
        var oracleLayer = Layers[name]();
        oracleLayer.UseFusedKernels = false;
        Result expected;
        using (Backend.Use(ReferenceBackend.Instance)) expected = Run(oracleLayer, lengths);

        var fusedLayer = Layers[name]();
        Assert.True(fusedLayer.UseFusedKernels);
        Result actual;
        using (CpuFeatures.Limit(isa)) actual = Run(fusedLayer, lengths);

        const double rtol = 2e-5, atol = 1e-6;
        Close.Assert(expected.Output, actual.Output, rtol, $"{name} output", atol);
        for (int k = 0; k < expected.Finals.Length; k++) Close.Assert(expected.Finals[k], actual.Finals[k], rtol, $"{name} final state {k}", atol);
        Assert.Equal(expected.Gradients.Keys.Order(), actual.Gradients.Keys.Order());
        foreach (var (what, gradient) in expected.Gradients) Close.Assert(gradient, actual.Gradients[what], rtol, $"{name} grad {what}", atol);
    }

    public static TheoryData<Isa, int> KernelSizes()
    {
        var data = new TheoryData<Isa, int>();
        foreach (var isa in TestIsas.Available)
            foreach (int hidden in new[] { 1, 7, 16, 17, 40 }) // below, at and around the 8- and 16-lane widths
                data.Add(isa, hidden);
        return data;
    }

    /// <summary>The four cell kernels of <see cref="Nabla.Kernels.Cpu.CpuBackend"/> against the reference backend's,
    /// element by element, on random pre-activations large enough to reach the saturated ends of σ and tanh.</summary>
    [Theory]
    [MemberData(nameof(KernelSizes))]
    public unsafe void CellKernelsMatchTheReference(Isa isa, int hidden)
    {
        const int batch = 5;
        var g = new Generator((ulong)hidden);
        Tensor Random(int gates, float scale = 3f) => Tensor.Randn(g, batch, gates * hidden).Mul(scale);
        var (lstmGates, gruInput, gruHidden) = (Random(4), Random(3), Random(3));
        var (cPrev, hPrev, dh, dc) = (Random(1), Random(1, 1f), Random(1, 1f), Random(1, 1f));

        float[][] RunAll(IKernelBackend kernels)
        {
            var (gates, gi) = (lstmGates.Clone(), gruInput.Clone());
            var (c, h, hg) = (Tensor.Zeros(batch, hidden), Tensor.Zeros(batch, hidden), Tensor.Zeros(batch, hidden));
            var (dGates, dcPrev, dInput, dHidden, dhPrev) = (Tensor.Zeros(batch, 4 * hidden), Tensor.Zeros(batch, hidden),
                Tensor.Zeros(batch, 3 * hidden), Tensor.Zeros(batch, 3 * hidden), Tensor.Zeros(batch, hidden));
            kernels.LstmCell(gates.Data, cPrev.Data, c.Data, h.Data, batch, hidden);
            kernels.LstmCellBackward(gates.Data, cPrev.Data, c.Data, dh.Data, dc.Data, dGates.Data, dcPrev.Data, batch, hidden);
            kernels.GruCell(gi.Data, gruHidden.Data, hPrev.Data, hg.Data, batch, hidden);
            kernels.GruCellBackward(gi.Data, gruHidden.Data, hPrev.Data, dh.Data, dInput.Data, dHidden.Data, dhPrev.Data, batch, hidden);
            return [gates.ToArray(), c.ToArray(), h.ToArray(), dGates.ToArray(), dcPrev.ToArray(), gi.ToArray(), hg.ToArray(),
                dInput.ToArray(), dHidden.ToArray(), dhPrev.ToArray()];
        }

        var expected = RunAll(ReferenceBackend.Instance);
        float[][] actual;
        using (CpuFeatures.Limit(isa)) actual = RunAll(Nabla.Kernels.Cpu.CpuBackend.Instance);
        string[] names = ["LSTM gates", "LSTM c", "LSTM h", "LSTM dGates", "LSTM dcPrev", "GRU gates", "GRU h", "GRU dInputGates", "GRU dHiddenGates", "GRU dhPrev"];
        for (int k = 0; k < names.Length; k++) Close.Assert(expected[k], actual[k], 1e-5, $"{names[k]} (hidden {hidden}, {isa})", 1e-6);
    }

    [Fact]
    public void FusedKernelsOfTheReferenceBackendMatchTheCpuOnes()
    {
        // The fused node's own logic (masking, GEMM layout, gradient bookkeeping) on the naive kernels, too.
        var lengths = new[] { Steps, 2, 4 };
        Result expected, actual;
        using (Backend.Use(ReferenceBackend.Instance)) expected = Run(Layers["lstm-projection-2layer-bidirectional"](), lengths);
        actual = Run(Layers["lstm-projection-2layer-bidirectional"](), lengths);
        Close.Assert(expected.Output, actual.Output, 2e-5, "output", 1e-6);
        foreach (var (what, gradient) in expected.Gradients) Close.Assert(gradient, actual.Gradients[what], 2e-5, $"grad {what}", 1e-6);
    }

    [Fact]
    public void FusedGruAndProjectedLstmGradientsMatchFiniteDifferences()
    {
        var gen = new Generator(21);
        var gru = new GRU(2, 3, bidirectional: true, generator: new Generator(22));
        var x = Tensor.Randn(gen, 4, 2, 2).RequiresGrad_();
        var h0 = Tensor.Randn(gen, 2, 2, 3).RequiresGrad_();
        var result = GradCheck.Check(t =>
        {
            var (output, hidden) = gru.Forward(t[0], t[1], lengths: [4, 3]);
            return Tensor.Concat([output.Reshape(-1), hidden.Reshape(-1)]);
        }, [x, h0, .. gru.Parameters()], eps: 1e-2f);
        Assert.True(result.Passed, "GRU: " + result);

        var lstm = new LSTM(2, 4, projSize: 2, generator: new Generator(23));
        var lh0 = Tensor.Randn(gen, 1, 2, 2).RequiresGrad_();
        var lc0 = Tensor.Randn(gen, 1, 2, 4).RequiresGrad_();
        result = GradCheck.Check(t =>
        {
            var (output, hidden, cell) = lstm.Forward(t[0], t[1], t[2], lengths: [2, 4]);
            return Tensor.Concat([output.Reshape(-1), hidden.Reshape(-1), cell.Reshape(-1)]);
        }, [x, lh0, lc0, .. lstm.Parameters()], eps: 1e-2f);
        Assert.True(result.Passed, "LSTM with projection: " + result);
    }

    [Fact]
    public void MaskGivesTheSameResultAsLengths()
    {
        var gru = new GRU(Input, Hidden, batchFirst: true, generator: new Generator(8));
        var x = Tensor.Randn(new Generator(9), Batch, Steps, Input);
        var mask = Tensor.FromArray(new float[]
        {
            1, 1, 1, 1, 1, 1,
            1, 1, 0, 0, 0, 0,
            1, 1, 1, 1, 0, 0,
        }, Batch, Steps);
        var (byLengths, hByLengths) = gru.Forward(x, null, lengths: [6, 2, 4]);
        var (byMask, hByMask) = gru.Forward(x, null, mask: mask);
        Assert.Equal(byLengths.ToArray(), byMask.ToArray());
        Assert.Equal(hByLengths.ToArray(), hByMask.ToArray());

        var holed = Tensor.FromArray(new float[] { 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }, Batch, Steps);
        Assert.Equal("GRU: mask row 0 has a step after padding; padding must come after each sequence's last step.",
            Assert.Throws<ArgumentException>(() => gru.Forward(x, null, mask: holed)).Message);
        Assert.Equal("GRU: mask must be (batch, time) = [3, 6], got [6, 3].",
            Assert.Throws<ArgumentException>(() => gru.Forward(x, null, mask: Tensor.Ones(Steps, Batch))).Message);
        Assert.Equal("GRU: give the lengths or a mask, not both.",
            Assert.Throws<ArgumentException>(() => gru.Forward(x, null, [6, 2, 4], mask)).Message);
    }

    [Fact]
    public void CellsStepLikeOneLayer()
    {
        var g = new Generator(31);
        var x = Tensor.Randn(g, Steps, Batch, Input).RequiresGrad_();
        var (lstmCell, gruCell, rnnCell) = (new LSTMCell(Input, Hidden, generator: new Generator(32)), new GRUCell(Input, Hidden, generator: new Generator(33)),
            new RNNCell(Input, Hidden, nonlinearity: RnnNonlinearity.Relu, generator: new Generator(34)));
        Assert.Equal(["weight_ih", "weight_hh", "bias_ih", "bias_hh"], lstmCell.NamedParameters().Select(p => p.Name));

        // The layers' per-step graph, with the cells' weights under the layers' names, is the oracle.
        static Dictionary<string, Tensor> AsLayer(Module cell) => cell.StateDict().ToDictionary(kv => kv.Key + "_l0", kv => kv.Value);
        var lstm = new LSTM(Input, Hidden) { UseFusedKernels = false };
        lstm.LoadStateDict(AsLayer(lstmCell));
        var gru = new GRU(Input, Hidden) { UseFusedKernels = false };
        gru.LoadStateDict(AsLayer(gruCell));
        var rnn = new RNN(Input, Hidden, nonlinearity: RnnNonlinearity.Relu) { UseFusedKernels = false };
        rnn.LoadStateDict(AsLayer(rnnCell));

        Tensor? h = null, c = null, hg = null, hr = null;
        var (lstmOut, gruOut, rnnOut) = (new Tensor[Steps], new Tensor[Steps], new Tensor[Steps]);
        for (int t = 0; t < Steps; t++)
        {
            (h, c) = lstmCell.Forward(x.Select(0, t), h, c);
            hg = gruCell.Forward(x.Select(0, t), hg);
            hr = rnnCell.Forward(x.Select(0, t), hr);
            (lstmOut[t], gruOut[t], rnnOut[t]) = (h, hg, hr);
        }
        var cellsLoss = Tensor.Stack(lstmOut, 0).Sum().Add(Tensor.Stack(gruOut, 0).Sum()).Add(Tensor.Stack(rnnOut, 0).Sum());
        cellsLoss.Backward();
        var cellGrad = x.Grad!.ToArray();
        x.Grad = null;
        var layersLoss = lstm.Forward(x).Sum().Add(gru.Forward(x).Sum()).Add(rnn.Forward(x).Sum());
        layersLoss.Backward();
        Close.Assert(layersLoss.ToArray(), cellsLoss.ToArray(), 1e-5, "loss");
        Close.Assert(x.Grad!.ToArray(), cellGrad, 1e-5, "grad x", 1e-6);
        Close.Assert(lstm.StateDict()["weight_hh_l0"].Grad!, lstmCell.StateDict()["weight_hh"].Grad!, 1e-5, "LSTM grad weight_hh", 1e-6);

        var single = gruCell.Forward(x.Select(0, 0).Select(0, 1));
        Assert.Equal([Hidden], single.Shape.ToArray());
        Assert.Equal("LSTMCell: cx must be [3, 19] like the input, got [19].",
            Assert.Throws<ArgumentException>(() => lstmCell.Forward(x.Select(0, 0), null, Tensor.Zeros(Hidden))).Message);
    }

    [Fact]
    public void StepByStepInferenceCarriesTheState()
    {
        var lstm = new LSTM(Input, Hidden, 2, generator: new Generator(41));
        var x = Tensor.Randn(new Generator(42), Steps, 1, Input);
        using var _ = GradMode.NoGrad();
        var whole = lstm.Forward(x, null, null).Output;
        Tensor? h = null, c = null;
        for (int t = 0; t < Steps; t++)
        {
            var (output, hn, cn) = lstm.Forward(x.Narrow(0, t, 1), h, c);
            (h, c) = (hn, cn);
            Close.Assert(whole.Narrow(0, t, 1), output, 1e-6, $"step {t}", 1e-7);
        }
    }
}
