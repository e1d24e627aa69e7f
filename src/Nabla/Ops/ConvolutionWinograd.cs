using Nabla.Autograd;
using Nabla.Kernels;

namespace Nabla;

// The Winograd F(2×2, 3×3) path of Conv2d (see Kernels/Winograd.cs): for a dense 3×3 stride-1 convolution it does
// 16/36 of the multiplications of im2col + GEMM, as 16 matrix products over (channels × tiles) batched into one GEMM
// call, with the tile transforms around them. The input gradient is the same computation on dy with the kernel
// rotated by 180° and transposed (padding 2 - p); the weight gradient multiplies the adjoint of the output transform
// of dy by the input transform of x, summed over tiles, and brings it back with Gᵀ · G.
public static unsafe partial class F
{
    /// <summary>Where the Winograd path beats im2col + GEMM, measured forward + backward on a quiet Zen 5
    /// (docs/optimization-log.md, conv 5): its 16 matrix products must be deep enough (with 16 channels their depth
    /// is 16, against 9 × 16 for im2col: ResNet-20's first stage ran 1.6× slower) and must have many more tiles than
    /// channels, or the per-call kernel transforms and the thin weight-gradient products dominate (ResNet-18's 14×14
    /// and 7×7 stages, 256 and 512 channels, ran 1.1× and 2.3× slower). Both rules hold for the shapes that gained:
    /// 32–128 channels at 56×56 down to 7×7 with enough images.</summary>
    private const int WinogradMinChannels = 32, WinogradMinTilesPerChannel = 4;

    /// <summary>Set by tests (<see cref="ForceWinograd"/>) to run the Winograd path on every shape it can handle.</summary>
    [ThreadStatic] private static bool t_forceWinograd;

    internal static bool UsesWinograd(in Conv2dGeometry g) =>
        g.SuitsWinograd && (t_forceWinograd
            || (Math.Min(g.Channels, g.OutChannels) >= WinogradMinChannels
                && g.Tiles >= (long)WinogradMinTilesPerChannel * Math.Max(g.Channels, g.OutChannels)));

    /// <summary>Runs every dense 3×3 stride-1 convolution of this thread through the Winograd path until disposed,
    /// whatever its size, so tests reach the path with small shapes.</summary>
    internal static IDisposable ForceWinograd()
    {
        bool previous = t_forceWinograd;
        t_forceWinograd = true;
        return new WinogradScope(previous);
    }

    private sealed class WinogradScope(bool previous) : IDisposable
    {
        public void Dispose() => t_forceWinograd = previous;
    }

    /// <summary>The geometry of the input gradient as a convolution: dy (N, O, OH, OW) with the rotated, transposed
    /// kernel and padding 2 - p gives (N, C, H, W).</summary>
    private static Conv2dGeometry InputGradientGeometry(in Conv2dGeometry g) =>
        new(g.Batch, g.OutChannels, g.OutHeight, g.OutWidth, g.Channels, 3, 3, 1, 1, 2 - g.PadH, 2 - g.PadW, 1, 1, 1);

    /// <summary>How many images go into one pass: the tile buffers hold at most <see cref="ColumnChunkFloats"/> floats.</summary>
    private static int WinogradImagesPerChunk(in Conv2dGeometry g)
    {
        long perImage = (long)Winograd.TileElements * Math.Max(g.Channels, g.OutChannels) * g.TileRows * g.TileCols;
        return (int)Math.Clamp(ColumnChunkFloats / Math.Max(perImage, 1), 1, g.Batch);
    }

    /// <summary>Working memory of a convolution kernel, rented from the pool and given back as soon as the op is done
    /// with it: a tensor would wait for the end of the step (or the finalizer), and a step that asks for tens of
    /// megabytes of fresh memory each time pays page faults on every first touch.</summary>
    private readonly struct ConvWorkspace : IDisposable
    {
        private readonly nint _pointer;
        private readonly long _capacity;

        public ConvWorkspace(long floats) => _pointer = BufferPool.Rent(Math.Max(floats, 1) * sizeof(float), out _capacity);

        public float* Data => (float*)_pointer;

        public void Dispose() => BufferPool.Return(_pointer, _capacity);
    }

