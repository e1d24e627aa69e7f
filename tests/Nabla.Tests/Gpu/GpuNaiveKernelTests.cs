using Nabla.Kernels;
using Nabla.Kernels.Reference;
using static Nabla.Tests.Gpu.GpuCheck;

namespace Nabla.Tests.Gpu;

/// <summary>The naive GPU kernels (recurrent cells, pooling, depthwise convolution, col2im, Winograd transforms, batch norm) against
/// the reference, on the CPU accelerator: odd sizes, strides, padding and dilation, overlapping windows (the
/// backward scatters must add every contribution).</summary>
[Collection(GpuCollection.Name)]
public sealed unsafe class GpuNaiveKernelTests
{
    private static readonly ReferenceBackend Ref = ReferenceBackend.Instance;

    [Fact]
    public void LstmAndGruCells()
    {
        var g = new Generator(41);
        const int batch = 3, hidden = 5;
        var gates = Normal(g, batch * 4 * hidden, 2f);
        var (cPrev, dh, dc) = (Normal(g, batch * hidden), Normal(g, batch * hidden), Normal(g, batch * hidden));
        var (c, h, dGates, dcPrev) = (new float[batch * hidden], new float[batch * hidden], new float[gates.Length], new float[batch * hidden]);
        var refGates = (float[])gates.Clone();
        fixed (float* pg = refGates, pcp = cPrev, pc = c, ph = h, pdh = dh, pdc = dc, pdg = dGates, pdcp = dcPrev)
        {
            Ref.LstmCell(pg, pcp, pc, ph, batch, hidden);
            Ref.LstmCellBackward(pg, pcp, pc, pdh, pdc, pdg, pdcp, batch, hidden);
        }
        using var d = new DeviceArrays();
        var gpu = GpuTestDevice.Kernels;
        float* gg = d.Upload(gates), gcp = d.Upload(cPrev), gc = d.Filled(c.Length), gh = d.Filled(h.Length);
        gpu.LstmCell(gg, gcp, gc, gh, batch, hidden);
        Near(refGates, d.Read(gg, gates.Length), "LSTM gates", 1e-5, 1e-6);
        Near(c, d.Read(gc, c.Length), "LSTM c", 1e-5, 1e-6);
        Near(h, d.Read(gh, h.Length), "LSTM h", 1e-5, 1e-6);
        float* gdg = d.Filled(gates.Length), gdcp = d.Filled(dcPrev.Length);
        gpu.LstmCellBackward(gg, gcp, gc, d.Upload(dh), d.Upload(dc), gdg, gdcp, batch, hidden);
        Near(dGates, d.Read(gdg, gates.Length), "LSTM dGates", 1e-4, 1e-6);
        Near(dcPrev, d.Read(gdcp, dcPrev.Length), "LSTM dcPrev", 1e-4, 1e-6);

        var inputGates = Normal(g, batch * 3 * hidden, 2f);
        var hiddenGates = Normal(g, batch * 3 * hidden, 2f);
        var hPrev = Normal(g, batch * hidden);
        var (gh2, dIn, dHid, dhPrev) = (new float[batch * hidden], new float[inputGates.Length], new float[inputGates.Length], new float[batch * hidden]);
        var refInput = (float[])inputGates.Clone();
        fixed (float* pi = refInput, phg = hiddenGates, php = hPrev, ph = gh2, pdh = dh, pdi = dIn, pdhg = dHid, pdhp = dhPrev)
        {
            Ref.GruCell(pi, phg, php, ph, batch, hidden);
            Ref.GruCellBackward(pi, phg, php, pdh, pdi, pdhg, pdhp, batch, hidden);
        }
        float* gi = d.Upload(inputGates), ghg = d.Upload(hiddenGates), ghp = d.Upload(hPrev), gho = d.Filled(gh2.Length);
        gpu.GruCell(gi, ghg, ghp, gho, batch, hidden);
        Near(refInput, d.Read(gi, inputGates.Length), "GRU gates", 1e-5, 1e-6);
        Near(gh2, d.Read(gho, gh2.Length), "GRU h", 1e-5, 1e-6);
        float* gdi = d.Filled(dIn.Length), gdhg = d.Filled(dHid.Length), gdhp = d.Filled(dhPrev.Length);
        gpu.GruCellBackward(gi, ghg, ghp, d.Upload(dh), gdi, gdhg, gdhp, batch, hidden);
        Near(dIn, d.Read(gdi, dIn.Length), "GRU dInputGates", 1e-4, 1e-6);
        Near(dHid, d.Read(gdhg, dHid.Length), "GRU dHiddenGates", 1e-4, 1e-6);
        Near(dhPrev, d.Read(gdhp, dhPrev.Length), "GRU dhPrev", 1e-4, 1e-6);
    }

