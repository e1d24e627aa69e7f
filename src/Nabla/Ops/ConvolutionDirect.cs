using Nabla.Kernels;

namespace Nabla;

// The direct path of Conv2d (Kernels/Cpu/CpuBackend.DirectConvolution.cs): a stride-1 convolution as register tiles
// over a zero-padded copy of a few images, no im2col matrix; the input gradient is the same kernel on dy, the weight
// gradient a tile of dot products.
public static unsafe partial class F
{
    /// <summary>Set by tests and benchmarks (<see cref="ForceConvolutionPath"/>) to choose the path of every
    /// convolution of this thread that the path can handle.</summary>
    [ThreadStatic] private static ConvolutionPath t_forcedPath;

    /// <summary>Where the direct path beats Winograd and im2col + GEMM, measured forward + backward on one thread
    /// (docs/optimization-log.md, conv 6): on the AVX-512 path, up to 64 channels it won or drew on every layer of
    /// LeNet-5, ResNet-20 and ResNet-18's first stage (1.1–3.6× over im2col, 1.0–1.8× over Winograd); from 128 channels
    /// on it lost (Winograd 1.2× faster at 128 channels 28×28, im2col 1.2–2.3× at 256–512 channels 14×14 and 7×7, where
    /// the weight gradient and the padding columns of small images weigh most). On the AVX2 path it beat im2col but
    /// only drew with Winograd at 32–64 channels on 14×14 and 7×7 and lost at 64 channels 56×56 (1.4×), so there
    /// Winograd keeps its layers.</summary>
    private const int DirectMaxChannels = 64;

    /// <summary>Whether Conv2d takes the direct path: a convolution the direct kernels handle
    /// (<see cref="Conv2dGeometry.SuitsDirect"/>) with at most <see cref="DirectMaxChannels"/> channels in and out. Conv2d asks this before
    /// <see cref="UsesWinograd"/>, so Winograd now runs only from 128 channels on (unless a test forces it).</summary>
    internal static bool UsesDirect(in Conv2dGeometry g) =>
        g.SuitsDirect && t_forcedPath switch
        {
            ConvolutionPath.Direct => true,
            // A 1×1 convolution is a GEMM (straight on x at stride 1): one tap does not pay for the padded copy. Below
            // AVX-512 the direct tile is half as wide (4 × 2 vectors of 8), and Winograd keeps the layers it takes.
            ConvolutionPath.Auto => !t_forceWinograd && g.KernelH * g.KernelW > 1 && Math.Max(g.Channels, g.OutChannels) <= DirectMaxChannels
                && (CpuFeatures.Effective == Isa.Avx512 || !UsesWinograd(g)),
            _ => false,
        };

    /// <summary>Runs every convolution of this thread that <paramref name="path"/> can handle through it until disposed.</summary>
    internal static IDisposable ForceConvolutionPath(ConvolutionPath path)
    {
        var previous = t_forcedPath;
        t_forcedPath = path;
        return new ConvolutionPathScope(previous);
    }

    private sealed class ConvolutionPathScope(ConvolutionPath previous) : IDisposable
    {
        public void Dispose() => t_forcedPath = previous;
    }
}

/// <summary>Whether a dense convolution takes the direct path: by shape (Auto), never (WithoutDirect: Winograd or im2col
/// + GEMM), or wherever it can (Direct).</summary>
internal enum ConvolutionPath { Auto, WithoutDirect, Direct }