    /// <summary>y = the convolution of x by the kernels already transformed into u (16, OutChannels, Channels), plus bias.</summary>
    private static void WinogradConvolve(in Conv2dGeometry g, float* x, float* u, float* bias, float* y)
    {
        var backend = Backend.Current;
        int chunk = WinogradImagesPerChunk(g);
        var chunkGeometry = g with { Batch = chunk };
        using var v = new ConvWorkspace(Winograd.TileElements * Winograd.SliceStride(g.Channels, chunkGeometry.Tiles));
        using var m = new ConvWorkspace(Winograd.TileElements * Winograd.SliceStride(g.OutChannels, chunkGeometry.Tiles));
        for (int n0 = 0; n0 < g.Batch; n0 += chunk)
        {
            var part = g with { Batch = Math.Min(chunk, g.Batch - n0) };
            int tiles = part.Tiles;
            backend.WinogradInput(part, x + (long)n0 * g.Channels * g.Height * g.Width, v.Data);
            backend.Gemm(false, false, g.OutChannels, tiles, g.Channels,
                u, g.Channels, (long)g.OutChannels * g.Channels,
                v.Data, tiles, Winograd.SliceStride(g.Channels, tiles),
                m.Data, tiles, Winograd.SliceStride(g.OutChannels, tiles),
                Winograd.TileElements, accumulate: false, bias: null);
            backend.WinogradOutput(part, m.Data, bias, y + (long)n0 * g.OutChannels * g.OutHeight * g.OutWidth);
        }
    }

    private static void WinogradForward(in Conv2dGeometry g, Tensor x, Tensor w, Tensor? bias, Tensor y)
    {
        using var u = new ConvWorkspace((long)Winograd.TileElements * g.OutChannels * g.Channels);
        Backend.Current.WinogradKernels(g, w.Data, u.Data, inputGradient: false);
        WinogradConvolve(g, x.Data, u.Data, bias == null ? null : bias.Data, y.Data);
    }

    private static void WinogradBackward(in Conv2dGeometry g, Tensor x, Tensor w, Tensor dy, Tensor? dx, Tensor? dw)
    {
        if (dx != null)
        {
            using var u = new ConvWorkspace((long)Winograd.TileElements * g.Channels * g.OutChannels);
            Backend.Current.WinogradKernels(g, w.Data, u.Data, inputGradient: true);
            WinogradConvolve(InputGradientGeometry(g), dy.Data, u.Data, null, dx.Data);
        }
        if (dw != null) WinogradWeightGradient(g, x, dy, dw);
    }

    // du[ξ] (O, C) = Σ over tiles of dm[ξ] (O, tiles) · v[ξ]ᵀ (tiles, C), accumulated over the chunks of images.
    private static void WinogradWeightGradient(in Conv2dGeometry g, Tensor x, Tensor dy, Tensor dw)
    {
        var backend = Backend.Current;
        int chunk = WinogradImagesPerChunk(g);
        var chunkGeometry = g with { Batch = chunk };
        using var v = new ConvWorkspace(Winograd.TileElements * Winograd.SliceStride(g.Channels, chunkGeometry.Tiles));
        using var dm = new ConvWorkspace(Winograd.TileElements * Winograd.SliceStride(g.OutChannels, chunkGeometry.Tiles));
        using var du = new ConvWorkspace((long)Winograd.TileElements * g.OutChannels * g.Channels);
        for (int n0 = 0; n0 < g.Batch; n0 += chunk)
        {
            var part = g with { Batch = Math.Min(chunk, g.Batch - n0) };
            int tiles = part.Tiles;
            backend.WinogradInput(part, x.Data + (long)n0 * g.Channels * g.Height * g.Width, v.Data);
            backend.WinogradOutputAdjoint(part, dy.Data + (long)n0 * g.OutChannels * g.OutHeight * g.OutWidth, dm.Data);
            backend.Gemm(false, true, g.OutChannels, g.Channels, tiles,
                dm.Data, tiles, Winograd.SliceStride(g.OutChannels, tiles),
                v.Data, tiles, Winograd.SliceStride(g.Channels, tiles),
                du.Data, g.Channels, (long)g.OutChannels * g.Channels,
                Winograd.TileElements, accumulate: n0 > 0, bias: null);
        }
        backend.WinogradKernelGradient(g, du.Data, dw.Data);
    }
}