    public static TheoryData<int, int, int, int, int, int, int, int> Windows() => new()
    {
        // kernel h, w; stride h, w; pad h, w; dilation h, w
        { 3, 2, 2, 1, 1, 0, 1, 1 },
        { 2, 2, 2, 2, 0, 0, 1, 1 },
        { 3, 3, 1, 1, 1, 1, 2, 1 },
    };

    [Theory, MemberData(nameof(Windows))]
    public void PoolingDepthwiseAndCol2Im(int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw)
    {
        var rng = new Generator((ulong)(kh * 1000 + sh * 100 + dh));
        var pool = Conv2dGeometry.Pooling(2, 3, 7, 6, kh, kw, sh, sw, ph, pw, dh, dw);
        int planes = pool.Planes, inSize = planes * pool.Height * pool.Width, outSize = planes * pool.OutHeight * pool.OutWidth;
        var x = SmallInts(rng, inSize);
        var dy = SmallInts(rng, outSize);
        using var d = new DeviceArrays();
        var gpu = GpuTestDevice.Kernels;
        float* gx = d.Upload(x), gdy = d.Upload(dy);
        string what = $"k={kh}x{kw} s={sh}x{sw} p={ph}x{pw} d={dh}x{dw}";

        var (y, dx) = (new float[outSize], new float[inSize]);
        var argmax = new int[outSize];
        fixed (float* px = x, py = y, pdy = dy, pdx = dx)
        fixed (int* pa = argmax)
        {
            Ref.MaxPool2d(pool, px, py, pa);
            Ref.MaxPool2dBackward(pool, pdy, pa, pdx);
        }
        float* gy = d.Filled(outSize), gdx = d.Filled(inSize);
        int* ga = d.Upload(new int[outSize]);
        gpu.MaxPool2d(pool, gx, gy, ga);
        Near(y, d.Read(gy, outSize), "MaxPool " + what, 0, 0);
        Assert.Equal(argmax, d.Read(ga, outSize));
        gpu.MaxPool2dBackward(pool, gdy, ga, gdx);
        Near(dx, d.Read(gdx, inSize), "MaxPool backward " + what, 0, 0);

        if (dh == 1 && dw == 1)
            foreach (bool includePad in new[] { true, false })
            {
                fixed (float* px = x, py = y, pdy = dy, pdx = dx)
                {
                    Ref.AvgPool2d(pool, includePad, px, py);
                    Ref.AvgPool2dBackward(pool, includePad, pdy, pdx);
                }
                gpu.AvgPool2d(pool, includePad, gx, gy);
                Near(y, d.Read(gy, outSize), $"AvgPool {what} includePad={includePad}", 1e-6, 1e-6);
                gpu.AvgPool2dBackward(pool, includePad, gdy, gdx);
                Near(dx, d.Read(gdx, inSize), $"AvgPool backward {what} includePad={includePad}", 1e-6, 1e-6);
            }

        // Col2Im: the col buffer of this window over the planes.
        int colSize = planes * kh * kw * pool.OutHeight * pool.OutWidth;
        var col = SmallInts(rng, colSize);
        fixed (float* pc = col, pdx = dx) Ref.Col2Im(pool, pc, pdx);
        gpu.Col2Im(pool, d.Upload(col), gdx);
        Near(dx, d.Read(gdx, inSize), "Col2Im " + what, 0, 0);

        // Depthwise convolution with a channel multiplier of 2, then a dense direct one, 3 → 4 channels.
        CheckConvolution(d, rng, x, gx, gdx, depthwise: true, new Conv2dGeometry(2, 3, 7, 6, 6, kh, kw, sh, sw, ph, pw, dh, dw, 3), what);
        CheckConvolution(d, rng, x, gx, gdx, depthwise: false, new Conv2dGeometry(2, 3, 7, 6, 4, kh, kw, sh, sw, ph, pw, dh, dw, 1), what);
    }

