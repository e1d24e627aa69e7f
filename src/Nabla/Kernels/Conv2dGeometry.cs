namespace Nabla.Kernels;

/// <summary>
/// Shape of a 2-D convolution or pooling over NCHW data: input (Batch, Channels, Height, Width), a window of
/// KernelH × KernelW taps, output (Batch, OutChannels, OutHeight, OutWidth). Output position (oh, ow) with tap
/// (i, j) reads input row oh·StrideH - PadH + i·DilationH and column ow·StrideW - PadW + j·DilationW; positions
/// outside the input are padding. A convolution's weight is (OutChannels, Channels / Groups, KernelH, KernelW);
/// pooling uses only the window fields (OutChannels = Channels, Groups = Channels).
/// </summary>
public readonly record struct Conv2dGeometry(int Batch, int Channels, int Height, int Width, int OutChannels,
    int KernelH, int KernelW, int StrideH, int StrideW, int PadH, int PadW, int DilationH, int DilationW, int Groups)
{
    /// <summary>Output rows: the window positions that fit in the padded input (floor mode).</summary>
    public int OutHeight => OutSize(Height, PadH, DilationH, KernelH, StrideH);
    public int OutWidth => OutSize(Width, PadW, DilationW, KernelW, StrideW);

    /// <summary>Input rows and columns with the padding on both sides.</summary>
    public int PaddedHeight => Height + 2 * PadH;
    public int PaddedWidth => Width + 2 * PadW;

    /// <summary>Number of (image, channel) planes of the input.</summary>
    public int Planes => Batch * Channels;

    /// <summary>Whether the convolution can run as Winograd F(2×2, 3×3): a dense 3×3 kernel, stride 1, no dilation, and
    /// padding of at most 2 (so the input gradient, a convolution of dy padded by 2 - padding, is one too).</summary>
    public bool SuitsWinograd => Groups == 1 && KernelH == 3 && KernelW == 3 && StrideH == 1 && StrideW == 1 &&
        DilationH == 1 && DilationW == 1 && PadH <= 2 && PadW <= 2;

    /// <summary>Whether the direct kernels (<see cref="IKernelBackend.DirectConv2d"/>) can run it: one group, the same
    /// stride across and down, no dilation, and padding smaller than the kernel (so the input gradient of a stride-1
    /// convolution is a correlation of dy padded by kernel - 1 - padding).</summary>
    public bool SuitsDirect => Groups == 1 && StrideH == StrideW && DilationH == 1 && DilationW == 1 &&
        PadH < KernelH && PadW < KernelW;

    /// <summary>Winograd F(2×2, 3×3) cuts the output into 2×2 tiles: this many tile rows and columns per image
    /// (the last ones may hang over the edge), and this many tiles in the batch.</summary>
    public int TileRows => (OutHeight + 1) / 2;
    public int TileCols => (OutWidth + 1) / 2;
    public int Tiles => Batch * TileRows * TileCols;

    /// <summary>Window geometry of a pooling layer (one plane per channel, no weight).</summary>
    public static Conv2dGeometry Pooling(int batch, int channels, int height, int width, int kernelH, int kernelW,
        int strideH, int strideW, int padH, int padW, int dilationH = 1, int dilationW = 1) =>
        new(batch, channels, height, width, channels, kernelH, kernelW, strideH, strideW, padH, padW, dilationH, dilationW, channels);

    private static int OutSize(int size, int pad, int dilation, int kernel, int stride)
    {
        int span = size + 2 * pad - dilation * (kernel - 1) - 1;
        // Floor division: a negative span means no window fits (C# division would round it up to 0).
        return span < 0 ? 0 : span / stride + 1;
    }
}
