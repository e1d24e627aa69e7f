using Nabla.Autograd;
using Nabla.Kernels;
using Nabla.Kernels.Cpu;
using Nabla.Kernels.Reference;

namespace Nabla.Tests.Ops;

/// <summary>
/// The optimised convolution, pooling and batch-norm kernels against the reference kernels on random shapes
/// (strides, paddings, dilations, odd widths that leave vector tails), under each instruction set.
/// </summary>
[Collection(Nabla.Tests.Kernels.KernelSettingsCollection.Name)]
public unsafe class ConvolutionKernelTests
{
    public static TheoryData<Isa> Isas => Nabla.Tests.Kernels.TestIsas.Theory();

    private static readonly IKernelBackend Cpu = CpuBackend.Instance, Reference = ReferenceBackend.Instance;

    private static Tensor Randn(Random random, long count) => Tensor.Randn(new Generator((ulong)random.Next()), (int)count);

    /// <summary>A random geometry whose windows fit; pooling keeps the padding within half the window, as PyTorch requires.</summary>
    private static Conv2dGeometry RandomGeometry(Random r, bool pooling, bool depthwise = false)
    {
        while (true)
        {
            int kh = r.Next(1, 5), kw = r.Next(1, 5), sh = r.Next(1, 4), sw = r.Next(1, 4);
            int dh = pooling && r.Next(2) == 0 ? 1 : r.Next(1, 3), dw = r.Next(1, 3);
            int ph = r.Next(0, pooling ? kh / 2 + 1 : kh + 1), pw = r.Next(0, pooling ? kw / 2 + 1 : kw + 1);
            // Some rows long enough for several full vectors, some shorter than one.
            int h = r.Next(1, 14), w = r.Next(3) == 0 ? r.Next(30, 75) : r.Next(1, 20);
            int batch = r.Next(1, 4), channels = r.Next(1, 5);
            int outChannels = depthwise ? channels * r.Next(1, 3) : channels;
            var g = new Conv2dGeometry(batch, channels, h, w, outChannels, kh, kw, sh, sw, ph, pw, dh, dw, channels);
            if (g.OutHeight >= 1 && g.OutWidth >= 1) return g;
        }
    }