    /// <summary>Forward, input gradient and weight gradient of a depthwise or a dense direct convolution on the device
    /// against the reference; x (and its device copy gx) is the input, gdx a device buffer of its size.</summary>
    private static void CheckConvolution(DeviceArrays d, Generator rng, float[] x, float* gx, float* gdx, bool depthwise, Conv2dGeometry g, string what)
    {
        int outSize = g.Batch * g.OutChannels * g.OutHeight * g.OutWidth, weights = g.OutChannels * (g.Channels / g.Groups) * g.KernelH * g.KernelW;
        var w = SmallInts(rng, weights);
        var bias = SmallInts(rng, g.OutChannels);
        var dy = SmallInts(rng, outSize);
        var (y, dx, dwRef) = (new float[outSize], new float[x.Length], new float[weights]);
        fixed (float* px = x, pw = w, pb = bias, py = y, pdy = dy, pdx = dx, pdw = dwRef)
            Convolution(Ref, depthwise, g, px, pw, pb, py, pdy, pdx, pdw);
        float* gw = d.Upload(w), gy = d.Filled(outSize), gdy = d.Upload(dy), gdw = d.Filled(weights);
        Convolution(GpuTestDevice.Kernels, depthwise, g, gx, gw, d.Upload(bias), gy, gdy, gdx, gdw);
        string kind = depthwise ? "Depthwise" : "Direct";
        Near(y, d.Read(gy, outSize), $"{kind} {what}", 0, 0);
        Near(dx, d.Read(gdx, x.Length), $"{kind} backward input {what}", 0, 0);
        Near(dwRef, d.Read(gdw, weights), $"{kind} backward weight {what}", 0, 0);
    }

    private static void Convolution(IKernelBackend k, bool depthwise, in Conv2dGeometry g, float* x, float* w, float* bias, float* y, float* dy, float* dx, float* dw)
    {
        if (depthwise)
        {
            k.DepthwiseConv2d(g, x, w, bias, y);
            k.DepthwiseConv2dBackwardInput(g, dy, w, dx);
            k.DepthwiseConv2dBackwardWeight(g, dy, x, dw);
        }
        else
        {
            k.DirectConv2d(g, x, w, bias, y);
            k.DirectConv2dBackwardInput(g, dy, w, dx);
            k.DirectConv2dBackwardWeight(g, dy, x, dw);
        }
    }

