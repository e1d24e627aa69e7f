using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

/// <summary>A (height, width) pair for kernel sizes, strides, paddings and dilations; an int means the same value
/// for both, as in PyTorch (<c>stride: 2</c> or <c>padding: (1, 0)</c>).</summary>
public readonly record struct Size2(int H, int W)
{
    public static implicit operator Size2(int both) => new(both, both);
    public static implicit operator Size2((int H, int W) pair) => new(pair.H, pair.W);
    public override string ToString() => H == W ? H.ToString() : $"({H}, {W})";
}

public static unsafe partial class F
{
    /// <summary>Images are cut into chunks whose column matrix holds at most this many floats (32 MB), so a large
    /// batch does not materialise one huge im2col buffer.</summary>
    private const long ColumnChunkFloats = 1 << 23;

    /// <summary>
    /// 2-D convolution (cross-correlation, as in PyTorch) of x (N, C, H, W) with weight (O, C/groups, kh, kw) plus
    /// bias (O), giving (N, O, OH, OW). Five paths: a dense convolution that Winograd does not take, with at most 64
    /// channels, runs the direct kernels (F.UsesDirect, ConvolutionDirect.cs); depthwise (groups = C) runs a direct depthwise kernel; a dense 3×3 stride-1
    /// convolution with enough channels and tiles (F.UsesWinograd) runs as Winograd F(2×2, 3×3) on the CPU (ConvolutionWinograd.cs); a 1×1 convolution
    /// with stride 1 and no padding is a GEMM straight on x; anything else multiplies the weight by the im2col matrix,
    /// materialised once per chunk of images from the patch view of the padded input (pad → Unfold over H and W).
    /// </summary>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias = null, Size2? stride = null, Size2? padding = null,
        Size2? dilation = null, int groups = 1)
    {
        var g = ConvGeometry(x, weight, bias, stride ?? 1, padding ?? 0, dilation ?? 1, groups);
        var xc = x.Contiguous();
        var wc = weight.Contiguous();
        var bc = bias?.Contiguous();
        var kernels = Tensor.KernelsFor("Conv2d", xc, wc, bc);
        var y = Tensor.Empty([g.Batch, g.OutChannels, g.OutHeight, g.OutWidth], DType.Float32, x.Device);
        if (y.Count > 0)
        {
            if (UsesDirect(g))
                kernels.DirectConv2d(g, xc.Data, wc.Data, bc == null ? null : bc.Data, y.Data);
            else if (IsDepthwise(g))
                kernels.DepthwiseConv2d(g, xc.Data, wc.Data, bc == null ? null : bc.Data, y.Data);
            else if (x.Device.IsCpu && UsesWinograd(g)) // its workspaces are host memory
                WinogradForward(g, xc, wc, bc, y);
            else
                ConvolutionForward(g, xc, wc, bc, y);
        }
        GC.KeepAlive(xc); GC.KeepAlive(wc); GC.KeepAlive(bc);
        if (GradMode.Needed(x, weight, bias))
        {
            y.Record("Conv2d", [x, weight, bias], dy =>
            {
                var dyc = dy.Contiguous();
                var backward = Tensor.KernelsFor("Conv2d backward", xc, wc, dyc);
                Tensor? dx = x.RequiresGrad ? Tensor.Empty(x.Shape.ToArray(), DType.Float32, x.Device) : null;
                Tensor? dw = weight.RequiresGrad ? Tensor.Empty(weight.Shape.ToArray(), DType.Float32, x.Device) : null;
                // Σ over (N, OH·OW) as two reductions of contiguous blocks: Sum([0, 2, 3]) would copy dy into a permuted layout.
                Tensor? db = bias is { RequiresGrad: true } ? dyc.View(g.Batch, g.OutChannels, -1).Sum(2).Sum(0) : null;
                if (dyc.Count > 0 && (dx != null || dw != null))
                {
                    if (UsesDirect(g))
                    {
                        if (dx != null) backward.DirectConv2dBackwardInput(g, dyc.Data, wc.Data, dx.Data);
                        if (dw != null) backward.DirectConv2dBackwardWeight(g, dyc.Data, xc.Data, dw.Data);
                    }
                    else if (IsDepthwise(g))
                    {
                        if (dx != null) backward.DepthwiseConv2dBackwardInput(g, dyc.Data, wc.Data, dx.Data);
                        if (dw != null) backward.DepthwiseConv2dBackwardWeight(g, dyc.Data, xc.Data, dw.Data);
                    }
                    else if (x.Device.IsCpu && UsesWinograd(g)) WinogradBackward(g, xc, wc, dyc, dx, dw);
                    else ConvolutionBackward(g, xc, wc, dyc, dx, dw);
                }
                else
                {
                    dx?.Zero();
                    dw?.Zero();
                }
                GC.KeepAlive(dyc); GC.KeepAlive(xc); GC.KeepAlive(wc);
                return [dx, dw, db];
            }, saved: [xc.IfCopyOf(x), wc.IfCopyOf(weight)]);
        }
        return y;
    }

    private static Conv2dGeometry ConvGeometry(Tensor x, Tensor weight, Tensor? bias, Size2 stride, Size2 padding, Size2 dilation, int groups)
    {
        x.RequireFloat("Conv2d");
        weight.RequireFloat("Conv2d");
        if (x.Rank != 4) throw new ArgumentException($"Conv2d: input must be (batch, channels, height, width), got {x.ShapeString}.");
        if (weight.Rank != 4) throw new ArgumentException($"Conv2d: weight must be (out_channels, in_channels/groups, kh, kw), got {weight.ShapeString}.");
        if (stride.H < 1 || stride.W < 1 || dilation.H < 1 || dilation.W < 1 || padding.H < 0 || padding.W < 0)
            throw new ArgumentException($"Conv2d: stride {stride} and dilation {dilation} must be positive, padding {padding} non-negative.");
        int C = x.Size(1), O = weight.Size(0);
        if (groups < 1 || C % groups != 0 || O % groups != 0)
            throw new ArgumentException($"Conv2d: groups={groups} must divide both the {C} input channels of {x.ShapeString} and the {O} output channels of weight {weight.ShapeString}.");
        if (weight.Size(1) != C / groups)
            throw new ArgumentException($"Conv2d: weight {weight.ShapeString} expects {weight.Size(1) * groups} input channels (with groups={groups}), but input {x.ShapeString} has {C}.");
        if (bias != null && (bias.Rank != 1 || bias.Size(0) != O))
            throw new ArgumentException($"Conv2d: bias {bias.ShapeString} does not match the {O} output channels.");
        var g = new Conv2dGeometry(x.Size(0), C, x.Size(2), x.Size(3), O, weight.Size(2), weight.Size(3),
            stride.H, stride.W, padding.H, padding.W, dilation.H, dilation.W, groups);
        if (g.OutHeight < 1 || g.OutWidth < 1)
            throw new ArgumentException($"Conv2d: the {weight.Size(2)}×{weight.Size(3)} kernel (dilation {dilation}) does not fit in input {x.ShapeString} padded by {padding}.");
        return g;
    }

    private static bool IsDepthwise(in Conv2dGeometry g) => g.Groups == g.Channels;

    /// <summary>Whether the im2col matrix of an image is the image itself (1×1 kernel, stride 1, no padding).</summary>
    private static bool IsPointwise(in Conv2dGeometry g) =>
        g.KernelH == 1 && g.KernelW == 1 && g.StrideH == 1 && g.StrideW == 1 && g.PadH == 0 && g.PadW == 0;

    /// <summary>How many images go into one column matrix.</summary>
    private static int ImagesPerChunk(in Conv2dGeometry g)
    {
        long perImage = (long)g.Channels * g.KernelH * g.KernelW * g.OutHeight * g.OutWidth;
        return (int)Math.Clamp(ColumnChunkFloats / Math.Max(perImage, 1), 1, g.Batch);
    }

    // y[n] (O, OH·OW) = W (O, C·kh·kw) · col[n] (C·kh·kw, OH·OW) for each group, one batched GEMM over the images.
    internal static void ConvolutionForward(in Conv2dGeometry g, Tensor x, Tensor w, Tensor? bias, Tensor y)
    {
        var backend = Tensor.KernelsFor("Conv2d", x, w, bias, y);
        int spatial = g.OutHeight * g.OutWidth, groupIn = g.Channels / g.Groups * g.KernelH * g.KernelW, groupOut = g.OutChannels / g.Groups;
        int rows = g.Channels * g.KernelH * g.KernelW;
        if (bias != null)
        {
            // The GEMM adds a bias per column, the convolution one per row (channel): start from the bias and accumulate.
            using var _ = GradMode.NoGrad();
            y.View(g.Batch, g.OutChannels, spatial).CopyFromUnchecked(bias.View(g.OutChannels, 1), accumulate: false);
        }
        var patches = IsPointwise(g) ? null : PatchView(x, g);
        int chunk = ImagesPerChunk(g);
        var col = IsPointwise(g) ? null : Tensor.Empty([chunk, rows, spatial], DType.Float32, x.Device);
        for (int n0 = 0; n0 < g.Batch; n0 += chunk)
        {
            int images = Math.Min(chunk, g.Batch - n0);
            float* columns = x.Data + (long)n0 * rows * spatial;
            if (col != null)
            {
                col.Narrow(0, 0, images).View(images, g.Channels, g.KernelH, g.KernelW, g.OutHeight, g.OutWidth)
                    .CopyFromUnchecked(patches!.Narrow(0, n0, images), accumulate: false);
                columns = col.Data;
            }
            float* output = y.Data + (long)n0 * g.OutChannels * spatial;
            for (int group = 0; group < g.Groups; group++)
                backend.Gemm(false, false, groupOut, spatial, groupIn,
                    w.Data + (long)group * groupOut * groupIn, groupIn, 0,
                    columns + (long)group * groupIn * spatial, spatial, (long)rows * spatial,
                    output + (long)group * groupOut * spatial, spatial, (long)g.OutChannels * spatial,
                    images, accumulate: bias != null, bias: null);
        }
        GC.KeepAlive(col);
    }

    // dW (O, C·kh·kw) = Σ over images and positions of dy · colᵀ: one GEMM per group and chunk with the images laid
    // side by side (channel-major dy and col), so the reduction over the batch happens inside the GEMM.
    // dcol[n] = Wᵀ · dy[n] (a batched GEMM), then col2im scatters it back onto dx.
    internal static void ConvolutionBackward(in Conv2dGeometry g, Tensor x, Tensor w, Tensor dy, Tensor? dx, Tensor? dw)
    {
        var backend = Tensor.KernelsFor("Conv2d backward", x, w, dy, dx, dw);
        int spatial = g.OutHeight * g.OutWidth, groupIn = g.Channels / g.Groups * g.KernelH * g.KernelW, groupOut = g.OutChannels / g.Groups;
        int rows = g.Channels * g.KernelH * g.KernelW;
        bool pointwise = IsPointwise(g);
        var patches = pointwise ? x.View(g.Batch, g.Channels, 1, 1, g.Height, g.Width) : PatchView(x, g);
        int chunk = ImagesPerChunk(g);
        var colT = dw != null ? Tensor.Empty([rows, chunk * spatial], DType.Float32, x.Device) : null;
        var dyT = dw != null ? Tensor.Empty([g.OutChannels, chunk * spatial], DType.Float32, x.Device) : null;
        var dcol = dx != null && !pointwise ? Tensor.Empty([chunk, rows, spatial], DType.Float32, x.Device) : null;
        using var _ = GradMode.NoGrad();
        for (int n0 = 0; n0 < g.Batch; n0 += chunk)
        {
            int images = Math.Min(chunk, g.Batch - n0);
            if (dw != null)
            {
                int k = images * spatial;
                colT!.View(-1).Narrow(0, 0, rows * k).View(g.Channels, g.KernelH, g.KernelW, images, g.OutHeight, g.OutWidth)
                    .CopyFromUnchecked(patches.Narrow(0, n0, images).Permute(1, 2, 3, 0, 4, 5), accumulate: false);
                dyT!.View(-1).Narrow(0, 0, g.OutChannels * k).View(g.OutChannels, images, spatial)
                    .CopyFromUnchecked(dy.View(g.Batch, g.OutChannels, spatial).Narrow(0, n0, images).Permute(1, 0, 2), accumulate: false);
                for (int group = 0; group < g.Groups; group++)
                    backend.Gemm(false, true, groupOut, groupIn, k,
                        dyT.Data + (long)group * groupOut * k, k, 0,
                        colT.Data + (long)group * groupIn * k, k, 0,
                        dw.Data + (long)group * groupOut * groupIn, groupIn, 0,
                        1, accumulate: n0 > 0, bias: null);
            }
            if (dx != null)
            {
                float* dcolumns = pointwise ? dx.Data + (long)n0 * rows * spatial : dcol!.Data;
                for (int group = 0; group < g.Groups; group++)
                    backend.Gemm(true, false, groupIn, spatial, groupOut,
                        w.Data + (long)group * groupOut * groupIn, groupIn, 0,
                        dy.Data + ((long)n0 * g.OutChannels + group * groupOut) * spatial, spatial, (long)g.OutChannels * spatial,
                        dcolumns + (long)group * groupIn * spatial, spatial, (long)rows * spatial,
                        images, accumulate: false, bias: null);
                if (!pointwise)
                    backend.Col2Im(g with { Batch = images }, dcol!.Data, dx.Data + (long)n0 * g.Channels * g.Height * g.Width);
            }
        }
        GC.KeepAlive(colT); GC.KeepAlive(dyT); GC.KeepAlive(dcol);
    }

    /// <summary>The im2col matrix as a view, no copy: (N, C, kh, kw, OH, OW) over the zero-padded input, element
    /// [n, c, i, j, oh, ow] = xpad[n, c, oh·sh + i·dh, ow·sw + j·dw].</summary>
    private static Tensor PatchView(Tensor x, in Conv2dGeometry g)
    {
        using var _ = GradMode.NoGrad();
        var padded = x;
        if (g.PadH > 0 || g.PadW > 0)
        {
            padded = Tensor.Zeros([g.Batch, g.Channels, g.PaddedHeight, g.PaddedWidth], x.Device);
            padded.Narrow(2, g.PadH, g.Height).Narrow(3, g.PadW, g.Width).CopyFromUnchecked(x, accumulate: false);
        }
        int spanH = g.DilationH * (g.KernelH - 1) + 1, spanW = g.DilationW * (g.KernelW - 1) + 1;
        return padded.Unfold(2, spanH, g.StrideH).Unfold(3, spanW, g.StrideW)   // (N, C, OH, OW, spanH, spanW)
            .Slice(4, 0, spanH, g.DilationH).Slice(5, 0, spanW, g.DilationW)    // (N, C, OH, OW, kh, kw)
            .Permute(0, 1, 4, 5, 2, 3);                                          // (N, C, kh, kw, OH, OW)
    }
}