    private static void BothBackends(Isa isa, Action<IKernelBackend, bool> run)
    {
        run(Reference, true);
        using (CpuFeatures.Limit(isa)) run(Cpu, false);
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Col2ImMatchesReference(Isa isa)
    {
        var random = new Random(1);
        for (int trial = 0; trial < 40; trial++)
        {
            var g = RandomGeometry(random, pooling: false);
            var col = Randn(random, (long)g.Planes * g.KernelH * g.KernelW * g.OutHeight * g.OutWidth);
            var expected = Tensor.Empty([g.Planes * g.Height * g.Width]);
            var actual = Tensor.Empty([g.Planes * g.Height * g.Width]);
            BothBackends(isa, (backend, isReference) => backend.Col2Im(g, col.Data, (isReference ? expected : actual).Data));
            Close.Assert(expected, actual, 1e-6, $"col2im {g}");
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void DepthwiseKernelsMatchReference(Isa isa)
    {
        var random = new Random(2);
        for (int trial = 0; trial < 40; trial++)
        {
            var g = RandomGeometry(random, pooling: false, depthwise: true);
            AssertConvolutionKernelsMatchReference(isa, g, random, (long)g.OutChannels * g.KernelH * g.KernelW, withBias: trial % 2 == 0, "depthwise",
                (backend, x, w, bias, dy, y, dx, dw) =>
                {
                    backend.DepthwiseConv2d(g, x, w, bias, y);
                    backend.DepthwiseConv2dBackwardInput(g, dy, w, dx);
                    backend.DepthwiseConv2dBackwardWeight(g, dy, x, dw);
                });
        }
    }

    /// <summary>The direct convolution's three kernels on random shapes (strides 1 to 3): 1–6 input channels, output channels
    /// that leave a partial block of 4, kernels from 1×1 to 5×5 with any padding below the kernel size, planes from
    /// 1×1 to wider than several vectors, and batches that split into several chunks; then strided rows, and 70
    /// channels (the position tiles' passes over blocks of input channels).</summary>
    [Theory]
    [MemberData(nameof(Isas))]
    public void DirectKernelsMatchReference(Isa isa)
    {
        var random = new Random(12);
        for (int trial = 0; trial < 40; trial++)
        {
            int kh = random.Next(1, 6), kw = random.Next(1, 6), stride = trial % 3 == 2 ? random.Next(2, 4) : 1;
            int h = random.Next(1, 16), w = random.Next(3) == 0 ? random.Next(30, 70) : random.Next(1, 20);
            var g = new Conv2dGeometry(random.Next(1, 7), random.Next(1, 7), h, w, random.Next(1, 10), kh, kw, stride, stride,
                random.Next(0, kh), random.Next(0, kw), 1, 1, 1);
            if (g.OutHeight < 1 || g.OutWidth < 1) continue;
            Assert.True(g.SuitsDirect);
            AssertDirectKernelsMatchReference(isa, g, random, withBias: trial % 2 == 0);
        }
        // Stride 2 on rows of an even width of at least 16, which the grid takes apart into its two phases 16 inputs at
        // a time (the last block overlapping the one before where the width is no multiple of 16), with either padding parity.
        foreach (var (w, pad) in new[] { (16, 0), (28, 1), (30, 0), (34, 1) })
            AssertDirectKernelsMatchReference(isa, new Conv2dGeometry(2, 3, 9, w, 5, 3, 3, 2, 2, pad, pad, 1, 1, 1), random, withBias: true);
        // More input channels than one pass of the position tiles takes (32), with a partial last block: the forward's
        // 70 inputs, and the input gradient's 70 outputs.
        foreach (var (inChannels, outChannels) in new[] { (70, 12), (12, 70) })
            AssertDirectKernelsMatchReference(isa, new Conv2dGeometry(2, inChannels, 9, 20, outChannels, 3, 3, 1, 1, 1, 1, 1, 1, 1), random,
                withBias: true);
    }

    /// <summary>The direct forward, input gradient and weight gradient of <paramref name="g"/> on random data, fast
    /// against the reference.</summary>
    private static void AssertDirectKernelsMatchReference(Isa isa, Conv2dGeometry g, Random random, bool withBias) =>
        AssertConvolutionKernelsMatchReference(isa, g, random, (long)g.OutChannels * g.Channels * g.KernelH * g.KernelW, withBias, "direct",
            (backend, x, w, bias, dy, y, dx, dw) =>
            {
                backend.DirectConv2d(g, x, w, bias, y);
                backend.DirectConv2dBackwardInput(g, dy, w, dx);
                backend.DirectConv2dBackwardWeight(g, dy, x, dw);
            });

    private unsafe delegate void ConvolutionKernels(IKernelBackend backend, float* x, float* w, float* bias, float* dy, float* y, float* dx, float* dw);

    /// <summary>A convolution's forward, input gradient and weight gradient (<paramref name="run"/>) on random x, weight
    /// (<paramref name="weightCount"/> values), bias and dy: fast against the reference.</summary>
    private static void AssertConvolutionKernelsMatchReference(Isa isa, Conv2dGeometry g, Random random, long weightCount, bool withBias, string what,
        ConvolutionKernels run)
    {
        long inCount = (long)g.Planes * g.Height * g.Width, outCount = (long)g.Batch * g.OutChannels * g.OutHeight * g.OutWidth;
        var x = Randn(random, inCount);
        var weight = Randn(random, weightCount);
        var bias = withBias ? Randn(random, g.OutChannels) : null;
        var dy = Randn(random, outCount);
        var results = new Tensor[2, 3];
        BothBackends(isa, (backend, isReference) =>
        {
            int k = isReference ? 0 : 1;
            var (y, dx, dw) = (Tensor.Empty([(int)outCount]), Tensor.Empty([(int)inCount]), Tensor.Empty([weight.Count]));
            run(backend, x.Data, weight.Data, bias == null ? null : bias.Data, dy.Data, y.Data, dx.Data, dw.Data);
            (results[k, 0], results[k, 1], results[k, 2]) = (y, dx, dw);
        });
        Close.Assert(results[0, 0], results[1, 0], 1e-5, $"{what} y {g}");
        Close.Assert(results[0, 1], results[1, 1], 1e-5, $"{what} dx {g}");
        Close.Assert(results[0, 2], results[1, 2], 1e-5, $"{what} dw {g}");
    }

    /// <summary>The direct kernels with 8–40 channels, where the weight gradient and the strided input gradient mostly
    /// take the channel-last kernels (copies transposed in registers by blocks of 8 channels, plus a remainder), with
    /// widths that leave a block of positions over, output channels that leave a partial tile, strides 1 to 3,
    /// non-square kernels, and batches of several chunks (the 16-channel 40×40 planes keep a chunk to one image).</summary>
    [Theory]
    [MemberData(nameof(Isas))]
    public void DirectKernelsMatchReferenceOnChannelBlocks(Isa isa)
    {
        var random = new Random(14);
        for (int trial = 0; trial < 12; trial++)
        {
            int kh = new[] { 3, 1, 5, 3 }[trial % 4], kw = new[] { 3, 1, 3, 2 }[trial % 4], stride = 1 + trial % 3;
            int channels = new[] { 8, 16, 19, 40 }[random.Next(4)], outChannels = new[] { 5, 16, 20 }[random.Next(3)];
            int h = random.Next(5, 13), w = random.Next(9, 30);
            if (trial == 11) (channels, h, w) = (16, 40, 40);
            var g = new Conv2dGeometry(random.Next(2, 12), channels, h, w, outChannels, kh, kw, stride, stride,
                random.Next(0, kh), random.Next(0, kw), 1, 1, 1);
            if (g.OutHeight < 1 || g.OutWidth < 1) continue;
            AssertDirectKernelsMatchReference(isa, g, random, withBias: false);
        }
    }

    /// <summary>The direct kernels on the shapes where the AVX-512 path tiles over output channels (stride-1
    /// correlations with 32 or 64 output channels and rows of 7–14 outputs: ResNet-20's later stages), including a
    /// width that is no multiple of 7 (an overlapping last tile), stride-2 convolutions with 32 channels (the input
    /// gradient's channel-last scatter on whole 8-channel blocks), 1×1 to 5×5 kernels, and rows of 7 and 14 (the tiles'
    /// blocks of input channels); the other ISAs run their usual tiles.</summary>
    [Theory]
    [MemberData(nameof(Isas))]
    public void DirectChannelTilesMatchReference(Isa isa)
    {
        var random = new Random(13);
        for (int trial = 0; trial < 16; trial++)
        {
            int k = new[] { 3, 3, 1, 5 }[trial % 4], stride = trial % 3 == 2 ? 2 : 1, pad = random.Next(0, k);
            int outChannels = trial % 2 == 0 ? 32 : 64, inChannels = stride == 2 ? 32 : new[] { 3, 17, 32 }[random.Next(3)];
            int h = random.Next(3, 16), w = random.Next(7, 15) * stride + k - 1 - 2 * pad;
            var g = new Conv2dGeometry(random.Next(1, 5), inChannels, h + k, Math.Max(w, 1), stride == 2 ? inChannels : outChannels, k, k,
                stride, stride, pad, pad, 1, 1, 1);
            if (g.OutHeight < 1 || g.OutWidth < 1) continue;
            AssertDirectKernelsMatchReference(isa, g, random, withBias: trial % 2 == 0);
        }
        // Rows of 7 and 14 outputs, where the channel tiles take the input channels in blocks of 16 (the forward's
        // inputs, the input gradient's output channels), with a partial last block (33), in tiles of two and of
        // four vectors of output channels (32 and 64).
        foreach (var (inChannels, outChannels, width) in new[] { (33, 32, 14), (33, 64, 7), (32, 64, 14), (64, 32, 7), (32, 48, 14) })
            AssertDirectKernelsMatchReference(isa, new Conv2dGeometry(2, inChannels, 5, width, outChannels, 3, 3, 1, 1, 1, 1, 1, 1, 1),
                random, withBias: true);
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void MaxPoolKernelsMatchReference(Isa isa)
    {
        var random = new Random(3);
        for (int trial = 0; trial < 40; trial++)
        {
            var g = RandomGeometry(random, pooling: true);
            // Every fourth trial the 2×2 stride-2 window that has its own kernel, on planes of odd and even sizes.
            if (trial % 4 == 3) g = Conv2dGeometry.Pooling(g.Batch, g.Channels, random.Next(2, 15), random.Next(2, 40), 2, 2, 2, 2, 0, 0);
            long inCount = (long)g.Planes * g.Height * g.Width, outCount = (long)g.Planes * g.OutHeight * g.OutWidth;
            var x = Randn(random, inCount);
            var values = x.AsSpan();
            for (int i = 0; i < values.Length; i++)
            {
                // Ties (rounded values), NaNs and -∞ all have rules for which position wins.
                values[i] = MathF.Round(values[i] * 2) / 2;
                if (trial % 5 == 1 && random.Next(20) == 0) values[i] = float.NaN;
                if (trial % 5 == 2) values[i] = random.Next(3) == 0 ? float.NegativeInfinity : values[i];
            }
            var dy = Randn(random, outCount);
            var y = new Tensor[2];
            var argmax = new int[2][];
            var dx = new Tensor[2];
            BothBackends(isa, (backend, isReference) =>
            {
                int k = isReference ? 0 : 1;
                y[k] = Tensor.Empty([(int)outCount]);
                var index = Tensor.Empty([(int)outCount], DType.Int32);
                dx[k] = Tensor.Empty([(int)inCount]);
                backend.MaxPool2d(g, x.Data, y[k].Data, index.IntData);
                argmax[k] = index.ToIntArray();
                // Both backwards route through the reference's indices, so a wrong index fails only the index check.
                var routed = Tensor.FromArray(argmax[0]);
                backend.MaxPool2dBackward(g, dy.Data, routed.IntData, dx[k].Data);
            });
            Close.Assert(y[0], y[1], 0, $"max pool y {g}");
            Assert.True(argmax[0].SequenceEqual(argmax[1]), $"max pool argmax {g}");
            Close.Assert(dx[0], dx[1], 1e-6, $"max pool dx {g}");
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void AvgPoolKernelsMatchReference(Isa isa)
    {
        var random = new Random(4);
        for (int trial = 0; trial < 40; trial++)
        {
            var g = RandomGeometry(random, pooling: true) with { DilationH = 1, DilationW = 1 };
            if (g.OutHeight < 1 || g.OutWidth < 1) continue;
            bool countIncludePad = trial % 2 == 0;
            long inCount = (long)g.Planes * g.Height * g.Width, outCount = (long)g.Planes * g.OutHeight * g.OutWidth;
            var x = Randn(random, inCount);
            var dy = Randn(random, outCount);
            var results = new Tensor[2, 2];
            BothBackends(isa, (backend, isReference) =>
            {
                int k = isReference ? 0 : 1;
                var (y, dx) = (Tensor.Empty([(int)outCount]), Tensor.Empty([(int)inCount]));
                backend.AvgPool2d(g, countIncludePad, x.Data, y.Data);
                backend.AvgPool2dBackward(g, countIncludePad, dy.Data, dx.Data);
                (results[k, 0], results[k, 1]) = (y, dx);
            });
            Close.Assert(results[0, 0], results[1, 0], 1e-6, $"avg pool y {g} include pad {countIncludePad}");
            Close.Assert(results[0, 1], results[1, 1], 1e-6, $"avg pool dx {g} include pad {countIncludePad}");
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void AdaptiveAvgPoolKernelsMatchReference(Isa isa)
    {
        var random = new Random(5);
        for (int trial = 0; trial < 30; trial++)
        {
            int planes = random.Next(1, 7), h = random.Next(1, 12), w = random.Next(1, 12), oh = random.Next(1, 8), ow = random.Next(1, 8);
            var x = Randn(random, planes * h * w);
            var dy = Randn(random, planes * oh * ow);
            var results = new Tensor[2, 2];
            BothBackends(isa, (backend, isReference) =>
            {
                int k = isReference ? 0 : 1;
                var (y, dx) = (Tensor.Empty([planes * oh * ow]), Tensor.Empty([planes * h * w]));
                backend.AdaptiveAvgPool2d(planes, h, w, oh, ow, x.Data, y.Data);
                backend.AdaptiveAvgPool2dBackward(planes, h, w, oh, ow, dy.Data, dx.Data);
                (results[k, 0], results[k, 1]) = (y, dx);
            });
            Close.Assert(results[0, 0], results[1, 0], 1e-6, $"adaptive pool y {planes}×{h}×{w} → {oh}×{ow}");
            Close.Assert(results[0, 1], results[1, 1], 1e-6, $"adaptive pool dx {planes}×{h}×{w} → {oh}×{ow}");
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void BatchNormKernelsMatchReference(Isa isa)
    {
        var random = new Random(6);
        for (int trial = 0; trial < 30; trial++)
        {
            int batch = random.Next(1, 5), channels = random.Next(1, 6), spatial = random.Next(1, 80);
            bool batchStatistics = trial % 2 == 0, affine = trial % 3 != 0;
            // ResNet's epilogue on some trials: relu(bn(x) + residual), or either part alone.
            bool relu = trial % 4 >= 2, withResidual = trial % 5 >= 2;
            int count = batch * channels * spatial;
            // An offset far from zero: the statistics must not lose the small variance to cancellation.
            var x = Randn(random, count).Mul(0.5f).Add(3f);
            var dy = Randn(random, count);
            var w = affine ? Randn(random, channels) : null;
            var b = affine ? Randn(random, channels) : null;
            var mean = Tensor.Empty([channels]);
            var variance = Tensor.Empty([channels]);
            Reference.BatchNormStatistics(x.Data, mean.Data, variance.Data, batch, channels, spatial);
            var rstd = variance.Add(1e-5f).Pow(-0.5f);
            var residual = withResidual ? Randn(random, count) : null;
            // Both backwards read the reference's output for the ReLU's mask, so that values within rounding of 0 agree.
            var reluOutput = Tensor.Empty([count]);
            Reference.BatchNorm(x.Data, mean.Data, rstd.Data, w == null ? null : w.Data, b == null ? null : b.Data, residual == null ? null : residual.Data,
                relu, reluOutput.Data, batch, channels, spatial);
            var results = new Tensor[2, 7];
            BothBackends(isa, (backend, isReference) =>
            {
                int k = isReference ? 0 : 1;
                var (m, v) = (Tensor.Empty([channels]), Tensor.Empty([channels]));
                backend.BatchNormStatistics(x.Data, m.Data, v.Data, batch, channels, spatial);
                var y = Tensor.Empty([count]);
                backend.BatchNorm(x.Data, mean.Data, rstd.Data, w == null ? null : w.Data, b == null ? null : b.Data, residual == null ? null : residual.Data,
                    relu, y.Data, batch, channels, spatial);
                var (dx, dw, db, dr) = (Tensor.Empty([count]), Tensor.Empty([channels]), Tensor.Empty([channels]), Tensor.Zeros(count));
                backend.BatchNormBackward(dy.Data, x.Data, mean.Data, rstd.Data, w == null ? null : w.Data, relu ? reluOutput.Data : null, dx.Data,
                    withResidual ? dr.Data : null, dw.Data, db.Data, batch, channels, spatial, batchStatistics);
                (results[k, 0], results[k, 1], results[k, 2], results[k, 3], results[k, 4], results[k, 5], results[k, 6]) = (m, v, y, dx, dw, db, dr);
            });
            string what = $"batch norm ({batch}, {channels}, {spatial}) batch statistics {batchStatistics} residual {withResidual} relu {relu}";
            string[] names = ["mean", "variance", "y", "dx", "dw", "db", "residual gradient"];
            for (int i = 0; i < names.Length; i++) Close.Assert(results[0, i], results[1, i], 1e-5, $"{what} {names[i]}");
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Conv2dOpMatchesReferenceBackend(Isa isa)
    {
        var random = new Random(7);
        for (int trial = 0; trial < 25; trial++)
        {
            var g = RandomGeometry(random, pooling: false);
            int groups = new[] { 1, 1, 2, 3 }[random.Next(4)];
            int inChannels = groups * random.Next(1, 4), outChannels = groups * random.Next(1, 4);
            var gen = new Generator((ulong)trial);
            var x = Tensor.Randn(gen, g.Batch, inChannels, g.Height, g.Width).RequiresGrad_();
            var w = Tensor.Randn(gen, outChannels, inChannels / groups, g.KernelH, g.KernelW).RequiresGrad_();
            var b = trial % 2 == 0 ? Tensor.Randn(gen, outChannels).RequiresGrad_() : null;
            Tensor? dy = null;
            Tensor[] Run()
            {
                x.Grad = w.Grad = null;
                if (b != null) b.Grad = null;
                var y = F.Conv2d(x, w, b, (g.StrideH, g.StrideW), (g.PadH, g.PadW), (g.DilationH, g.DilationW), groups);
                dy ??= Tensor.Randn(gen, y.Shape.ToArray());
                y.Backward(dy);
                return b == null ? [y.Detach(), x.Grad!, w.Grad!] : [y.Detach(), x.Grad!, w.Grad!, b.Grad!];
            }
            Tensor[] expected;
            using (Backend.Use(Reference)) expected = Run();
            Tensor[] actual;
            using (CpuFeatures.Limit(isa)) actual = Run();
            string[] names = ["y", "dx", "dw", "db"];
            for (int i = 0; i < expected.Length; i++)
                Close.Assert(expected[i], actual[i], 1e-5, $"conv2d {names[i]} {g} in {inChannels} out {outChannels} groups {groups}");
        }
    }

    /// <summary>A random geometry that runs as Winograd F(2×2, 3×3): 3×3, stride 1, padding 0 to 2 on each side,
    /// images from 1×1 (a single tile hanging over every edge) to rows of several full vectors of tiles.</summary>
    private static Conv2dGeometry RandomWinogradGeometry(Random r, int channels, int outChannels)
    {
        while (true)
        {
            int h = r.Next(1, 12), w = r.Next(3) == 0 ? r.Next(30, 80) : r.Next(1, 20);
            var g = new Conv2dGeometry(r.Next(1, 4), channels, h, w, outChannels, 3, 3, 1, 1, r.Next(0, 3), r.Next(0, 3), 1, 1, 1);
            if (g.OutHeight >= 1 && g.OutWidth >= 1 && g.SuitsWinograd) return g;
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void WinogradTransformsMatchReference(Isa isa)
    {
        var random = new Random(9);
        for (int trial = 0; trial < 40; trial++)
        {
            var g = RandomWinogradGeometry(random, random.Next(1, 5), random.Next(1, 5));
            long inCount = (long)g.Planes * g.Height * g.Width, outCount = (long)g.Batch * g.OutChannels * g.OutHeight * g.OutWidth;
            long inTiles = Winograd.TileElements * Winograd.SliceStride(g.Channels, g.Tiles);
            long outTiles = Winograd.TileElements * Winograd.SliceStride(g.OutChannels, g.Tiles);
            var x = Randn(random, inCount);
            var m = Randn(random, outTiles);
            var dy = Randn(random, outCount);
            var bias = trial % 2 == 0 ? Randn(random, g.OutChannels) : null;
            int pairs = g.OutChannels * g.Channels;
            var w = Randn(random, pairs * 9);
            var du = Randn(random, Winograd.TileElements * pairs);
            var results = new Tensor[2, 6];
            BothBackends(isa, (backend, isReference) =>
            {
                int k = isReference ? 0 : 1;
                // Slice padding is never written: start both from the same zeros so that it compares equal.
                var (v, y, dm) = (Tensor.Zeros((int)inTiles), Tensor.Empty([(int)outCount]), Tensor.Zeros((int)outTiles));
                backend.WinogradInput(g, x.Data, v.Data);
                backend.WinogradOutput(g, m.Data, bias == null ? null : bias.Data, y.Data);
                backend.WinogradOutputAdjoint(g, dy.Data, dm.Data);
                var (u, uFlipped, dw) = (Tensor.Empty([du.Count]), Tensor.Empty([du.Count]), Tensor.Empty([w.Count]));
                backend.WinogradKernels(g, w.Data, u.Data, inputGradient: false);
                backend.WinogradKernels(g, w.Data, uFlipped.Data, inputGradient: true);
                backend.WinogradKernelGradient(g, du.Data, dw.Data);
                (results[k, 0], results[k, 1], results[k, 2], results[k, 3], results[k, 4], results[k, 5]) = (v, y, dm, u, uFlipped, dw);
            });
            Close.Assert(results[0, 3], results[1, 3], 1e-6, $"winograd kernel transform {g}");
            Close.Assert(results[0, 4], results[1, 4], 1e-6, $"winograd input-gradient kernel transform {g}");
            Close.Assert(results[0, 5], results[1, 5], 1e-6, $"winograd kernel gradient {g}");
            // Tile buffers are mostly slice padding (zeros), which shrinks their rms: an absolute floor for the sums
            // of O(1) values that cancel.
            Close.Assert(results[0, 0], results[1, 0], 1e-6, $"winograd input transform {g}", atol: 1e-6);
            Close.Assert(results[0, 1], results[1, 1], 1e-6, $"winograd output transform {g} bias {bias != null}");
            Close.Assert(results[0, 2], results[1, 2], 1e-6, $"winograd output adjoint {g}", atol: 1e-6);
        }
    }

    /// <summary>Conv2d on shapes that take the Winograd path, against the convolution spelled out as a matrix product
    /// with the patch view (pad → Unfold → Unfold) and differentiated by autograd: outputs and all three gradients,
    /// with channel counts that are no multiple of a vector, images smaller than a tile, rows of many tiles.</summary>
    [Theory]
    [MemberData(nameof(Isas))]
    public void Conv2dWinogradMatchesThePatchMatrixProduct(Isa isa)
    {
        var random = new Random(10);
        for (int trial = 0; trial < 16; trial++)
        {
            int channels = new[] { 16, 17, 24, 33 }[random.Next(4)], outChannels = new[] { 16, 19, 32 }[random.Next(3)];
            var g = RandomWinogradGeometry(random, channels, outChannels);
            var gen = new Generator((ulong)trial + 50);
            var x = Tensor.Randn(gen, g.Batch, channels, g.Height, g.Width).RequiresGrad_();
            var w = Tensor.Randn(gen, outChannels, channels, 3, 3).RequiresGrad_();
            var b = trial % 2 == 0 ? Tensor.Randn(gen, outChannels).RequiresGrad_() : null;
            var dy = Tensor.Randn(gen, g.Batch, outChannels, g.OutHeight, g.OutWidth);

            var patches = Pad(x, g).Unfold(2, 3, 1).Unfold(3, 3, 1).Permute(0, 1, 4, 5, 2, 3)   // (N, C, 3, 3, OH, OW)
                .Reshape(g.Batch, channels * 9, g.OutHeight * g.OutWidth);
            var product = w.Reshape(outChannels, channels * 9).MatMul(patches).Reshape(g.Batch, outChannels, g.OutHeight, g.OutWidth);
            if (b != null) product = product.Add(b.View(1, outChannels, 1, 1));
            product.Backward(dy);
            Tensor?[] expected = [product.Detach(), x.Grad, w.Grad, b?.Grad];
            x.Grad = w.Grad = null;
            if (b != null) b.Grad = null;

            using (CpuFeatures.Limit(isa))
            using (F.ForceWinograd())
            {
                Assert.True(F.UsesWinograd(g));
                var y = F.Conv2d(x, w, b, 1, (g.PadH, g.PadW));
                y.Backward(dy);
                Tensor?[] actual = [y.Detach(), x.Grad, w.Grad, b?.Grad];
                string[] names = ["y", "dx", "dw", "db"];
                for (int i = 0; i < names.Length; i++)
                    if (expected[i] != null) Close.Assert(expected[i]!, actual[i]!, 1e-5, $"winograd conv2d {names[i]} {g}");
            }
        }
    }

    /// <summary>A batch whose working buffers exceed one chunk gives what the images give one at a time: outputs and
    /// input gradients image by image, the weight gradient summed. im2col: 3 images of 64 channels × 3×3 × 64×64 per
    /// chunk; Winograd (16 channels in and out, forced: the size rule would pick im2col): 32 images of 16 × 16
    /// channels × 32×32 tiles per chunk.</summary>
    [Theory]
    [InlineData(4, 64, 2, "im2col")]
    [InlineData(33, 16, 16, "winograd")]
    [InlineData(5, 16, 16, "direct")]
    public void Conv2dOverSeveralImageChunksEqualsOneImageAtATime(int images, int channels, int outChannels, string algorithm)
    {
        using var path = algorithm == "winograd" ? F.ForceWinograd()
            : F.ForceConvolutionPath(algorithm == "direct" ? ConvolutionPath.Direct : ConvolutionPath.WithoutDirect);
        var g = new Generator(13);
        var x = Tensor.Randn(g, images, channels, 64, 64).RequiresGrad_();
        var w = Tensor.Randn(g, outChannels, channels, 3, 3).Mul(0.05f).RequiresGrad_();
        var b = Tensor.Randn(g, outChannels).RequiresGrad_();
        var dy = Tensor.Randn(g, images, outChannels, 64, 64);
        F.Conv2d(x, w, b, padding: 1).Backward(dy);
        var (dx, dw, db) = (x.Grad!, w.Grad!, b.Grad!);
        Tensor dwSum = Tensor.Zeros(w.Shape.ToArray()), dbSum = Tensor.Zeros(outChannels);
        for (int n = 0; n < images; n++)
        {
            var xn = x.Detach().Narrow(0, n, 1).Contiguous().RequiresGrad_();
            w.Grad = b.Grad = null;
            var yn = F.Conv2d(xn, w, b, padding: 1);
            yn.Backward(dy.Narrow(0, n, 1).Contiguous());
            using (GradMode.NoGrad())
            {
                Close.Assert(yn, F.Conv2d(x.Detach(), w.Detach(), b.Detach(), padding: 1).Narrow(0, n, 1), 1e-6, $"y[{n}]");
                Close.Assert(xn.Grad!, dx.Narrow(0, n, 1), 1e-6, $"dx[{n}]");
                dwSum = dwSum.Add(w.Grad!);
                dbSum = dbSum.Add(b.Grad!);
            }
        }
        Close.Assert(dwSum, dw, 1e-5, "dw");
        Close.Assert(dbSum, db, 1e-5, "db");
    }

    /// <summary>Col2Im is the backward of the im2col patch view: the same numbers autograd gets by scattering the
    /// gradient back through pad → Unfold → Unfold.</summary>
    [Fact]
    public void Col2ImIsTheBackwardOfThePatchView()
    {
        var random = new Random(8);
        for (int trial = 0; trial < 10; trial++)
        {
            var g = RandomGeometry(random, pooling: false);
            int spanH = g.DilationH * (g.KernelH - 1) + 1, spanW = g.DilationW * (g.KernelW - 1) + 1;
            var x = Tensor.Randn(new Generator((ulong)trial), g.Batch, g.Channels, g.Height, g.Width).RequiresGrad_();
            var patches = Pad(x, g).Unfold(2, spanH, g.StrideH).Unfold(3, spanW, g.StrideW)
                .Slice(4, 0, spanH, g.DilationH).Slice(5, 0, spanW, g.DilationW).Permute(0, 1, 4, 5, 2, 3);
            var col = Tensor.Randn(new Generator((ulong)trial + 100), patches.Shape.ToArray());
            patches.Backward(col);
            var dx = Tensor.Empty(x.Shape.ToArray());
            Reference.Col2Im(g, col.Contiguous().Data, dx.Data);
            Close.Assert(x.Grad!, dx, 1e-6, $"col2im vs view backward {g}");
        }
    }

    /// <summary>Zero padding of H and W with autograd, from ops that record their backward (concatenation with zeros).</summary>
    private static Tensor Pad(Tensor x, in Conv2dGeometry g)
    {
        int n = x.Size(0), c = x.Size(1);
        var rows = Tensor.Concat([Tensor.Zeros(n, c, g.PadH, g.Width), x, Tensor.Zeros(n, c, g.PadH, g.Width)], 2);
        return Tensor.Concat([Tensor.Zeros(n, c, g.PaddedHeight, g.PadW), rows, Tensor.Zeros(n, c, g.PaddedHeight, g.PadW)], 3);
    }
}