    [Theory]
    [InlineData(7, 6, 3, 4)]
    [InlineData(5, 5, 1, 1)]
    [InlineData(4, 9, 4, 2)]
    public void AdaptiveAvgPool(int height, int width, int outHeight, int outWidth)
    {
        var rng = new Generator(43);
        const int planes = 3;
        var x = SmallInts(rng, planes * height * width);
        var dy = SmallInts(rng, planes * outHeight * outWidth);
        var (y, dx) = (new float[dy.Length], new float[x.Length]);
        fixed (float* px = x, py = y, pdy = dy, pdx = dx)
        {
            Ref.AdaptiveAvgPool2d(planes, height, width, outHeight, outWidth, px, py);
            Ref.AdaptiveAvgPool2dBackward(planes, height, width, outHeight, outWidth, pdy, pdx);
        }
        using var d = new DeviceArrays();
        float* gy = d.Filled(y.Length), gdx = d.Filled(x.Length);
        GpuTestDevice.Kernels.AdaptiveAvgPool2d(planes, height, width, outHeight, outWidth, d.Upload(x), gy);
        Near(y, d.Read(gy, y.Length), "AdaptiveAvgPool2d", 1e-6, 1e-6);
        GpuTestDevice.Kernels.AdaptiveAvgPool2dBackward(planes, height, width, outHeight, outWidth, d.Upload(dy), gdx);
        Near(dx, d.Read(gdx, x.Length), "AdaptiveAvgPool2d backward", 1e-6, 1e-6);
    }

    [Theory]
    [InlineData(true, true, false)]
    [InlineData(false, false, false)]
    [InlineData(true, true, true)]
    public void BatchNormStatisticsForwardAndBackward(bool affine, bool batchStatistics, bool residualRelu)
    {
        var rng = new Generator(47);
        const int batch = 3, channels = 4, spatial = 10;
        int n = batch * channels * spatial;
        var x = Normal(rng, n, 2f);
        var dy = Normal(rng, n);
        var w = affine ? Normal(rng, channels) : null;
        var b = affine ? Normal(rng, channels) : null;
        var residual = residualRelu ? Normal(rng, n) : null;
        var (mean, variance, y) = (new float[channels], new float[channels], new float[n]);
        var (dx, dw, db, dr) = (new float[n], new float[channels], new float[channels], new float[n]);
        fixed (float* px = x, pm = mean, pv = variance) Ref.BatchNormStatistics(px, pm, pv, batch, channels, spatial);
        var rstd = variance.Select(v => 1f / MathF.Sqrt(v + 1e-5f)).ToArray();
        fixed (float* px = x, pm = mean, pr = rstd, pw = w, pb = b, pres = residual, py = y, pdy = dy, pdx = dx, pdw = dw, pdb = db, pdr = dr)
        {
            Ref.BatchNorm(px, pm, pr, pw, pb, pres, residualRelu, py, batch, channels, spatial);
            Ref.BatchNormBackward(pdy, px, pm, pr, pw, residualRelu ? py : null, pdx, residualRelu ? pdr : null, pdw, pdb, batch, channels, spatial, batchStatistics);
        }
        using var d = new DeviceArrays();
        var gpu = GpuTestDevice.Kernels;
        float* gx = d.Upload(x), gm = d.Filled(channels), gv = d.Filled(channels), gr = d.Upload(rstd);
        gpu.BatchNormStatistics(gx, gm, gv, batch, channels, spatial);
        Near(mean, d.Read(gm, channels), "BatchNorm mean", 1e-5, 1e-6);
        Near(variance, d.Read(gv, channels), "BatchNorm variance", 1e-5, 1e-6);
        float* gw = affine ? d.Upload(w!) : null, gb = affine ? d.Upload(b!) : null, gy = d.Filled(n);
        gpu.BatchNorm(gx, gm, gr, gw, gb, residualRelu ? d.Upload(residual!) : null, residualRelu, gy, batch, channels, spatial);
        Near(y, d.Read(gy, n), "BatchNorm y", 1e-5, 1e-5);
        // The backward reads the reference's y, so that the ReLU's mask is the same on both sides.
        float* gdx = d.Filled(n), gdw = d.Filled(channels), gdb = d.Filled(channels), gdr = residualRelu ? d.Filled(n) : null;
        gpu.BatchNormBackward(d.Upload(dy), gx, gm, gr, gw, residualRelu ? d.Upload(y) : null, gdx, gdr, gdw, gdb, batch, channels, spatial, batchStatistics);
        Near(dx, d.Read(gdx, n), "BatchNorm dx", 1e-4, 1e-5);
        Near(dw, d.Read(gdw, channels), "BatchNorm dw", 1e-5, 1e-5);
        if (residualRelu) Near(dr, d.Read(gdr, n), "BatchNorm residual gradient", 1e-6, 1e-6);
        Near(db, d.Read(gdb, channels), "BatchNorm db", 1e-5, 1e-5);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(0)]
    [InlineData(2)]
    public void WinogradTransforms(int pad)
    {
        var rng = new Generator((ulong)(53 + pad));
        var g = new Conv2dGeometry(2, 3, 7, 6, 4, 3, 3, 1, 1, pad, pad, 1, 1, 1);
        Assert.True(g.SuitsWinograd);
        long inputTiles = 16 * Winograd.SliceStride(g.Channels, g.Tiles), outputTiles = 16 * Winograd.SliceStride(g.OutChannels, g.Tiles);
        int inSize = g.Planes * g.Height * g.Width, outSize = g.Batch * g.OutChannels * g.OutHeight * g.OutWidth, pairs = g.OutChannels * g.Channels;
        var x = SmallInts(rng, inSize);
        var m = SmallInts(rng, outputTiles);
        var bias = SmallInts(rng, g.OutChannels);
        var dy = SmallInts(rng, outSize);
        var w = SmallInts(rng, pairs * 9);
        var du = SmallInts(rng, 16 * pairs);
        var (v, y, dm, dw) = (new float[inputTiles], new float[outSize], new float[outputTiles], new float[pairs * 9]);
        var (u, uGrad) = (new float[16 * pairs], new float[16 * pairs]);
        fixed (float* px = x, pm = m, pb = bias, pdy = dy, pw = w, pdu = du, pv = v, py = y, pdm = dm, pdw = dw, pu = u, pug = uGrad)
        {
            Ref.WinogradInput(g, px, pv);
            Ref.WinogradOutput(g, pm, pb, py);
            Ref.WinogradOutputAdjoint(g, pdy, pdm);
            Ref.WinogradKernels(g, pw, pu, false);
            Ref.WinogradKernels(g, pw, pug, true);
            Ref.WinogradKernelGradient(g, pdu, pdw);
        }
        using var d = new DeviceArrays();
        var gpu = GpuTestDevice.Kernels;
        // Tile buffers start at zero on both sides: the gaps between the 16 slices are never written.
        float* gv = d.Upload(new float[inputTiles]), gy = d.Filled(outSize), gdm = d.Upload(new float[outputTiles]);
        float* gu = d.Filled(16 * pairs), gug = d.Filled(16 * pairs), gdw = d.Filled(pairs * 9), gw = d.Upload(w);
        gpu.WinogradInput(g, d.Upload(x), gv);
        Near(v, d.Read(gv, inputTiles), $"WinogradInput pad={pad}", 1e-6, 1e-6);
        gpu.WinogradOutput(g, d.Upload(m), d.Upload(bias), gy);
        Near(y, d.Read(gy, outSize), $"WinogradOutput pad={pad}", 1e-6, 1e-6);
        gpu.WinogradOutputAdjoint(g, d.Upload(dy), gdm);
        Near(dm, d.Read(gdm, outputTiles), $"WinogradOutputAdjoint pad={pad}", 1e-6, 1e-6);
        gpu.WinogradKernels(g, gw, gu, false);
        Near(u, d.Read(gu, 16 * pairs), "WinogradKernels", 1e-6, 1e-6);
        gpu.WinogradKernels(g, gw, gug, true);
        Near(uGrad, d.Read(gug, 16 * pairs), "WinogradKernels (input gradient)", 1e-6, 1e-6);
        gpu.WinogradKernelGradient(g, d.Upload(du), gdw);
        Near(dw, d.Read(gdw, pairs * 9), "WinogradKernelGradient", 1e-6, 1e-6);
    }
}
